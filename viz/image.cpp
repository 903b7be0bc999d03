#include "viz/image.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

// Debian's libstb-dev ships the implementation of stb_image_write in libstb
// (linked by viz/CMakeLists.txt), so only the declarations are included here.
#include <stb_image_write.h>
// stb_easy_font is a header-only helper with static functions: safe to include here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

namespace msa::viz {

uint32_t Rgba::packed() const {
    return static_cast<uint32_t>(r) | (static_cast<uint32_t>(g) << 8) | (static_cast<uint32_t>(b) << 16) |
           (static_cast<uint32_t>(a) << 24);
}

Image::Image(int w, int h, Rgba fill) : width(std::max(0, w)), height(std::max(0, h)) {
    pixels.resize(static_cast<size_t>(width) * height * 4);
    for (size_t i = 0; i < pixels.size(); i += 4) {
        pixels[i] = fill.r;
        pixels[i + 1] = fill.g;
        pixels[i + 2] = fill.b;
        pixels[i + 3] = fill.a;
    }
}

Rgba Image::at(int x, int y) const {
    if (x < 0 || y < 0 || x >= width || y >= height) return {0, 0, 0, 0};
    const uint8_t* p = &pixels[(static_cast<size_t>(y) * width + x) * 4];
    return {p[0], p[1], p[2], p[3]};
}

void Image::set(int x, int y, Rgba c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    uint8_t* p = &pixels[(static_cast<size_t>(y) * width + x) * 4];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
    p[3] = c.a;
}

void Image::fill_rect(int x, int y, int w, int h, Rgba c) {
    int x0 = std::max(0, x), y0 = std::max(0, y);
    int x1 = std::min(width, x + w), y1 = std::min(height, y + h);
    for (int yy = y0; yy < y1; ++yy)
        for (int xx = x0; xx < x1; ++xx) set(xx, yy, c);
}

void Image::stroke_rect(int x, int y, int w, int h, Rgba c) {
    if (w <= 0 || h <= 0) return;
    fill_rect(x, y, w, 1, c);
    fill_rect(x, y + h - 1, w, 1, c);
    fill_rect(x, y, 1, h, c);
    fill_rect(x + w - 1, y, 1, h, c);
}

void Image::line(int x0, int y0, int x1, int y1, Rgba c) {
    int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        set(x0, y0, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) { err += dy; x0 += sx; }
        if (e2 <= dx) { err += dx; y0 += sy; }
    }
}

void Image::blit(const Image& src, int x, int y) {
    for (int yy = 0; yy < src.height; ++yy)
        for (int xx = 0; xx < src.width; ++xx) set(x + xx, y + yy, src.at(xx, yy));
}

void Image::flip_vertical() {
    const size_t stride = static_cast<size_t>(width) * 4;
    std::vector<uint8_t> tmp(stride);
    for (int y = 0; y < height / 2; ++y) {
        uint8_t* a = &pixels[y * stride];
        uint8_t* b = &pixels[(height - 1 - y) * stride];
        std::memcpy(tmp.data(), a, stride);
        std::memcpy(a, b, stride);
        std::memcpy(b, tmp.data(), stride);
    }
}

void write_png(const Image& image, const std::string& path) {
    if (image.empty()) throw std::runtime_error(path + ": refusing to write an empty image");
    if (!stbi_write_png(path.c_str(), image.width, image.height, 4, image.pixels.data(), image.width * 4))
        throw std::runtime_error(path + ": cannot write PNG");
}

int text_width(const std::string& text, int scale) {
    return stb_easy_font_width(const_cast<char*>(text.c_str())) * scale;
}

int draw_text(Image& image, int x, int y, const std::string& text, Rgba colour, int scale) {
    // stb_easy_font emits quads (4 vertices of 16 bytes: x, y, z floats + colour)
    // and silently drops those that do not fit. Its "~270 bytes per character"
    // is an average: '8' alone takes 9 quads (576 bytes), so a short label like
    // a tick "8" lost its last segments and read as "?". 16 quads per character
    // covers every glyph.
    std::vector<char> buffer(text.size() * 16 * 64 + 64);
    int quads = stb_easy_font_print(0, 0, const_cast<char*>(text.c_str()), nullptr, buffer.data(),
                                    static_cast<int>(buffer.size()));
    for (int q = 0; q < quads; ++q) {
        const float* v = reinterpret_cast<const float*>(buffer.data() + q * 64);
        float qx0 = v[0], qy0 = v[1], qx1 = v[8], qy1 = v[9];
        image.fill_rect(x + static_cast<int>(qx0) * scale, y + static_cast<int>(qy0) * scale,
                        static_cast<int>(qx1 - qx0) * scale, static_cast<int>(qy1 - qy0) * scale, colour);
    }
    return text_width(text, scale);
}

}  // namespace msa::viz
