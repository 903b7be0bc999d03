#include "app/gui/charts.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace msa::gui {

namespace {
constexpr ImU32 kAxis = IM_COL32(160, 160, 170, 255);
constexpr ImU32 kGrid = IM_COL32(60, 60, 70, 255);
constexpr ImU32 kText = IM_COL32(200, 200, 205, 255);
constexpr ImU32 kBack = IM_COL32(22, 22, 26, 255);
constexpr float kLeft = 40, kBottom = 16, kTop = 22;
}  // namespace

int bar_chart(const char* id, const char* title, const std::vector<double>& values, const BarChartStyle& s,
              ImVec2 size) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton(id, size);
    bool hovered = ImGui::IsItemHovered();
    dl->AddRectFilled(p, ImVec2(p.x + size.x, p.y + size.y), kBack);
    dl->AddText(ImVec2(p.x + 4, p.y + 1), kText, title);
    float x0 = p.x + kLeft, x1 = p.x + size.x - 4, y0 = p.y + kTop, y1 = p.y + size.y - kBottom;
    viz::Scale y{s.lo, s.hi, y1, y0};
    for (double t : viz::nice_ticks(s.lo, s.hi, std::max(2, static_cast<int>((y1 - y0) / 28)))) {
        float py = static_cast<float>(y(t));
        dl->AddLine(ImVec2(x0, py), ImVec2(x1, py), kGrid);
        std::string label = viz::short_number(t);
        ImVec2 ts = ImGui::CalcTextSize(label.c_str());
        dl->AddText(ImVec2(x0 - 4 - ts.x, py - ts.y / 2), kAxis, label.c_str());
    }
    int n = static_cast<int>(values.size());
    int hit = -1;
    if (n) {
        float slot = (x1 - x0) / n;
        int label_every = std::max(1, static_cast<int>(std::ceil(24.0 / slot)));
        for (int i = 0; i < n; ++i) {
            float bx0 = x0 + i * slot + std::min(2.f, slot * 0.15f), bx1 = x0 + (i + 1) * slot - std::min(2.f, slot * 0.15f);
            if (std::isfinite(values[i])) {
                float py = static_cast<float>(y(std::clamp(values[i], s.lo, s.hi)));
                ImU32 c = i < static_cast<int>(s.colours.size()) ? s.colours[i] : s.colour;
                dl->AddRectFilled(ImVec2(bx0, py), ImVec2(std::max(bx0 + 1, bx1), y1), c);
            }
            if (i == s.highlight) dl->AddRect(ImVec2(bx0 - 1, y0), ImVec2(bx1 + 1, y1 + 1), IM_COL32(255, 255, 255, 255));
            if (i < static_cast<int>(s.markers.size()) && std::isfinite(s.markers[i])) {
                float py = static_cast<float>(y(std::clamp(s.markers[i], s.lo, s.hi)));
                dl->AddLine(ImVec2(bx0 - 2, py), ImVec2(bx1 + 2, py), IM_COL32(255, 255, 255, 255), 2.f);
            }
            if (i < static_cast<int>(s.labels.size()) && i % label_every == 0) {
                ImVec2 ts = ImGui::CalcTextSize(s.labels[i].c_str());
                dl->AddText(ImVec2((bx0 + bx1 - ts.x) / 2, y1 + 1), kAxis, s.labels[i].c_str());
            }
        }
        ImVec2 m = ImGui::GetIO().MousePos;
        if (hovered && m.x >= x0 && m.x < x1) hit = std::clamp(static_cast<int>((m.x - x0) / slot), 0, n - 1);
    }
    dl->AddLine(ImVec2(x0, y1), ImVec2(x1, y1), kAxis);
    return hit;
}

void line_chart(const char* id, const char* title, const std::vector<ChartLine>& lines, bool log_x, bool log_y,
                ImVec2 size) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton(id, size);
    dl->AddRectFilled(p, ImVec2(p.x + size.x, p.y + size.y), kBack);
    dl->AddText(ImVec2(p.x + 4, p.y + 1), kText, title);
    double xl = std::numeric_limits<double>::infinity(), xh = -xl, yl = xl, yh = -xl;
    for (const ChartLine& l : lines)
        for (size_t i = 0; i < l.x.size(); ++i)
            if (std::isfinite(l.x[i]) && std::isfinite(l.y[i])) {
                xl = std::min(xl, l.x[i]);
                xh = std::max(xh, l.x[i]);
                yl = std::min(yl, l.y[i]);
                yh = std::max(yh, l.y[i]);
            }
    if (!(xh > xl)) return;
    if (!log_y) yl = std::min(0.0, yl);
    if (!(yh > yl)) yh = yl + 1;
    float x0 = p.x + kLeft, x1 = p.x + size.x - 8, y0 = p.y + kTop + 4, y1 = p.y + size.y - kBottom - 4;
    viz::Scale x{xl, xh, x0, x1, log_x}, y{yl, yh, y1, y0, log_y};
    for (double t : log_y ? viz::log_ticks(yl, yh) : viz::nice_ticks(yl, yh, 4)) {
        float py = static_cast<float>(y(t));
        dl->AddLine(ImVec2(x0, py), ImVec2(x1, py), kGrid);
        std::string label = viz::short_number(t);
        ImVec2 ts = ImGui::CalcTextSize(label.c_str());
        dl->AddText(ImVec2(x0 - 4 - ts.x, py - ts.y / 2), kAxis, label.c_str());
    }
    std::vector<double> xt;
    if (log_x) {
        // Powers of two read better for context lengths.
        for (double v = std::pow(2.0, std::ceil(std::log2(xl))); v <= xh; v *= 4) xt.push_back(v);
    } else {
        xt = viz::nice_ticks(xl, xh, 5);
    }
    for (double t : xt) {
        float px = static_cast<float>(x(t));
        dl->AddLine(ImVec2(px, y0), ImVec2(px, y1), kGrid);
        std::string label = viz::short_number(t);
        ImVec2 ts = ImGui::CalcTextSize(label.c_str());
        dl->AddText(ImVec2(px - ts.x / 2, y1 + 2), kAxis, label.c_str());
    }
    dl->AddLine(ImVec2(x0, y1), ImVec2(x1, y1), kAxis);
    dl->AddLine(ImVec2(x0, y0), ImVec2(x0, y1), kAxis);
    // Legend entries left to right, wrapping to another row at the right edge.
    float legend_x = x0 + 8, legend_y = y0;
    for (const ChartLine& l : lines) {
        ImVec2 prev;
        bool have = false;
        for (size_t i = 0; i < l.x.size(); ++i) {
            if (!std::isfinite(l.x[i]) || !std::isfinite(l.y[i])) { have = false; continue; }
            ImVec2 pt(static_cast<float>(x(l.x[i])), static_cast<float>(y(l.y[i])));
            if (l.points) dl->AddCircleFilled(pt, 4.f, l.colour);
            else if (have) dl->AddLine(prev, pt, l.colour, 2.f);
            prev = pt;
            have = true;
        }
        if (!l.name.empty()) {
            const float w = 24 + ImGui::CalcTextSize(l.name.c_str()).x;
            if (legend_x + w - 10 > x1 && legend_x > x0 + 8) legend_x = x0 + 8, legend_y += ImGui::GetTextLineHeight() + 2;
            dl->AddRectFilled(ImVec2(legend_x, legend_y + 2), ImVec2(legend_x + 10, legend_y + 12), l.colour);
            dl->AddText(ImVec2(legend_x + 14, legend_y - 1), kText, l.name.c_str());
            legend_x += w;
        }
    }
}

}  // namespace msa::gui
