#pragma once
// An 8-bit RGBA raster: what every viz builder returns, what the GUI uploads
// as a texture and what the PNG writer stores. Row 0 is the top row.
#include <cstdint>
#include <string>
#include <vector>

namespace msa::viz {

struct Rgba {
    uint8_t r = 0, g = 0, b = 0, a = 255;
    bool operator==(const Rgba& o) const { return r == o.r && g == o.g && b == o.b && a == o.a; }
    bool operator!=(const Rgba& o) const { return !(*this == o); }
    uint32_t packed() const;  // little-endian RGBA in one word: what ImGui's ImU32 expects
};

struct Image {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> pixels;  // width * height * 4

    Image() = default;
    Image(int w, int h, Rgba fill = {0, 0, 0, 255});
    bool empty() const { return width <= 0 || height <= 0; }
    Rgba at(int x, int y) const;
    void set(int x, int y, Rgba c);                  // ignores out-of-range pixels
    void fill_rect(int x, int y, int w, int h, Rgba c);  // clipped
    void stroke_rect(int x, int y, int w, int h, Rgba c);
    void line(int x0, int y0, int x1, int y1, Rgba c);  // Bresenham, clipped
    void blit(const Image& src, int x, int y);          // copy, clipped
    void flip_vertical();                                // OpenGL read-back is bottom-up
};

// Writes a PNG (stb_image_write). Throws std::runtime_error naming the path on failure.
void write_png(const Image& image, const std::string& path);

// Tiny vector-font text (stb_easy_font), so exported PNGs carry their labels
// without a window. Returns the width in pixels drawn; scale is an integer zoom.
int draw_text(Image& image, int x, int y, const std::string& text, Rgba colour, int scale = 1);
int text_width(const std::string& text, int scale = 1);

}  // namespace msa::viz
