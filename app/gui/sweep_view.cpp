#include "app/gui/sweep_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "app/gui/app.h"
#include "app/gui/panel.h"
#include "viz/study_charts.h"

namespace msa::gui {

namespace {

constexpr float kGap = 6.f;

void number_cell(double v, const char* format) {
    ImGui::TableNextColumn();
    if (std::isfinite(v)) ImGui::Text(format, v);
    else ImGui::TextDisabled("-");
}

}  // namespace

void SweepView::draw(App& app, const viz::Rect& r) {
    begin_panel("Quality study", r, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
    const Document& doc = app.doc();
    if (doc.empty() || doc.study.empty()) {
        charts_.clear();
        rendered_run_ = nullptr;
        ImGui::TextDisabled(
            "This page shows a sweep or needle run: open one in Sessions (made by msascope-cli sweep / needle "
            "--session FILE).");
        ImGui::End();
        return;
    }
    const viz::StudyTable& table = doc.study;
    if (ImGui::Button("Export PNG")) export_png(app);
    ImGui::SameLine();
    ImGui::TextDisabled("%s", viz::study_caption(doc.study, doc.source).c_str());
    if (std::isfinite(table.dense_perplexity)) {
        ImGui::SameLine();
        ImGui::TextDisabled("|  dense perplexity %.3f", table.dense_perplexity);
    }

    // Charts in two columns above the rows table; the table gets at most about a
    // quarter of the height (it scrolls), so the charts can use double-size text.
    const std::vector<std::string> metrics = viz::study_metrics(table);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const int n = static_cast<int>(metrics.size());
    const int columns = n <= 1 ? 1 : 2, rows = (n + columns - 1) / columns;
    const float row_h = ImGui::GetTextLineHeightWithSpacing() + 2;
    const float table_h = std::clamp(row_h * (table.points.size() + 1.5f), row_h * 4, avail.y * 0.26f);
    const int cell_w = static_cast<int>((avail.x - kGap * (columns - 1)) / columns);
    const int cell_h = rows > 0 ? static_cast<int>((avail.y - table_h - kGap * rows) / rows) : 0;
    if (n > 0 && cell_w > 40 && cell_h > 40) {
        if (rendered_run_ != doc.run.get() || rendered_source_ != doc.source || rendered_w_ != cell_w || rendered_h_ != cell_h ||
            charts_.size() != metrics.size()) {
            // Large cells get double-size text: the window is read at full size and exported for the README.
            const int text_scale = cell_w >= 480 && cell_h >= 300 ? 2 : 1;
            charts_.clear();
            for (const viz::StudyChart& chart : viz::study_charts(table, cell_w, cell_h, text_scale)) {
                charts_.push_back(std::make_unique<Texture>());
                charts_.back()->upload(chart.image);
            }
            rendered_run_ = doc.run.get();
            rendered_source_ = doc.source;
            rendered_w_ = cell_w;
            rendered_h_ = cell_h;
        }
        for (size_t i = 0; i < charts_.size(); ++i) {
            if (i % columns != 0) ImGui::SameLine(0, kGap);
            ImGui::Image(charts_[i]->id(), ImVec2(static_cast<float>(cell_w), static_cast<float>(cell_h)));
        }
    } else if (n == 0) {
        ImGui::TextDisabled("This run stored rows but no measured values to chart.");
    }
    rows_table(app, std::max(row_h * 3, ImGui::GetContentRegionAvail().y));
    ImGui::End();
}

void SweepView::rows_table(App& app, float height) {
    const viz::StudyTable& table = app.doc().study;
    if (!ImGui::BeginTable("study rows", table.needles > 0 ? 9 : 8,
                           ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_BordersInnerV,
                           ImVec2(0, height)))
        return;
    ImGui::TableSetupScrollFreeze(0, 1);
    for (const char* c : {"k", "scorer", "sink", "block"}) ImGui::TableSetupColumn(c, ImGuiTableColumnFlags_WidthFixed, 60);
    for (const char* c : {"recall", "perplexity", "vs dense", "needle hits", "answers"})
        if (std::string(c) != "answers" || table.needles > 0) ImGui::TableSetupColumn(c);
    ImGui::TableHeadersRow();
    for (const viz::StudyPoint& p : table.points) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::Text("%d", p.k);
        ImGui::TableNextColumn();
        ImGui::TextColored(to_imvec4(viz::scorer_colour(p.scorer)), "%s", p.scorer.c_str());
        ImGui::TableNextColumn();
        ImGui::Text("%d", p.sink);
        ImGui::TableNextColumn();
        ImGui::Text("%d", p.block);
        number_cell(p.recall_mean, "%.4f");
        number_cell(p.perplexity, "%.3f");
        number_cell(100 * (p.perplexity / table.dense_perplexity - 1), "%+.2f%%");
        number_cell(p.needle_hit_rate, "%.3f");
        if (table.needles > 0) {
            ImGui::TableNextColumn();
            if (std::isfinite(p.answers_correct)) ImGui::Text("%.0f / %d", p.answers_correct, table.needles);
            else ImGui::TextDisabled("-");
        }
    }
    ImGui::EndTable();
}

void SweepView::export_png(App& app) {
    const Document& doc = app.doc();
    char path[128];
    std::snprintf(path, sizeof path, "msascope-%s-run%lld.png", doc.study.kind.c_str(), doc.session_run);
    try {
        viz::write_png(viz::study_figure(doc.study, viz::study_caption(doc.study, doc.source)), path);
        app.set_status(std::string("wrote ") + path);
    } catch (const std::exception& e) {
        app.set_status(e.what());
    }
}

}  // namespace msa::gui
