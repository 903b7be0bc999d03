#include "app/gui/query_inspector.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "app/gui/app.h"
#include "app/gui/panel.h"
#include "viz/query_stats.h"

namespace msa::gui {

namespace {

// Bars of `values` (one per visible block), selected ones in the outline colour.
void block_bars(const char* label, const std::vector<float>& values, const std::vector<bool>& selected, float lo,
                float hi, float height, int local_block) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImVec2 p = ImGui::GetCursorScreenPos();
    float w = ImGui::GetContentRegionAvail().x;
    dl->AddRectFilled(p, ImVec2(p.x + w, p.y + height), to_imgui(viz::palette::background));
    int n = static_cast<int>(values.size());
    float slot = n ? w / n : w;
    for (int i = 0; i < n; ++i) {
        float v = std::isfinite(values[i]) ? values[i] : lo;
        float f = hi > lo ? std::clamp((v - lo) / (hi - lo), 0.f, 1.f) : 0.f;
        float x0 = p.x + i * slot + (slot > 3 ? 1 : 0), x1 = p.x + (i + 1) * slot - (slot > 3 ? 1 : 0);
        ImU32 colour = selected[i] ? to_imgui(viz::palette::selected_outline) : IM_COL32(110, 130, 170, 255);
        dl->AddRectFilled(ImVec2(x0, p.y + height * (1 - f)), ImVec2(std::max(x0 + 1, x1), p.y + height), colour);
        if (i == local_block) dl->AddText(ImVec2(x0, p.y + height - 14), IM_COL32(255, 255, 255, 200), "L");
    }
    // The label last, on a backing, so bars never hide it.
    ImVec2 ls = ImGui::CalcTextSize(label);
    dl->AddRectFilled(ImVec2(p.x + 2, p.y + 1), ImVec2(p.x + 8 + ls.x, p.y + 3 + ls.y), IM_COL32(22, 22, 26, 200));
    dl->AddText(ImVec2(p.x + 5, p.y + 2), to_imgui(viz::palette::text), label);
    ImGui::Dummy(ImVec2(w, height));
    if (ImGui::IsItemHovered() && n) {
        int i = std::clamp(static_cast<int>((ImGui::GetIO().MousePos.x - p.x) / slot), 0, n - 1);
        ImGui::SetTooltip("block %d: %.4g%s", i, values[i], selected[i] ? " (selected)" : "");
    }
}

}  // namespace

void QueryInspector::draw(App& app, const viz::Rect& r) {
    begin_panel("Query inspector", r);
    const LayerCapture* c = app.capture();
    if (!c || app.doc().empty()) {
        ImGui::TextDisabled("no captured layer");
        ImGui::End();
        return;
    }
    const Document& doc = app.doc();
    const int n = static_cast<int>(doc.run->tokens.size());
    ImGui::SetNextItemWidth(140);
    int q = app.query;
    if (ImGui::InputInt("query", &q, 1, 128)) app.query = std::clamp(q, 0, n - 1);
    ImGui::SameLine();
    if (app.query < 0) {
        ImGui::TextDisabled("click a query row in a heatmap");
        ImGui::End();
        return;
    }
    const int t = app.query, B = app.block_size();
    // A selections-only capture has neither: its blocks follow from the run's length.
    const int nb = c->scores.n_blocks ? c->scores.n_blocks : c->mass.n_blocks ? c->mass.n_blocks : (n + B - 1) / B;
    const int visible = viz::visible_blocks(t, B, nb);
    const Selection* sel = app.selection();
    std::vector<bool> selected(visible);
    int n_selected = 0;
    for (int b = 0; b < visible; ++b) n_selected += (selected[b] = sel && viz::is_selected(*sel, t, app.group, b));
    ImGui::Text("\"%s\"  sees %d blocks, keeps %d", doc.token_on_one_line(t).c_str(), visible, n_selected);
    if (const std::vector<float>* recall = app.recall(); recall && !recall->empty() && c->mass.n_heads) {
        const int heads = c->mass.n_heads, rsize = app.group_size();
        double group_recall = 0;
        for (int h = app.group * rsize; h < (app.group + 1) * rsize; ++h) group_recall += (*recall)[size_t(t) * heads + h];
        char line[128];
        std::snprintf(line, sizeof line, "  recall: head %d %.3f, group %d mean %.3f", app.head,
                      (*recall)[size_t(t) * heads + app.head], app.group, group_recall / rsize);
        text_beside_or_below(line);
    }
    ImGui::TextDisabled("...%s", doc.text(std::max(0, t - 24), t + 1, 200).c_str());
    if (c->scores.values.empty() && c->mass.values.empty())
        ImGui::TextDisabled("layer %d kept selections only: no block scores or dense mass to plot; its kept blocks:",
                            c->layer);

    const float bars_h = std::max(40.f, (ImGui::GetContentRegionAvail().y - 40) * 0.28f);
    std::vector<float> scores(visible), mass(visible);
    float s_lo = INFINITY, s_hi = -INFINITY;
    if (!c->scores.values.empty()) {
        const float* row = c->scores.row(t, app.group);
        for (int b = 0; b < visible; ++b) {
            scores[b] = row[b];
            if (std::isfinite(row[b])) s_lo = std::min(s_lo, row[b]), s_hi = std::max(s_hi, row[b]);
        }
        block_bars("block score (group)", scores, selected, s_lo - 0.05f * (s_hi - s_lo), s_hi, bars_h, t / B);
    }
    if (!c->mass.values.empty()) {
        const int rsize = app.group_size();
        float m_hi = 0;
        for (int b = 0; b < visible; ++b) {
            for (int h = app.group * rsize; h < (app.group + 1) * rsize; ++h) mass[b] += c->mass.row(t, h)[b] / rsize;
            m_hi = std::max(m_hi, mass[b]);
        }
        block_bars("dense mass (group mean)", mass, selected, 0.f, std::max(1e-6f, m_hi), bars_h, t / B);
    }
    // Best blocks with their text; selected ones highlighted.
    ImGui::BeginChild("top blocks", ImVec2(0, 0), true);
    const bool selections_only = c->scores.values.empty() && c->mass.values.empty();
    std::vector<int> ranked = c->scores.values.empty() ? std::vector<int>() : viz::ranked_blocks(scores.data(), visible, 24);
    if (ranked.empty())
        for (int b = 0; b < visible; ++b)
            if (!selections_only || selected[b]) ranked.push_back(b);
    for (size_t i = 0; i < ranked.size(); ++i) {
        int b = ranked[i];
        ImVec4 colour = selected[b] ? to_imvec4(viz::palette::selected_outline) : ImVec4(0.6f, 0.6f, 0.65f, 1);
        if (selections_only)
            ImGui::TextColored(colour, "block %d  selected", b);
        else
            ImGui::TextColored(colour, "#%zu  block %d  score %.3f  mass %.3f%s", i + 1, b, scores[b], mass[b],
                               selected[b] ? "  selected" : "");
        ImGui::PushTextWrapPos(0);
        ImGui::PushStyleColor(ImGuiCol_Text, selected[b] ? ImVec4(1, 0.85f, 0.65f, 1) : ImVec4(0.55f, 0.55f, 0.6f, 1));
        ImGui::TextUnformatted(doc.text(b * B, std::min(n, std::min((b + 1) * B, t + 1)), 300).c_str());
        ImGui::PopStyleColor();
        ImGui::PopTextWrapPos();
    }
    ImGui::EndChild();
    ImGui::End();
}

}  // namespace msa::gui
