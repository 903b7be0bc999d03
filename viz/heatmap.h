#pragma once
// Queries x key blocks heatmaps: one GQA group's block scores or one head's
// dense attention mass per block, with the causal triangle masked and the
// blocks a Selection keeps outlined.
//
// Level of detail: a HeatmapPyramid keeps max / sum / visible-count of
// 2^l-row bins, so a view of any window costs about width x height work no
// matter how many queries (8K .. 1M) it covers; only the visible window is
// rendered.
#include <vector>

#include "core/msa.h"
#include "viz/colormap.h"
#include "viz/image.h"

namespace msa::viz {

// One [n_rows, n_blocks] slice of a strided array (not owned).
struct HeatmapSource {
    const float* base = nullptr;
    size_t row_stride = 0;  // floats between query t and t+1
    int n_rows = 0;         // queries
    int n_blocks = 0;
    int block_size = 1;     // B: query t sees blocks 0 .. t / B

    float at(int t, int b) const { return base[static_cast<size_t>(t) * row_stride + b]; }
    bool visible(int t, int b) const { return b <= t / block_size; }
    bool valid() const { return base && n_rows > 0 && n_blocks > 0 && block_size > 0; }

    static HeatmapSource from_scores(const BlockScores& scores, int group, int block_size);
    static HeatmapSource from_mass(const BlockMass& mass, int head, int block_size);
};

// The visible window in data coordinates: queries [q0, q1) down, blocks [b0, b1) across.
struct HeatmapWindow {
    double q0 = 0, q1 = 1, b0 = 0, b1 = 1;

    static HeatmapWindow whole(int n_rows, int n_blocks) { return {0, double(n_rows), 0, double(n_blocks)}; }
    // Zoom by `factor` (< 1 zooms in) about the point at fractions (fx, fy) of the view.
    void zoom(double factor_x, double factor_y, double fx, double fy);
    // Move by fractions of the current window size.
    void pan(double dx_fraction, double dy_fraction);
    // Keep the window inside the data and at least min_rows x min_blocks large.
    void clamp_to(int n_rows, int n_blocks, double min_rows = 4, double min_blocks = 2);
    // Data coordinates under pixel (x, y) of a w x h view; -1 outside the data.
    int query_at(double y, int h, int n_rows) const;
    int block_at(double x, int w, int n_blocks) const;
};

enum class Aggregate { max, mean };

// Row-aggregation levels of one source. Level 0 is the source itself (not copied).
class HeatmapPyramid {
public:
    HeatmapPyramid() = default;
    explicit HeatmapPyramid(const HeatmapSource& source);
    const HeatmapSource& source() const { return source_; }
    int levels() const { return static_cast<int>(levels_.size()) + 1; }
    // Aggregate of rows [row_begin, row_end) of block b, using the coarsest
    // level whose bins fit; returns false when no row there can see block b.
    bool cell(int row_begin, int row_end, int block, Aggregate agg, float& out) const;
    // Finite value range over visible cells.
    void value_range(double& lo, double& hi) const;

private:
    struct Level {
        int shift = 0;  // bin = 2^shift rows
        int rows = 0;
        std::vector<float> max, sum, count;  // [rows, n_blocks]
    };
    HeatmapSource source_;
    std::vector<Level> levels_;  // shift 1, 2, ...
};

struct HeatmapStyle {
    ColorRange range;
    Aggregate aggregate = Aggregate::max;
    bool outline_selection = true;
    Rgba outline = palette::selected_outline;
};

// Per-pixel selection state of a window: for each pixel row, the blocks that a
// majority of the (sampled) queries it covers select.
struct SelectionMask {
    int width = 0, height = 0;
    std::vector<uint8_t> selected;  // [height, width]
    bool at(int x, int y) const { return selected[static_cast<size_t>(y) * width + x] != 0; }
};
SelectionMask selection_mask(const Selection& selection, int group, int block_size, const HeatmapWindow& window,
                             int width, int height, int n_blocks);

// Renders the window into width x height RGBA. `selection` may be null.
Image render_heatmap(const HeatmapPyramid& pyramid, const Selection* selection, int group, const HeatmapWindow& window,
                     int width, int height, const HeatmapStyle& style);

// Draws the outline of `mask`'s selected regions onto `image` (region edges,
// plus block boundaries when a block is at least 3 pixels wide).
void outline_selection(Image& image, const SelectionMask& mask, const HeatmapWindow& window, Rgba colour);

// Compare: pixels selected by A only, B only, both; other visible cells dim,
// invisible cells masked. Both selections must have the same shape.
Image render_selection_difference(const Selection& a, const Selection& b, int group, int block_size, int n_blocks,
                                  const HeatmapWindow& window, int width, int height);

}  // namespace msa::viz
