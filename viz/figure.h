#pragma once
// Composes heatmaps with their titles and labelled legends into one image:
// what "Export PNG" writes.
#include <string>
#include <vector>

#include "viz/colormap.h"
#include "viz/image.h"

namespace msa::viz {

struct FigurePanel {
    Image image;
    std::string title;
    ColorRange range;       // for the legend; ignored when show_legend is false
    bool show_legend = true;
};

// Panels left to right, wrapping after `columns` panels (0: one row); the
// caption and the panel titles at `text_scale`.
Image compose_figure(const std::vector<FigurePanel>& panels, const std::string& caption, int columns = 0,
                     int text_scale = 1);

}  // namespace msa::viz
