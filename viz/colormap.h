#pragma once
// Colour scales for heatmaps and charts. The sequential scale is viridis-like:
// its lightness rises monotonically, so "brighter = more" survives grey-scale
// printing and colour-vision deficiencies. Built by linear interpolation of a
// small control-point table sampled from matplotlib's viridis at 0.1 steps.
#include <string>
#include <vector>

#include "viz/image.h"

namespace msa::viz {

// t in [0,1] (clamped; NaN maps to 0).
Rgba viridis(double t);

// Blue (-1) - near-white (0) - red (+1), for signed differences (compare view).
Rgba diverging(double t);

// CIE L* (0..100) of an sRGB colour: the lightness the colormap test checks.
double cie_lightness(Rgba c);

// Fixed colours the views share, so screenshot tests can look for them.
namespace palette {
constexpr Rgba masked{38, 38, 44, 255};        // keys a query cannot see (causal triangle)
constexpr Rgba background{22, 22, 26, 255};    // outside the data
constexpr Rgba selected_outline{255, 140, 0, 255};  // orange: a selected block
constexpr Rgba only_a{80, 160, 255, 255};      // compare: selected in run A only
constexpr Rgba only_b{255, 90, 90, 255};       // compare: selected in run B only
constexpr Rgba both{235, 235, 235, 255};       // compare: selected in both runs
constexpr Rgba axis{160, 160, 170, 255};
constexpr Rgba text{220, 220, 225, 255};
constexpr Rgba dense_bar{120, 120, 130, 255};
constexpr Rgba sparse_bar{255, 140, 0, 255};
// Text view: behind the tokens of the inspected query's selected blocks, of its
// own (local) block, the query token itself, and every other block's shade.
constexpr Rgba text_selected{112, 64, 8, 255};
constexpr Rgba text_local{28, 66, 116, 255};
constexpr Rgba text_query{255, 225, 90, 255};
constexpr Rgba text_odd_block{34, 34, 40, 255};
}  // namespace palette

// How raw values become colour positions.
enum class ValueScale { linear, log10 };

struct ColorRange {
    double lo = 0;
    double hi = 1;
    ValueScale scale = ValueScale::linear;
    // Position in [0,1] of a value (log10 clamps at lo > 0).
    double normalize(double v) const;
    // Inverse of normalize, for legend tick labels.
    double value_at(double t) const;
};

// A legend strip: low values at the bottom (vertical) or left (horizontal).
Image legend_bar(int width, int height, bool vertical);

// A legend strip with tick labels drawn in, for exported PNGs.
Image legend_with_labels(const ColorRange& range, int height, const std::string& title);

}  // namespace msa::viz
