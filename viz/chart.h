#pragma once
// Axis maths and small raster charts (bars, lines) for the small multiples.
// The GUI draws its charts with ImGui from the same scales and ticks; the
// raster versions are what the PNG export writes.
#include <cmath>
#include <string>
#include <utility>
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

// A time axis with long idle stretches cut out. A kernel bench spends most of
// its wall time on the host and the peers (58 kernels over about 60 s, most
// under a millisecond): drawn linearly, they are slivers at a few spots. Each
// gap between busy intervals (overlaps merged) longer than max_gap_fraction of
// the busy time is drawn that long; everything else keeps its length.
struct CutTimeAxis {
    struct Knot {
        double t, drawn;  // data time and where it is drawn; linear in between
    };
    struct Cut {
        double drawn;  // the middle of the shortened gap
        double idle;   // its length in data time
        double resume;  // the data time at which work resumes after it
    };
    std::vector<Knot> knots;
    std::vector<Cut> cuts;
    double drawn_length = 0;
    double operator()(double t) const;  // data time -> drawn time, monotonic
};
// spans: (start, end) pairs in data time, any order; an infinite fraction cuts nothing.
CutTimeAxis cut_idle_gaps(std::vector<std::pair<double, double>> spans, double max_gap_fraction);

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
    bool points = false;   // markers only, no line
    bool markers = false;  // markers on the line (few points: every value is readable)
    std::string name;      // legend entry; empty: not in the legend
};

// A horizontal line across the plot (e.g. the dense baseline), dashed, named at its right end.
struct ReferenceLine {
    double y = 0;
    std::string name;
    Rgba colour = {235, 235, 235, 255};
};

struct LineChartSpec {
    std::string title, x_label, y_label;
    bool log_x = false, log_y = false;
    // Linear y axes start at 0 (rates, recall); false fits the data and the
    // references with a margin (perplexity, where 0 would squash the curves).
    bool y_from_zero = true;
    double y_lo = NAN, y_hi = NAN;  // a fixed range; NaN: from the data
    std::vector<double> x_ticks;    // tick values (e.g. the k of a sweep); empty: nice or decade ticks
    std::vector<ReferenceLine> references;
    int text_scale = 1;             // 2 for figures read at full size (README, 1600-wide window)
};

// Lines (or points) over a shared x/y frame with a title, axis labels, a legend
// row of the named series and the reference lines.
Image line_chart(const std::vector<LineSeries>& series, const LineChartSpec& spec, int width, int height);

}  // namespace msa::viz
