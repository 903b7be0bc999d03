#pragma once
// The app's fixed, docked-looking layout: Debian's ImGui 1.86 has no docking,
// so panel rectangles are computed here from the framebuffer size and the page
// shown, and the GUI places its windows there every frame.
#include <functional>
#include <string>

namespace msa::viz {

struct Rect {
    float x = 0, y = 0, w = 0, h = 0;
    float right() const { return x + w; }
    float bottom() const { return y + h; }
    bool contains(float px, float py) const { return px >= x && py >= y && px < x + w && py < y + h; }
};

enum class Page { selection, profile, compare, sweep };
const char* to_string(Page p);
bool parse_page(const std::string& name, Page& out);  // also accepts the names of the panels on a page

struct AppLayout {
    Rect menu;        // top strip: page tabs, export
    Rect model;       // left column
    Rect controls;
    Rect sessions;
    // selection page
    Rect heatmaps;
    Rect inspector;
    Rect text;        // the document, beside the inspector
    Rect overview;
    // profile / compare / sweep pages use the whole content area
    Rect content;
};

AppLayout compute_layout(float width, float height, Page page, float menu_height = 26.f);

// `text` shortened with "..." so that width_of(result) <= max_width;
// unchanged when it fits. Cut::middle keeps both ends (paths keep their start
// and their file name: "/home/me/...s/run.db"), Cut::end keeps the start.
// Cuts fall between UTF-8 characters; "" when not even "..." fits.
enum class Cut { middle, end };
std::string elide(const std::string& text, float max_width, const std::function<float(const std::string&)>& width_of,
                  Cut where = Cut::middle);

// A demangled CUDA kernel name as tables show it: no return type, no
// msa::kern:: or anonymous-namespace qualifiers, no parameter list
// ("void msa::kern::attn_fwd_kernel<128, 4, 64, 2>(msa::kern::AttnParams)" ->
// "attn_fwd_kernel<128, 4, 64, 2>"); other names unchanged.
std::string short_kernel_name(const std::string& name);

}  // namespace msa::viz
