#include "app/gui/controls_panel.h"

#include <cstdio>

#include "app/gui/app.h"
#include "app/gui/panel.h"

namespace msa::gui {

void ControlsPanel::draw(App& app, const viz::Rect& r) {
    begin_panel("Controls", r);
    if (app.doc().empty()) {
        ImGui::TextDisabled("load a run first");
        ImGui::End();
        return;
    }
    const RunResult& run = *app.doc().run;
    ImGui::PushItemWidth(-90);
    if (!run.captures.empty()) {
        int n = static_cast<int>(run.captures.size());
        std::string label = "layer " + std::to_string(run.captures[app.capture_index].layer);
        if (ImGui::SliderInt("capture", &app.capture_index, 0, n - 1, label.c_str())) app.query = app.query;
    }
    int groups = std::max(1, run.model_config.n_kv_heads), heads = std::max(1, run.model_config.n_heads);
    if (ImGui::SliderInt("group", &app.group, 0, groups - 1)) app.head = app.group * app.group_size();
    if (ImGui::SliderInt("head", &app.head, 0, heads - 1)) app.group = app.head / app.group_size();
    ImGui::Separator();
    ImGui::SliderInt("k", &app.budget.k, 1, 64);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("blocks kept per query and group, forced ones included");
    bool sink = app.budget.sink != 0;
    if (ImGui::Checkbox("sink (force block 0)", &sink)) app.budget.sink = sink ? 1 : 0;
    static const int kBlocks[] = {16, 32, 64, 128, 256};
    int block_index = 3;
    for (int i = 0; i < 5; ++i)
        if (kBlocks[i] == app.budget.block) block_index = i;
    const char* block_names[] = {"16", "32", "64", "128", "256"};
    if (ImGui::Combo("block B", &block_index, block_names, 5)) app.budget.block = kBlocks[block_index];
    int scorer = static_cast<int>(app.budget.scorer);
    const char* scorers[] = {"max", "mean", "quest", "random"};
    if (ImGui::Combo("scorer", &scorer, scorers, 4)) app.budget.scorer = static_cast<Scorer>(scorer);
    ImGui::PopItemWidth();

    if (!budget_has_free_slot(app.budget))
        ImGui::TextColored(ImVec4(1, 0.6f, 0.3f, 1), "k=%d leaves no free slot after the forced blocks:\nretrieval is off (budget floor)",
                           app.budget.k);
    if (app.repool_pending()) {
        std::string problem = app.repool_problem();
        if (!problem.empty()) {
            ImGui::PushTextWrapPos(0);
            ImGui::TextColored(ImVec4(1, 0.75f, 0.3f, 1), "%s", problem.c_str());
            ImGui::PopTextWrapPos();
        } else if (app.repool_job().running()) {
            const Job& job = app.repool_job();
            char label[160];
            std::snprintf(label, sizeof label, "%s  %.1f s", job.stage().c_str(), job.seconds());
            ImGui::ProgressBar(static_cast<float>(job.fraction()), ImVec2(-1, 0), label);
            ImGui::TextDisabled("re-pooling from the layer's Q/K/V;\nthe views show B=%d %s until it is done",
                                app.block_size(), to_string(run.config.scorer));
        }
    }
    if (app.scores_warmup_job().running())
        ImGui::TextDisabled("caching the other scorers: %s", app.scores_warmup_job().stage().c_str());
    ImGui::Separator();
    if (const viz::LayerSelectionStats* live = app.live()) {
        char quantiles[64];
        std::snprintf(quantiles, sizeof quantiles, "p5 %.3f  p50 %.3f", live->recall_p5, live->recall_p50);
        ImGui::Text("recall  mean %.3f ", live->recall_mean);
        text_beside_or_below(quantiles);
        ImGui::TextDisabled("re-selected in %.1f ms (k=%d, sink=%d)", live->elapsed_ms, app.budget.k, app.budget.sink);
    } else if (app.capture()) {
        ImGui::TextDisabled("this capture has selections only:\nk / sink changes need block scores");
    }
    if (app.capture_index < static_cast<int>(run.layers.size())) {
        for (const LayerResult& lr : run.layers)
            if (app.capture() && lr.layer == app.capture()->layer)
                ImGui::TextDisabled("as run (k=%d): recall %.3f, output error %.4f", run.config.k, lr.recall_mean,
                                    lr.output_rel_error);
    }
    ImGui::End();
}

}  // namespace msa::gui
