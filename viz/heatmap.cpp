#include "viz/heatmap.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace msa::viz {

HeatmapSource HeatmapSource::from_scores(const BlockScores& scores, int group, int block_size) {
    HeatmapSource s;
    if (scores.values.empty() || group < 0 || group >= scores.n_groups) return s;
    s.base = scores.values.data() + static_cast<size_t>(group) * scores.n_blocks;
    s.row_stride = static_cast<size_t>(scores.n_groups) * scores.n_blocks;
    s.n_rows = scores.n_tokens;
    s.n_blocks = scores.n_blocks;
    s.block_size = block_size;
    return s;
}

HeatmapSource HeatmapSource::from_mass(const BlockMass& mass, int head, int block_size) {
    HeatmapSource s;
    if (mass.values.empty() || head < 0 || head >= mass.n_heads) return s;
    s.base = mass.values.data() + static_cast<size_t>(head) * mass.n_blocks;
    s.row_stride = static_cast<size_t>(mass.n_heads) * mass.n_blocks;
    s.n_rows = mass.n_tokens;
    s.n_blocks = mass.n_blocks;
    s.block_size = block_size;
    return s;
}

// ---- window ---------------------------------------------------------------

void HeatmapWindow::zoom(double factor_x, double factor_y, double fx, double fy) {
    double cx = b0 + (b1 - b0) * fx, cy = q0 + (q1 - q0) * fy;
    b0 = cx - (cx - b0) * factor_x;
    b1 = cx + (b1 - cx) * factor_x;
    q0 = cy - (cy - q0) * factor_y;
    q1 = cy + (q1 - cy) * factor_y;
}

void HeatmapWindow::pan(double dx_fraction, double dy_fraction) {
    double dx = (b1 - b0) * dx_fraction, dy = (q1 - q0) * dy_fraction;
    b0 += dx;
    b1 += dx;
    q0 += dy;
    q1 += dy;
}

void HeatmapWindow::clamp_to(int n_rows, int n_blocks, double min_rows, double min_blocks) {
    auto fit = [](double& lo, double& hi, double n, double min_span) {
        double span = std::clamp(hi - lo, std::min(min_span, n), n);
        double mid = (lo + hi) / 2;
        lo = mid - span / 2;
        hi = mid + span / 2;
        if (lo < 0) { hi -= lo; lo = 0; }
        if (hi > n) { lo -= hi - n; hi = n; }
        lo = std::max(0.0, lo);
    };
    fit(q0, q1, n_rows, min_rows);
    fit(b0, b1, n_blocks, min_blocks);
}

int HeatmapWindow::query_at(double y, int h, int n_rows) const {
    if (h <= 0) return -1;
    double q = q0 + (q1 - q0) * y / h;
    int t = static_cast<int>(std::floor(q));
    return (t >= 0 && t < n_rows) ? t : -1;
}

int HeatmapWindow::block_at(double x, int w, int n_blocks) const {
    if (w <= 0) return -1;
    double b = b0 + (b1 - b0) * x / w;
    int i = static_cast<int>(std::floor(b));
    return (i >= 0 && i < n_blocks) ? i : -1;
}

// ---- pyramid --------------------------------------------------------------

HeatmapPyramid::HeatmapPyramid(const HeatmapSource& source) : source_(source) {
    if (!source_.valid()) return;
    const int nb = source_.n_blocks;
    // Level 1 from the source, then each level from the one before.
    int rows = source_.n_rows;
    for (int shift = 1; (1 << (shift - 1)) < source_.n_rows; ++shift) {
        Level level;
        level.shift = shift;
        level.rows = (source_.n_rows + (1 << shift) - 1) >> shift;
        size_t cells = static_cast<size_t>(level.rows) * nb;
        level.max.assign(cells, -std::numeric_limits<float>::infinity());
        level.sum.assign(cells, 0.f);
        level.count.assign(cells, 0.f);
        for (int bin = 0; bin < level.rows; ++bin) {
            float* mx = &level.max[static_cast<size_t>(bin) * nb];
            float* sm = &level.sum[static_cast<size_t>(bin) * nb];
            float* ct = &level.count[static_cast<size_t>(bin) * nb];
            for (int child = 2 * bin; child < std::min(2 * bin + 2, rows); ++child) {
                if (shift == 1) {
                    int t = child;
                    int last_visible = std::min(nb - 1, t / source_.block_size);
                    for (int b = 0; b <= last_visible; ++b) {
                        float v = source_.at(t, b);
                        if (std::isnan(v)) continue;
                        mx[b] = std::max(mx[b], v);
                        if (std::isfinite(v)) sm[b] += v;
                        ct[b] += 1.f;
                    }
                } else {
                    const Level& prev = levels_.back();
                    size_t off = static_cast<size_t>(child) * nb;
                    for (int b = 0; b < nb; ++b) {
                        if (prev.count[off + b] == 0.f) continue;
                        mx[b] = std::max(mx[b], prev.max[off + b]);
                        sm[b] += prev.sum[off + b];
                        ct[b] += prev.count[off + b];
                    }
                }
            }
        }
        rows = level.rows;
        levels_.push_back(std::move(level));
    }
}

bool HeatmapPyramid::cell(int row_begin, int row_end, int block, Aggregate agg, float& out) const {
    row_begin = std::max(0, row_begin);
    row_end = std::min(source_.n_rows, row_end);
    if (row_end <= row_begin || block < 0 || block >= source_.n_blocks) return false;
    int span = row_end - row_begin;
    if (span == 1 || levels_.empty()) {
        float best = -std::numeric_limits<float>::infinity();
        double sum = 0;
        int count = 0;
        for (int t = row_begin; t < row_end; ++t) {
            if (!source_.visible(t, block)) continue;
            float v = source_.at(t, block);
            if (std::isnan(v)) continue;
            best = std::max(best, v);
            if (std::isfinite(v)) sum += v;
            ++count;
        }
        if (!count) return false;
        out = agg == Aggregate::max ? best : static_cast<float>(sum / count);
        return true;
    }
    // Coarsest level whose bins are no wider than the span: bins overlapping
    // the range stand in for it (the edges may reach a little beyond).
    int shift = 0;
    while ((2 << shift) <= span && shift < static_cast<int>(levels_.size())) ++shift;
    const Level& level = levels_[shift - 1];
    int first = row_begin >> shift, last = (row_end - 1) >> shift;
    float best = -std::numeric_limits<float>::infinity();
    double sum = 0, count = 0;
    for (int bin = first; bin <= last && bin < level.rows; ++bin) {
        size_t i = static_cast<size_t>(bin) * source_.n_blocks + block;
        if (level.count[i] == 0.f) continue;
        best = std::max(best, level.max[i]);
        sum += level.sum[i];
        count += level.count[i];
    }
    if (count == 0) return false;
    out = agg == Aggregate::max ? best : static_cast<float>(sum / count);
    return true;
}

void HeatmapPyramid::value_range(double& lo, double& hi) const {
    lo = std::numeric_limits<double>::infinity();
    hi = -lo;
    for (int t = 0; t < source_.n_rows; ++t) {
        int last_visible = std::min(source_.n_blocks - 1, t / source_.block_size);
        for (int b = 0; b <= last_visible; ++b) {
            float v = source_.at(t, b);
            if (!std::isfinite(v)) continue;
            lo = std::min<double>(lo, v);
            hi = std::max<double>(hi, v);
        }
    }
    if (!(lo <= hi)) lo = 0, hi = 1;
}

// ---- selection mask -------------------------------------------------------

namespace {

// Pixel row y covers queries [first, last]; at most this many are read, evenly spread.
constexpr int kSelectionSamplesPerPixel = 32;

struct Span {
    int first = 0, last = -1;  // inclusive; empty when last < first
};

Span rows_of_pixel(const HeatmapWindow& w, int y, int height, int n_rows) {
    double per = (w.q1 - w.q0) / height;
    double a = w.q0 + y * per, b = a + per;
    Span s;
    if (per <= 1.0) {
        s.first = s.last = static_cast<int>(std::floor(a + per / 2));
    } else {
        s.first = static_cast<int>(std::ceil(a - 1e-9));
        s.last = static_cast<int>(std::ceil(b - 1e-9)) - 1;
    }
    s.first = std::max(0, s.first);
    s.last = std::min(n_rows - 1, s.last);
    return s;
}

Span blocks_of_pixel(const HeatmapWindow& w, int x, int width, int n_blocks) {
    double per = (w.b1 - w.b0) / width;
    double a = w.b0 + x * per, b = a + per;
    Span s;
    if (per <= 1.0) {
        s.first = s.last = static_cast<int>(std::floor(a + per / 2));
    } else {
        s.first = static_cast<int>(std::ceil(a - 1e-9));
        s.last = static_cast<int>(std::ceil(b - 1e-9)) - 1;
    }
    s.first = std::max(0, s.first);
    s.last = std::min(n_blocks - 1, s.last);
    return s;
}

// For pixel row y: per block, how many sampled queries select it and how many can see it.
void count_selected(const Selection& sel, int group, int block_size, Span rows, int n_blocks,
                    std::vector<int>& selected, std::vector<int>& visible) {
    std::fill(selected.begin(), selected.end(), 0);
    std::fill(visible.begin(), visible.end(), 0);
    if (rows.last < rows.first) return;
    int n = rows.last - rows.first + 1;
    int samples = std::min(n, kSelectionSamplesPerPixel);
    for (int s = 0; s < samples; ++s) {
        int t = rows.first + static_cast<int>(static_cast<long long>(s) * n / samples);
        if (t >= sel.n_tokens) break;
        const int32_t* row = sel.row(t, group);
        for (int i = 0; i < sel.slots; ++i)
            if (row[i] >= 0 && row[i] < n_blocks) ++selected[row[i]];
        int last_visible = std::min(n_blocks - 1, t / block_size);
        // visible[b] accumulates through a difference array: +1 on [0, last_visible].
        ++visible[0];
        if (last_visible + 1 < n_blocks) --visible[last_visible + 1];
    }
    for (int b = 1; b < n_blocks; ++b) visible[b] += visible[b - 1];
}

}  // namespace

SelectionMask selection_mask(const Selection& selection, int group, int block_size, const HeatmapWindow& window,
                             int width, int height, int n_blocks) {
    SelectionMask mask;
    mask.width = width;
    mask.height = height;
    mask.selected.assign(static_cast<size_t>(std::max(0, width)) * std::max(0, height), 0);
    if (selection.blocks.empty() || group < 0 || group >= selection.n_groups || n_blocks <= 0) return mask;
    std::vector<int> sel_count(n_blocks), vis_count(n_blocks);
    std::vector<Span> columns(width);
    for (int x = 0; x < width; ++x) columns[x] = blocks_of_pixel(window, x, width, n_blocks);
    for (int y = 0; y < height; ++y) {
        Span rows = rows_of_pixel(window, y, height, selection.n_tokens);
        count_selected(selection, group, block_size, rows, n_blocks, sel_count, vis_count);
        for (int x = 0; x < width; ++x) {
            bool any = false;
            for (int b = columns[x].first; b <= columns[x].last && !any; ++b)
                any = vis_count[b] > 0 && 2 * sel_count[b] > vis_count[b];
            mask.selected[static_cast<size_t>(y) * width + x] = any;
        }
    }
    return mask;
}

void outline_selection(Image& image, const SelectionMask& mask, const HeatmapWindow& window, Rgba colour) {
    const int w = mask.width, h = mask.height;
    double px_per_block = w / std::max(1e-9, window.b1 - window.b0);
    std::vector<int> block_of(w);
    for (int x = 0; x < w; ++x) block_of[x] = static_cast<int>(std::floor(window.b0 + (x + 0.5) / px_per_block));
    bool block_edges = px_per_block >= 3.0;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            if (!mask.at(x, y)) continue;
            bool edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !mask.at(x - 1, y) || !mask.at(x + 1, y) ||
                        !mask.at(x, y - 1) || !mask.at(x, y + 1);
            if (!edge && block_edges) edge = block_of[x - 1] != block_of[x] || block_of[x + 1] != block_of[x];
            if (edge) image.set(x, y, colour);
        }
}

Image render_heatmap(const HeatmapPyramid& pyramid, const Selection* selection, int group, const HeatmapWindow& window,
                     int width, int height, const HeatmapStyle& style) {
    Image img(width, height, palette::background);
    const HeatmapSource& src = pyramid.source();
    if (!src.valid() || width <= 0 || height <= 0) return img;
    std::vector<Span> columns(width);
    for (int x = 0; x < width; ++x) columns[x] = blocks_of_pixel(window, x, width, src.n_blocks);
    for (int y = 0; y < height; ++y) {
        Span rows = rows_of_pixel(window, y, height, src.n_rows);
        if (rows.last < rows.first) continue;
        for (int x = 0; x < width; ++x) {
            Span cols = columns[x];
            if (cols.last < cols.first) continue;
            bool any = false;
            float best = -std::numeric_limits<float>::infinity();
            double sum = 0;
            int n = 0;
            for (int b = cols.first; b <= cols.last; ++b) {
                float v;
                if (!pyramid.cell(rows.first, rows.last + 1, b, style.aggregate, v)) continue;
                any = true;
                best = std::max(best, v);
                sum += v;
                ++n;
            }
            if (!any) {
                img.set(x, y, palette::masked);
                continue;
            }
            double v = style.aggregate == Aggregate::max ? best : sum / n;
            img.set(x, y, viridis(style.range.normalize(v)));
        }
    }
    if (selection && style.outline_selection) {
        SelectionMask mask =
            selection_mask(*selection, group, src.block_size, window, width, height, src.n_blocks);
        outline_selection(img, mask, window, style.outline);
    }
    return img;
}

Image render_selection_difference(const Selection& a, const Selection& b, int group, int block_size, int n_blocks,
                                  const HeatmapWindow& window, int width, int height) {
    Image img(width, height, palette::background);
    if (a.n_tokens != b.n_tokens || a.n_groups != b.n_groups || group < 0 || group >= a.n_groups) return img;
    SelectionMask ma = selection_mask(a, group, block_size, window, width, height, n_blocks);
    SelectionMask mb = selection_mask(b, group, block_size, window, width, height, n_blocks);
    const Rgba unselected{58, 58, 66, 255};
    for (int y = 0; y < height; ++y) {
        Span rows = rows_of_pixel(window, y, height, a.n_tokens);
        if (rows.last < rows.first) continue;
        for (int x = 0; x < width; ++x) {
            Span cols = blocks_of_pixel(window, x, width, n_blocks);
            if (cols.last < cols.first) continue;
            bool visible = cols.first <= rows.last / block_size;
            bool sa = ma.at(x, y), sb = mb.at(x, y);
            Rgba c = !visible ? palette::masked
                     : sa && sb ? palette::both
                     : sa       ? palette::only_a
                     : sb       ? palette::only_b
                                : unselected;
            img.set(x, y, c);
        }
    }
    return img;
}

}  // namespace msa::viz
