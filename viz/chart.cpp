#include "viz/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "viz/colormap.h"

namespace msa::viz {

double Scale::operator()(double v) const {
    double x0 = lo, x1 = hi, x = v;
    if (log) {
        x0 = std::log10(std::max(lo, 1e-300));
        x1 = std::log10(std::max(hi, 1e-300));
        x = std::log10(std::max(v, 1e-300));
    }
    if (x1 == x0) return (a + b) / 2;
    return a + (x - x0) / (x1 - x0) * (b - a);
}

CutTimeAxis cut_idle_gaps(std::vector<std::pair<double, double>> spans, double max_gap_fraction) {
    CutTimeAxis axis;
    std::sort(spans.begin(), spans.end());
    std::vector<std::pair<double, double>> busy;  // merged, in order
    for (const auto& [start, end] : spans) {
        if (!busy.empty() && start <= busy.back().second) busy.back().second = std::max(busy.back().second, end);
        else busy.push_back({start, std::max(start, end)});
    }
    double busy_length = 0;
    for (const auto& [start, end] : busy) busy_length += end - start;
    const double max_gap = std::isinf(max_gap_fraction) ? INFINITY : max_gap_fraction * busy_length;
    double drawn = 0;
    for (size_t i = 0; i < busy.size(); ++i) {
        if (i > 0) {
            const double gap = busy[i].first - busy[i - 1].second;
            if (gap > max_gap) axis.cuts.push_back({drawn + max_gap / 2, gap, busy[i].first});
            drawn += std::min(gap, max_gap);
        }
        axis.knots.push_back({busy[i].first, drawn});
        drawn += busy[i].second - busy[i].first;
        axis.knots.push_back({busy[i].second, drawn});
    }
    axis.drawn_length = drawn;
    return axis;
}

double CutTimeAxis::operator()(double t) const {
    if (knots.empty()) return t;
    if (t <= knots.front().t) return knots.front().drawn - (knots.front().t - t);
    if (t >= knots.back().t) return knots.back().drawn + (t - knots.back().t);
    // A real model's run has thousands of kernels, each mapped every frame.
    const auto it = std::upper_bound(knots.begin(), knots.end(), t, [](double v, const Knot& k) { return v < k.t; });
    const Knot &a = *(it - 1), &b = *it;
    return b.t > a.t ? a.drawn + (t - a.t) / (b.t - a.t) * (b.drawn - a.drawn) : b.drawn;
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
    std::vector<double> ticks;
    if (!(hi > lo) || count < 1) return {lo};
    double raw = (hi - lo) / count;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * mag >= raw) { step = m * mag; break; }
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
        ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
    std::vector<double> ticks;
    if (!(lo > 0) || !(hi > lo)) return ticks;
    for (double v = std::pow(10.0, std::ceil(std::log10(lo) - 1e-9)); v <= hi * (1 + 1e-9); v *= 10) ticks.push_back(v);
    return ticks;
}

std::string short_number(double v) {
    char buf[32];
    double a = std::abs(v);
    if (a >= 1048576 && std::fmod(a, 1048576) == 0) std::snprintf(buf, sizeof buf, "%gM", v / 1048576);
    else if (a >= 1024 && std::fmod(a, 1024) == 0) std::snprintf(buf, sizeof buf, "%gK", v / 1024);
    else if (a < 1e6 && v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f", v);
    else if (a >= 1e9) std::snprintf(buf, sizeof buf, "%.3gG", v / 1e9);
    else if (a >= 1e6) std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
    else if (a >= 1e4) std::snprintf(buf, sizeof buf, "%.3gk", v / 1e3);
    else std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

namespace {

struct Frame {
    int left = 34, top = 16, right = 6, bottom = 14;
};

void draw_y_axis(Image& img, const Frame& f, const Scale& y, const std::vector<double>& ticks) {
    img.fill_rect(f.left, f.top, 1, img.height - f.top - f.bottom, palette::axis);
    for (double t : ticks) {
        int py = static_cast<int>(std::lround(y(t)));
        img.fill_rect(f.left - 3, py, 3, 1, palette::axis);
        std::string label = short_number(t);
        draw_text(img, f.left - 5 - text_width(label), py - 3, label, palette::text);
    }
}

}  // namespace

Image bar_chart(const BarSeries& s, int width, int height, const std::string& title, double lo, double hi) {
    Image img(width, height, palette::background);
    Frame f;
    draw_text(img, f.left, 3, title, palette::text);
    if (hi <= lo) {
        hi = 0;
        for (double v : s.values)
            if (std::isfinite(v)) hi = std::max(hi, v);
        if (hi <= lo) hi = lo + 1;
    }
    Scale y{lo, hi, double(height - f.bottom), double(f.top)};
    draw_y_axis(img, f, y, nice_ticks(lo, hi, 3));
    int n = static_cast<int>(s.values.size());
    if (n == 0) return img;
    double slot = double(width - f.left - f.right) / n;
    for (int i = 0; i < n; ++i) {
        double v = s.values[i];
        if (!std::isfinite(v)) continue;
        int x0 = f.left + 1 + static_cast<int>(i * slot + slot * 0.1);
        int x1 = f.left + 1 + static_cast<int>((i + 1) * slot - slot * 0.1);
        int y0 = static_cast<int>(std::lround(y(std::clamp(v, lo, hi))));
        int base = static_cast<int>(std::lround(y(lo)));
        Rgba c = i < static_cast<int>(s.colours.size()) ? s.colours[i] : s.colour;
        img.fill_rect(x0, y0, std::max(1, x1 - x0), std::max(1, base - y0), c);
    }
    img.fill_rect(f.left, height - f.bottom, width - f.left - f.right, 1, palette::axis);
    return img;
}

namespace {

constexpr Rgba kGrid{48, 48, 56, 255};

// A line `t` pixels thick: 1-pixel Bresenham lines side by side.
void thick_line(Image& img, int x0, int y0, int x1, int y1, Rgba c, int t) {
    for (int dy = 0; dy < t; ++dy)
        for (int dx = 0; dx < t; ++dx) img.line(x0 + dx - t / 2, y0 + dy - t / 2, x1 + dx - t / 2, y1 + dy - t / 2, c);
}

void dashed_hline(Image& img, int x0, int x1, int y, Rgba c, int t) {
    for (int x = x0; x < x1; x += 9 * t) img.fill_rect(x, y - t / 2, std::min(5 * t, x1 - x), t, c);
}

// Data range of the finite points (x, y) and of the reference lines (y).
struct Extent {
    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
    bool has_points() const { return x_hi >= x_lo; }
};

Extent data_extent(const std::vector<LineSeries>& series, const LineChartSpec& spec) {
    Extent e;
    auto usable = [&](double x, double y) {
        return std::isfinite(x) && std::isfinite(y) && (!spec.log_x || x > 0) && (!spec.log_y || y > 0);
    };
    for (const LineSeries& s : series)
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!usable(s.x[i], s.y[i])) continue;
            e.x_lo = std::min(e.x_lo, s.x[i]);
            e.x_hi = std::max(e.x_hi, s.x[i]);
            e.y_lo = std::min(e.y_lo, s.y[i]);
            e.y_hi = std::max(e.y_hi, s.y[i]);
        }
    if (!e.has_points()) return e;
    for (const ReferenceLine& r : spec.references)
        if (std::isfinite(r.y) && (!spec.log_y || r.y > 0)) {
            e.y_lo = std::min(e.y_lo, r.y);
            e.y_hi = std::max(e.y_hi, r.y);
        }
    return e;
}

}  // namespace

Image line_chart(const std::vector<LineSeries>& series, const LineChartSpec& spec, int width, int height) {
    Image img(width, height, palette::background);
    const int s = std::max(1, spec.text_scale);
    const int line_h = 11 * s, pad = 4 * s;
    int cursor_y = pad;
    draw_text(img, pad, cursor_y, spec.title, palette::text, s);
    cursor_y += line_h + pad;

    // Legend: one row (wrapping) of the named series, under the title.
    int legend_x = pad;
    bool any_named = false;
    for (const LineSeries& l : series) {
        if (l.name.empty()) continue;
        const int entry_w = 11 * s + text_width(l.name, s) + 12 * s;
        if (any_named && legend_x + entry_w > width - pad) {
            legend_x = pad;
            cursor_y += line_h;
        }
        img.fill_rect(legend_x, cursor_y, 8 * s, 7 * s, l.colour);
        draw_text(img, legend_x + 11 * s, cursor_y, l.name, palette::text, s);
        legend_x += entry_w;
        any_named = true;
    }
    if (any_named) cursor_y += line_h + pad;
    if (!spec.y_label.empty()) {
        draw_text(img, pad, cursor_y, spec.y_label, palette::axis, s);
        cursor_y += line_h;
    }

    Extent e = data_extent(series, spec);
    if (!e.has_points()) {
        draw_text(img, pad, cursor_y + line_h, "no data", palette::axis, s);
        return img;
    }
    if (e.x_hi == e.x_lo) {  // one x value: centre it
        e.x_lo = spec.log_x ? e.x_lo / 2 : e.x_lo - 1;
        e.x_hi = spec.log_x ? e.x_hi * 2 : e.x_hi + 1;
    }
    double y_lo = std::isfinite(spec.y_lo) ? spec.y_lo : e.y_lo;
    double y_hi = std::isfinite(spec.y_hi) ? spec.y_hi : e.y_hi;
    if (!spec.log_y && !std::isfinite(spec.y_lo)) {
        if (spec.y_from_zero) y_lo = std::min(0.0, y_lo);
        else y_lo -= 0.06 * (y_hi - y_lo);
    }
    if (!spec.log_y && !std::isfinite(spec.y_hi) && !spec.y_from_zero) y_hi += 0.06 * (y_hi - y_lo);
    if (!(y_hi > y_lo)) y_hi = spec.log_y ? y_lo * 10 : y_lo + 1;

    // Frame: y tick labels on the left, x ticks and the x label at the bottom.
    const int top = cursor_y + line_h / 2;
    const int bottom = height - pad - line_h - 4 * s - (spec.x_label.empty() ? 0 : line_h + 2 * s);
    const int plot_h = std::max(1, bottom - top);
    std::vector<double> y_ticks = spec.log_y ? log_ticks(y_lo, y_hi) : nice_ticks(y_lo, y_hi, std::max(3, plot_h / (30 * s)));
    int label_w = 0;
    for (double t : y_ticks) label_w = std::max(label_w, text_width(short_number(t), s));
    const int left = pad + label_w + 6 * s, right = width - pad - 4 * s;
    if (right <= left || bottom <= top) return img;

    Scale x{e.x_lo, e.x_hi, double(left + 6 * s), double(right - 6 * s), spec.log_x};
    Scale y{y_lo, y_hi, double(bottom), double(top), spec.log_y};
    for (double t : y_ticks) {
        const int py = static_cast<int>(std::lround(y(t)));
        img.fill_rect(left + 1, py, right - left - 1, 1, kGrid);
        img.fill_rect(left - 3 * s, py, 3 * s, 1, palette::axis);
        const std::string label = short_number(t);
        draw_text(img, left - 5 * s - text_width(label, s), py - 3 * s, label, palette::text, s);
    }
    img.fill_rect(left, top, 1, bottom - top + 1, palette::axis);
    img.fill_rect(left, bottom, right - left, 1, palette::axis);
    std::vector<double> x_ticks;
    if (!spec.x_ticks.empty()) {
        for (double t : spec.x_ticks)
            if (t >= e.x_lo && t <= e.x_hi) x_ticks.push_back(t);
    } else {
        x_ticks = spec.log_x ? log_ticks(e.x_lo, e.x_hi) : nice_ticks(e.x_lo, e.x_hi, 5);
    }
    for (double t : x_ticks) {
        const int px = static_cast<int>(std::lround(x(t)));
        img.fill_rect(px, bottom, 1, 3 * s, palette::axis);
        const std::string label = short_number(t);
        draw_text(img, px - text_width(label, s) / 2, bottom + 5 * s, label, palette::text, s);
    }
    if (!spec.x_label.empty())
        draw_text(img, (left + right - text_width(spec.x_label, s)) / 2, bottom + 5 * s + line_h + 2 * s, spec.x_label,
                  palette::axis, s);

    // References under the data, so the curves stay on top where they meet.
    for (const ReferenceLine& r : spec.references) {
        if (!std::isfinite(r.y) || r.y < y_lo || r.y > y_hi) continue;
        const int py = static_cast<int>(std::lround(y(r.y)));
        dashed_hline(img, left + 1, right, py, r.colour, s);
        // Named at the left end (curves over k converge on their reference at the
        // right), above the line, or below it when the line runs along the top.
        const int label_y = py - line_h >= top ? py - line_h : py + 3 * s;
        draw_text(img, left + 4 * s, label_y, r.name, r.colour, s);
    }
    for (const LineSeries& l : series) {
        int px_prev = 0, py_prev = 0;
        bool have_prev = false;
        for (size_t i = 0; i < l.x.size() && i < l.y.size(); ++i) {
            const bool usable = std::isfinite(l.x[i]) && std::isfinite(l.y[i]) && (!spec.log_x || l.x[i] > 0) &&
                                (!spec.log_y || l.y[i] > 0);
            if (!usable) {
                have_prev = false;
                continue;
            }
            const int px = static_cast<int>(std::lround(x(l.x[i])));
            const int py = static_cast<int>(std::lround(y(std::clamp(l.y[i], y_lo, y_hi))));
            if (!l.points && have_prev) thick_line(img, px_prev, py_prev, px, py, l.colour, s);
            if (l.points || l.markers) img.fill_rect(px - 2 * s, py - 2 * s, 4 * s + 1, 4 * s + 1, l.colour);
            px_prev = px;
            py_prev = py;
            have_prev = true;
        }
    }
    return img;
}

}  // namespace msa::viz
