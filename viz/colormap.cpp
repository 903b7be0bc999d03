#include "viz/colormap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace msa::viz {
namespace {

// matplotlib viridis at t = 0, 0.1, ..., 1.0 (sRGB). Interpolating linearly
// between 11 stops stays within a couple of levels of the full 256-entry table.
constexpr unsigned char kViridis[11][3] = {
    {68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},  {42, 120, 142}, {33, 145, 140},
    {34, 168, 132}, {68, 191, 112}, {122, 209, 81}, {189, 223, 38}, {253, 231, 37},
};

// Diverging stops: blue, light grey, red (symmetric lightness on both sides).
constexpr unsigned char kDiverging[3][3] = {{59, 110, 210}, {236, 236, 236}, {210, 60, 55}};

uint8_t lerp8(unsigned char a, unsigned char b, double f) {
    return static_cast<uint8_t>(std::lround(a + (b - a) * f));
}

double srgb_to_linear(double c) {
    c /= 255.0;
    return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

}  // namespace

Rgba viridis(double t) {
    if (!(t > 0)) t = 0;  // also NaN
    if (t > 1) t = 1;
    double pos = t * 10.0;
    int i = std::min(9, static_cast<int>(pos));
    double f = pos - i;
    return {lerp8(kViridis[i][0], kViridis[i + 1][0], f), lerp8(kViridis[i][1], kViridis[i + 1][1], f),
            lerp8(kViridis[i][2], kViridis[i + 1][2], f), 255};
}

Rgba diverging(double t) {
    if (!(t == t)) t = 0;
    t = std::clamp(t, -1.0, 1.0);
    int i = t < 0 ? 0 : 1;
    double f = t < 0 ? t + 1.0 : t;
    return {lerp8(kDiverging[i][0], kDiverging[i + 1][0], f), lerp8(kDiverging[i][1], kDiverging[i + 1][1], f),
            lerp8(kDiverging[i][2], kDiverging[i + 1][2], f), 255};
}

double cie_lightness(Rgba c) {
    double y = 0.2126 * srgb_to_linear(c.r) + 0.7152 * srgb_to_linear(c.g) + 0.0722 * srgb_to_linear(c.b);
    return y > 216.0 / 24389.0 ? 116.0 * std::cbrt(y) - 16.0 : y * 24389.0 / 27.0;
}

double ColorRange::normalize(double v) const {
    if (!std::isfinite(v)) return v > 0 ? 1.0 : 0.0;
    double a = lo, b = hi, x = v;
    if (scale == ValueScale::log10) {
        double floor_value = lo > 0 ? lo : 1e-6;
        a = std::log10(floor_value);
        b = std::log10(std::max(hi, floor_value * 10));
        x = std::log10(std::max(v, floor_value));
    }
    if (!(b > a)) return 0.5;
    return std::clamp((x - a) / (b - a), 0.0, 1.0);
}

double ColorRange::value_at(double t) const {
    if (scale == ValueScale::log10) {
        double floor_value = lo > 0 ? lo : 1e-6;
        double a = std::log10(floor_value), b = std::log10(std::max(hi, floor_value * 10));
        return std::pow(10.0, a + (b - a) * t);
    }
    return lo + (hi - lo) * t;
}

Image legend_bar(int width, int height, bool vertical) {
    Image img(width, height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            double t = vertical ? 1.0 - (height > 1 ? static_cast<double>(y) / (height - 1) : 0.0)
                                : (width > 1 ? static_cast<double>(x) / (width - 1) : 0.0);
            img.set(x, y, viridis(t));
        }
    return img;
}

Image legend_with_labels(const ColorRange& range, int height, const std::string& title) {
    const int bar_w = 16, pad = 6, label_w = 64;
    Image img(bar_w + label_w + 2 * pad, height, palette::background);
    int bar_top = 18, bar_h = std::max(8, height - bar_top - 10);
    img.blit(legend_bar(bar_w, bar_h, true), pad, bar_top);
    draw_text(img, pad, 4, title, palette::text);
    for (int i = 0; i <= 4; ++i) {
        double t = i / 4.0;
        int y = bar_top + static_cast<int>((1.0 - t) * (bar_h - 1));
        char label[32];
        std::snprintf(label, sizeof label, "%.3g", range.value_at(t));
        img.fill_rect(pad + bar_w, y, 3, 1, palette::axis);
        draw_text(img, pad + bar_w + 5, y - 3, label, palette::text);
    }
    return img;
}

}  // namespace msa::viz
