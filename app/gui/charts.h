#pragma once
// ImGui drawing of the small charts (bars per layer, lines over context), with
// the scales and ticks from viz/chart.h. Returns the index of the bar or point
// under the mouse (-1 none), so views can answer clicks.
#include <string>
#include <vector>

#include <imgui.h>

#include "viz/chart.h"

namespace msa::gui {

struct BarChartStyle {
    double lo = 0, hi = 1;
    std::vector<ImU32> colours;   // per bar; empty: one colour
    ImU32 colour = IM_COL32(110, 150, 220, 255);
    int highlight = -1;           // bar drawn with a white frame
    std::vector<double> markers;  // per bar, NaN for none: a white tick (e.g. the live value)
    std::vector<std::string> labels;  // x labels (sparse labelling when crowded)
};
int bar_chart(const char* id, const char* title, const std::vector<double>& values, const BarChartStyle& style,
              ImVec2 size);

struct ChartLine {
    std::vector<double> x, y;
    ImU32 colour = IM_COL32(110, 150, 220, 255);
    bool points = false;
    std::string name;
};
void line_chart(const char* id, const char* title, const std::vector<ChartLine>& lines, bool log_x, bool log_y,
                ImVec2 size);

}  // namespace msa::gui
