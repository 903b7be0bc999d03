#pragma once
// The block-score heatmap (one GQA group) beside the dense-mass heatmap (one
// head), sharing one zoom window: outlined blocks are what MSA keeps; bright
// cells outside the outlines are the attention it misses. Wheel zooms about
// the cursor (Shift: queries only, Ctrl: blocks only), drag pans, click picks
// the query for the inspector, double-click resets.
#include <cstdint>
#include <string>

#include "app/gui/texture.h"
#include "viz/heatmap.h"
#include "viz/layout.h"

namespace msa::gui {

class App;

class HeatmapView {
public:
    void draw(App& app, const viz::Rect& r);
    void reset_view() { reset_ = true; }
    // Where the last frame drew the block-score plot, and which window it showed
    // (for --screenshot-info: lets tests map data to pixels).
    struct Placement {
        float x = 0, y = 0, w = 0, h = 0;
        viz::HeatmapWindow window;
        bool drawn = false;
    };
    const Placement& scores_placement() const { return scores_placement_; }

private:
    struct Plot {
        const void* source_key = nullptr;
        uint64_t source_revision = 0;  // App::capture_revision(): a new capture may reuse the address
        int source_index = -1;
        viz::HeatmapPyramid pyramid;
        viz::ColorRange range;
        Texture texture;
        std::string image_key;
    };
    void prepare(App& app, int plot_w, int plot_h);
    void draw_plot(App& app, Plot& plot, bool is_mass, const char* title, float x, float y, float w, float h);
    void tooltip(App& app, int t, int b);
    void export_png(App& app);

    Plot scores_, mass_;
    viz::HeatmapWindow window_;
    viz::Aggregate aggregate_ = viz::Aggregate::max;
    bool log_mass_ = true;
    bool reset_ = true;
    bool dragging_ = false;
    std::string exported_;
    Placement scores_placement_;
};

}  // namespace msa::gui
