#pragma once
// An OpenGL texture holding one viz::Image, for ImGui::Image.
#include <imgui.h>

#include "viz/image.h"

namespace msa::gui {

class Texture {
public:
    Texture() = default;
    ~Texture();
    Texture(const Texture&) = delete;
    Texture& operator=(const Texture&) = delete;

    void upload(const viz::Image& image);  // nearest filtering: heatmap cells stay crisp
    ImTextureID id() const;
    int width() const { return width_; }
    int height() const { return height_; }
    bool empty() const { return id_ == 0; }

private:
    unsigned id_ = 0;
    int width_ = 0, height_ = 0;
};

// The current framebuffer as an image (top row first), for --screenshot.
viz::Image read_framebuffer(int width, int height);

}  // namespace msa::gui
