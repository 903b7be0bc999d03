#include "app/gui/layer_overview.h"

#include <algorithm>
#include <cmath>

#include "app/gui/app.h"
#include "app/gui/charts.h"
#include "app/gui/panel.h"

namespace msa::gui {

namespace {

// Recall colours: the viridis position of the value, so low recall reads dark.
ImU32 recall_colour(double r) { return to_imgui(viz::viridis(std::clamp(r, 0.0, 1.0))); }

int capture_of_layer(const RunResult& run, int layer) {
    for (size_t i = 0; i < run.captures.size(); ++i)
        if (run.captures[i].layer == layer) return static_cast<int>(i);
    return -1;
}

}  // namespace

void LayerOverview::draw(App& app, const viz::Rect& r) {
    begin_panel("Layer overview", r);
    if (app.doc().empty() || app.doc().run->layers.empty()) {
        ImGui::TextDisabled("no layer metrics in this run");
        ImGui::End();
        return;
    }
    const RunResult& run = *app.doc().run;
    const int groups = std::max(1, run.model_config.n_kv_heads);
    const int n = static_cast<int>(run.layers.size());
    const int shown_layer = app.capture() ? app.capture()->layer : -1;
    std::vector<std::string> labels(n);
    for (int i = 0; i < n; ++i) labels[i] = std::to_string(run.layers[i].layer);
    ImGui::PushTextWrapPos(0);
    ImGui::TextDisabled("as run: k=%d sink=%d; white tick = live value at k=%d sink=%d", run.config.k, run.config.sink,
                        app.budget.k, app.budget.sink);
    ImGui::PopTextWrapPos();

    const int charts = groups + 1;
    const float avail = ImGui::GetContentRegionAvail().y;
    const float chart_h = std::max(54.f, (avail - (charts - 1) * 4) / charts);
    const float w = ImGui::GetContentRegionAvail().x;
    ImGui::BeginChild("charts", ImVec2(0, 0), false);
    for (int g = 0; g < groups; ++g) {
        std::vector<double> values(n, NAN), markers(n, NAN);
        BarChartStyle style;
        style.lo = 0;
        style.hi = 1;
        style.labels = labels;
        for (int i = 0; i < n; ++i) {
            const LayerResult& lr = run.layers[i];
            values[i] = g < static_cast<int>(lr.group_recall_mean.size()) ? lr.group_recall_mean[g] : lr.recall_mean;
            style.colours.push_back(recall_colour(values[i]));
            if (lr.layer == shown_layer) {
                if (g == app.group) style.highlight = i;
                if (const viz::LayerSelectionStats* live = app.live(); live && g < int(live->group_recall_mean.size()))
                    markers[i] = live->group_recall_mean[g];
            }
        }
        style.markers = markers;
        char title[64], id[32];
        std::snprintf(title, sizeof title, "recall, group %d", g);
        std::snprintf(id, sizeof id, "recall%d", g);
        int hit = bar_chart(id, title, values, style, ImVec2(w, chart_h));
        if (hit >= 0) {
            ImGui::SetTooltip("layer %d, group %d\nrecall %.3f (as run)%s", run.layers[hit].layer, g, values[hit],
                              capture_of_layer(run, run.layers[hit].layer) >= 0 ? "\nclick to show" : "\n(not captured)");
            if (ImGui::IsItemClicked()) app.jump_to(capture_of_layer(run, run.layers[hit].layer), g);
        }
    }
    std::vector<double> error(n);
    double hi = 0;
    for (int i = 0; i < n; ++i) hi = std::max(hi, error[i] = run.layers[i].output_rel_error);
    BarChartStyle style;
    style.hi = hi > 0 ? hi * 1.1 : 1;
    style.labels = labels;
    style.colour = IM_COL32(220, 110, 90, 255);
    for (int i = 0; i < n; ++i)
        if (run.layers[i].layer == shown_layer) style.highlight = i;
    int hit = bar_chart("error", "output error ||O_msa - O_dense|| / ||O_dense||", error, style, ImVec2(w, chart_h));
    if (hit >= 0) {
        ImGui::SetTooltip("layer %d: output error %.4f, recall %.3f (p5 %.3f)", run.layers[hit].layer, error[hit],
                          run.layers[hit].recall_mean, run.layers[hit].recall_p5);
        if (ImGui::IsItemClicked()) app.jump_to(capture_of_layer(run, run.layers[hit].layer), app.group);
    }
    ImGui::EndChild();
    ImGui::End();
}

}  // namespace msa::gui
