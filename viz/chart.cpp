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

Image line_chart(const std::vector<LineSeries>& series, int width, int height, const std::string& title, bool log_x,
                 bool log_y) {
    Image img(width, height, palette::background);
    Frame f;
    f.bottom = 22;
    draw_text(img, f.left, 3, title, palette::text);
    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
    for (const LineSeries& s : series)
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            x_lo = std::min(x_lo, s.x[i]);
            x_hi = std::max(x_hi, s.x[i]);
            y_lo = std::min(y_lo, s.y[i]);
            y_hi = std::max(y_hi, s.y[i]);
        }
    if (!(x_hi > x_lo) || !(y_hi >= y_lo)) return img;
    if (!log_y) y_lo = std::min(0.0, y_lo);
    if (y_hi == y_lo) y_hi = y_lo + 1;
    Scale x{x_lo, x_hi, double(f.left + 1), double(width - f.right), log_x};
    Scale y{y_lo, y_hi, double(height - f.bottom), double(f.top), log_y};
    draw_y_axis(img, f, y, log_y ? log_ticks(y_lo, y_hi) : nice_ticks(y_lo, y_hi, 4));
    img.fill_rect(f.left, height - f.bottom, width - f.left - f.right, 1, palette::axis);
    for (double t : log_x ? log_ticks(x_lo, x_hi) : nice_ticks(x_lo, x_hi, 5)) {
        int px = static_cast<int>(std::lround(x(t)));
        img.fill_rect(px, height - f.bottom, 1, 3, palette::axis);
        std::string label = short_number(t);
        draw_text(img, px - text_width(label) / 2, height - f.bottom + 5, label, palette::text);
    }
    for (const LineSeries& s : series) {
        int px_prev = 0, py_prev = 0;
        bool have_prev = false;
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) { have_prev = false; continue; }
            int px = static_cast<int>(std::lround(x(s.x[i]))), py = static_cast<int>(std::lround(y(s.y[i])));
            if (s.points) img.fill_rect(px - 2, py - 2, 5, 5, s.colour);
            else if (have_prev) img.line(px_prev, py_prev, px, py, s.colour);
            px_prev = px;
            py_prev = py;
            have_prev = true;
        }
    }
    return img;
}

}  // namespace msa::viz
