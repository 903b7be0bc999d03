#include "viz/layout.h"

#include <algorithm>
#include <vector>

namespace msa::viz {

const char* to_string(Page p) {
    switch (p) {
        case Page::selection: return "selection";
        case Page::profile: return "profile";
        case Page::compare: return "compare";
        case Page::sweep: return "sweep";
    }
    return "selection";
}

bool parse_page(const std::string& name, Page& out) {
    if (name == "selection" || name == "heatmap" || name == "inspector" || name == "text" || name == "overview" || name == "model" ||
        name == "controls" || name == "sessions" || name.empty()) {
        out = Page::selection;
        return true;
    }
    if (name == "profile") { out = Page::profile; return true; }
    if (name == "compare") { out = Page::compare; return true; }
    if (name == "sweep" || name == "needle") { out = Page::sweep; return true; }
    return false;
}

AppLayout compute_layout(float width, float height, Page page, float menu_height) {
    AppLayout l;
    const float gap = 4.f;
    l.menu = {0, 0, width, menu_height};
    float top = menu_height + gap, avail_h = std::max(100.f, height - top - gap);
    // Left column: a fixed-ish width that shrinks on small windows.
    float left_w = std::clamp(width * 0.22f, 260.f, 360.f);
    float model_h = std::min(300.f, avail_h * 0.32f);
    float controls_h = std::min(330.f, avail_h * 0.36f);
    l.model = {gap, top, left_w, model_h};
    l.controls = {gap, l.model.bottom() + gap, left_w, controls_h};
    l.sessions = {gap, l.controls.bottom() + gap, left_w, std::max(60.f, height - gap - (l.controls.bottom() + gap))};
    float cx = l.model.right() + gap, cw = std::max(100.f, width - cx - gap);
    l.content = {cx, top, cw, avail_h};
    if (page == Page::selection) {
        float heat_h = avail_h * 0.60f;
        l.heatmaps = {cx, top, cw, heat_h};
        float bottom_y = l.heatmaps.bottom() + gap, bottom_h = std::max(60.f, height - gap - bottom_y);
        // Inspector, text and layer overview side by side: the text gets as
        // much as the inspector, the overview's small multiples what is left.
        float inspector_w = cw * 0.375f, text_w = cw * 0.375f;
        l.inspector = {cx, bottom_y, inspector_w, bottom_h};
        l.text = {l.inspector.right() + gap, bottom_y, text_w - gap, bottom_h};
        l.overview = {l.text.right() + gap, bottom_y, cw - inspector_w - text_w - gap, bottom_h};
    }
    return l;
}

std::string elide(const std::string& text, float max_width, const std::function<float(const std::string&)>& width_of,
                  Cut where) {
    if (width_of(text) <= max_width) return text;
    const std::string dots = "...";
    if (width_of(dots) > max_width) return "";
    std::vector<size_t> starts;  // byte offset of each UTF-8 character
    for (size_t i = 0; i < text.size(); ++i)
        if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) starts.push_back(i);
    const size_t chars = starts.size();
    auto keep = [&](size_t n) {  // middle: the first ceil(n/2) and the last floor(n/2) characters
        const size_t head = where == Cut::middle ? (n + 1) / 2 : n, tail = n - head;
        const size_t head_end = head < chars ? starts[head] : text.size();
        const size_t tail_begin = tail > 0 ? starts[chars - tail] : text.size();
        return text.substr(0, head_end) + dots + text.substr(tail_begin);
    };
    // Widths grow with n: the longest that fits, by bisection.
    size_t lo = 0, hi = chars > 0 ? chars - 1 : 0;
    while (lo < hi) {
        const size_t mid = (lo + hi + 1) / 2;
        if (width_of(keep(mid)) <= max_width) lo = mid;
        else hi = mid - 1;
    }
    return keep(lo);
}

std::string short_kernel_name(const std::string& name) {
    std::string s = name;
    if (s.rfind("void ", 0) == 0) s.erase(0, 5);
    for (const std::string drop : {"(anonymous namespace)::", "msa::kern::"})
        for (size_t at; (at = s.find(drop)) != std::string::npos;) s.erase(at, drop.size());
    int depth = 0;  // cut at the parameter list: the first '(' outside template brackets
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '<') ++depth;
        else if (s[i] == '>') --depth;
        else if (s[i] == '(' && depth == 0 && i > 0) return s.substr(0, i);
    }
    return s;
}

}  // namespace msa::viz
