#pragma once
// Two runs side by side (A: the current run, B: picked in the sessions
// browser or with --compare): config diff, metric deltas coloured by size,
// kernel time deltas, and the same layer's block scores of both with the
// difference of their selections.
#include <string>

#include "app/gui/texture.h"
#include "viz/heatmap.h"
#include "viz/layout.h"

namespace msa::gui {

class App;

class CompareView {
public:
    void draw(App& app, const viz::Rect& r);

private:
    void tables(App& app, float height);
    void heatmaps(App& app, float height);
    struct Side {
        const void* key = nullptr;
        viz::HeatmapPyramid pyramid;
        viz::ColorRange range;
        Texture texture;
        std::string image_key;
    };
    Side a_, b_;
    Texture difference_;
    std::string difference_key_;
    double jaccard_ = 0;
};

}  // namespace msa::gui
