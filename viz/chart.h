#pragma once
// Axis maths and small raster charts (bars, lines) for the small multiples.
// The GUI draws its charts with ImGui from the same scales and ticks; the
// raster versions are what the PNG export writes.
#include <string>
#include <vector>

#include "viz/image.h"

namespace msa::viz {

// Maps [lo, hi] (data) to [a, b] (pixels); log10 when `log` (lo must be > 0).
struct Scale {
    double lo = 0, hi = 1, a = 0, b = 1;
    bool log = false;
    double operator()(double v) const;
};

// About `count` round tick values covering [lo, hi] (1, 2, 5 x 10^n steps).
std::vector<double> nice_ticks(double lo, double hi, int count);
// Decades for a log axis.
std::vector<double> log_ticks(double lo, double hi);
// Short label: 4096 -> "4K", 1048576 -> "1M", 0.925 -> "0.925".
std::string short_number(double v);

struct BarSeries {
    std::vector<double> values;
    std::vector<Rgba> colours;  // one per value, or empty for one colour
    Rgba colour = {120, 160, 230, 255};
};

// Vertical bars with a 0..max axis (or [lo, hi] when given), title on top.
Image bar_chart(const BarSeries& series, int width, int height, const std::string& title, double lo = 0,
                double hi = -1);

struct LineSeries {
    std::vector<double> x, y;
    Rgba colour = {120, 160, 230, 255};
    bool points = false;  // draw markers instead of a line
};
Image line_chart(const std::vector<LineSeries>& series, int width, int height, const std::string& title,
                 bool log_x, bool log_y);

}  // namespace msa::viz
