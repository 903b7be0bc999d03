#pragma once
// Helpers shared by the views: a fixed-position window at a layout rectangle.
#include <imgui.h>

#include <string>

#include "viz/image.h"
#include "viz/layout.h"

namespace msa::gui {

// Begins a window pinned to `r` (no move / resize: the layout owns geometry).
inline bool begin_panel(const char* title, const viz::Rect& r, ImGuiWindowFlags extra = 0) {
    ImGui::SetNextWindowPos(ImVec2(r.x, r.y));
    ImGui::SetNextWindowSize(ImVec2(r.w, r.h));
    return ImGui::Begin(title, nullptr,
                        ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                            ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus | extra);
}

// Width in pixels of `s` in the current font (for viz::elide).
inline float text_width(const std::string& s) { return ImGui::CalcTextSize(s.c_str()).x; }

// `s` on the line of the last item when it fits there, else on the next line
// (narrow windows wrap between phrases, never inside a number).
inline void text_beside_or_below(const std::string& s) {
    const float room = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x - ImGui::GetItemRectMax().x -
                       ImGui::GetStyle().ItemSpacing.x;
    if (text_width(s) <= room) ImGui::SameLine();
    ImGui::TextUnformatted(s.c_str());
}

inline ImU32 to_imgui(viz::Rgba c) { return c.packed(); }
inline ImVec4 to_imvec4(viz::Rgba c) { return ImVec4(c.r / 255.f, c.g / 255.f, c.b / 255.f, c.a / 255.f); }

}  // namespace msa::gui
