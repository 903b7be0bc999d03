#include "app/gui/compare_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "app/gui/app.h"
#include "app/gui/panel.h"
#include "viz/query_stats.h"

namespace msa::gui {

namespace {

// Colour of a relative change: blue when B is lower, red when higher, pale when small.
ImVec4 delta_colour(double rel) {
    if (!std::isfinite(rel)) return ImVec4(0.6f, 0.6f, 0.65f, 1);
    double t = std::clamp(rel / 0.25, -1.0, 1.0);  // 25% change saturates
    return to_imvec4(viz::diverging(t));
}

// Four significant digits, but whole numbers from 10^4 up: "22690", not
// "2.269e+04", which a narrow column would cut.
std::string table_number(double v, bool with_sign) {
    char buf[32];
    if (std::isfinite(v) && std::abs(v) >= 1e4) std::snprintf(buf, sizeof buf, with_sign ? "%+.0f" : "%.0f", v);
    else std::snprintf(buf, sizeof buf, with_sign ? "%+.4g" : "%.4g", v);
    return buf;
}

// A table cell's text, cut in the middle to the column (hover shows it whole).
void fitted_cell(const std::string& text, const ImVec4& colour) {
    const std::string shown = viz::elide(text, ImGui::GetContentRegionAvail().x, text_width);
    ImGui::TextColored(colour, "%s", shown.c_str());
    if (shown != text && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", text.c_str());
}

// Columns of a metric_row table: the name gets twice a number's share.
void setup_delta_columns(const char* name_header) {
    ImGui::TableSetupColumn(name_header, ImGuiTableColumnFlags_WidthStretch, 2.0f);
    for (const char* c : {"A", "B", "delta", "rel"}) ImGui::TableSetupColumn(c, ImGuiTableColumnFlags_WidthStretch, 1.0f);
}

// Nothing when neither run has the metric (a bench run has no recall or FLOPs ratio).
void metric_row(const char* name, double a, double b) {
    if (!std::isfinite(a) && !std::isfinite(b)) return;
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    fitted_cell(name, ImGui::GetStyleColorVec4(ImGuiCol_Text));
    // A side without the metric (a run without perplexity, a stage it skipped)
    // shows '-', and so do its delta and ratio.
    for (double v : {a, b}) {
        ImGui::TableNextColumn();
        if (std::isfinite(v)) ImGui::TextUnformatted(table_number(v, false).c_str());
        else ImGui::TextDisabled("-");
    }
    double delta = b - a, rel = a != 0 ? delta / std::abs(a) : NAN;
    ImGui::TableNextColumn();
    if (std::isfinite(delta)) ImGui::TextColored(delta_colour(rel), "%s", table_number(delta, true).c_str());
    else ImGui::TextDisabled("-");
    ImGui::TableNextColumn();
    if (std::isfinite(rel)) ImGui::TextColored(delta_colour(rel), "%+.1f%%", rel * 100);
    else ImGui::TextDisabled("-");
}

const LayerCapture* capture_for_layer(const RunResult& run, int layer) {
    for (const LayerCapture& c : run.captures)
        if (c.layer == layer) return &c;
    return nullptr;
}

}  // namespace

void CompareView::tables(App& app, float height) {
    const RunResult& a = *app.doc().run;
    const RunResult& b = *app.compare_doc().run;
    float w = ImGui::GetContentRegionAvail().x;
    float col = (w - 16) / 3;
    // Config diff.
    ImGui::BeginChild("config", ImVec2(col, height), true);
    ImGui::TextUnformatted("config");
    if (ImGui::BeginTable("cfg", 3, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingStretchProp)) {
        auto row = [](const char* name, const std::string& va, const std::string& vb) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(name);
            ImVec4 c = va == vb ? ImVec4(0.6f, 0.6f, 0.65f, 1) : ImVec4(1, 0.8f, 0.4f, 1);
            ImGui::TableNextColumn();
            fitted_cell(va, c);
            ImGui::TableNextColumn();
            fitted_cell(vb, c);
        };
        ImGui::TableSetupColumn("", ImGuiTableColumnFlags_WidthFixed, text_width("backend"));
        ImGui::TableSetupColumn("A");
        ImGui::TableSetupColumn("B");
        ImGui::TableHeadersRow();
        row("k", std::to_string(a.config.k), std::to_string(b.config.k));
        row("block", std::to_string(a.config.block), std::to_string(b.config.block));
        row("scorer", to_string(a.config.scorer), to_string(b.config.scorer));
        row("sink", std::to_string(a.config.sink), std::to_string(b.config.sink));
        row("index", to_string(a.config.index), to_string(b.config.index));
        row("tokens", std::to_string(a.tokens.size()), std::to_string(b.tokens.size()));
        row("backend", a.backend, b.backend);
        row("device", a.device, b.device);
        row("model", a.model_path, b.model_path);
        ImGui::EndTable();
    }
    ImGui::EndChild();
    ImGui::SameLine();
    // Metric deltas.
    ImGui::BeginChild("metrics", ImVec2(col, height), true);
    ImGui::TextUnformatted("metrics (B - A)");
    if (ImGui::BeginTable("met", 5, ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_SizingStretchProp)) {
        ImGui::TableSetupScrollFreeze(0, 1);
        setup_delta_columns("metric");
        ImGui::TableHeadersRow();
        auto mean_of = [](const RunResult& r, double LayerResult::*field) {
            double s = 0;
            for (const LayerResult& l : r.layers) s += l.*field;
            return r.layers.empty() ? NAN : s / r.layers.size();
        };
        metric_row("recall mean", mean_of(a, &LayerResult::recall_mean), mean_of(b, &LayerResult::recall_mean));
        metric_row("recall p5", mean_of(a, &LayerResult::recall_p5), mean_of(b, &LayerResult::recall_p5));
        metric_row("output error", mean_of(a, &LayerResult::output_rel_error), mean_of(b, &LayerResult::output_rel_error));
        metric_row("perplexity msa", a.perplexity_msa, b.perplexity_msa);
        metric_row("FLOPs ratio", a.flops_ratio(), b.flops_ratio());
        std::map<int, const LayerResult*> lb;
        for (const LayerResult& l : b.layers) lb[l.layer] = &l;
        for (const LayerResult& l : a.layers) {
            auto it = lb.find(l.layer);
            if (it == lb.end()) continue;
            char name[48];
            std::snprintf(name, sizeof name, "L%d recall", l.layer);
            metric_row(name, l.recall_mean, it->second->recall_mean);
        }
        // Bench runs: their rows per table and context (sparse ms, speedup, ...).
        nlohmann::json bench = {{"metrics", nlohmann::json::array()}, {"config_diff", nlohmann::json::array()}};
        sessions::add_bench_comparison(bench, app.doc().bench, app.compare_doc().bench);
        auto value = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; };
        for (const nlohmann::json& m : bench["metrics"])
            metric_row(m["name"].get<std::string>().c_str(), value(m["a"]), value(m["b"]));
        ImGui::EndTable();
    }
    ImGui::EndChild();
    ImGui::SameLine();
    // Kernel deltas.
    ImGui::BeginChild("kernels", ImVec2(col, height), true);
    ImGui::TextUnformatted("kernel time, ms (B - A)");
    // NaN = the run has no such kernel or stage (shown as '-', not as 0 ms);
    // a stage of 0 ms is one the run skipped (no perplexity pass, say).
    std::map<std::string, std::pair<double, double>> ms;
    auto add = [&](const std::string& name, bool first, double v) {
        auto& slot = ms.emplace(name, std::make_pair(NAN, NAN)).first->second;
        double& x = first ? slot.first : slot.second;
        x = std::isnan(x) ? v : x + v;
    };
    for (const KernelRecord& k : a.kernels) add(viz::short_kernel_name(k.name), true, k.ms());
    for (const KernelRecord& k : b.kernels) add(viz::short_kernel_name(k.name), false, k.ms());
    for (const StageTiming& s : a.timings)
        if (s.ms > 0) add("stage: " + s.name, true, s.ms);
    for (const StageTiming& s : b.timings)
        if (s.ms > 0) add("stage: " + s.name, false, s.ms);
    if (ms.empty()) ImGui::TextDisabled("neither run has kernels or stage timings");
    else if (ImGui::BeginTable("ker", 5, ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_SizingStretchProp)) {
        ImGui::TableSetupScrollFreeze(0, 1);
        setup_delta_columns("kernel");
        ImGui::TableHeadersRow();
        for (const auto& [name, v] : ms) metric_row(name.c_str(), v.first, v.second);
        ImGui::EndTable();
    }
    ImGui::EndChild();
}

void CompareView::heatmaps(App& app, float height) {
    const RunResult& ra = *app.doc().run;
    const RunResult& rb = *app.compare_doc().run;
    const LayerCapture* ca = app.capture();
    const int layer = ca ? ca->layer : -1;
    const LayerCapture* cb = capture_for_layer(rb, layer);
    float w = ImGui::GetContentRegionAvail().x;
    float col = (w - 16) / 3;
    float img_h = height - 22;
    int iw = static_cast<int>(col), ih = static_cast<int>(img_h);
    if (!ca && !cb) {
        ImGui::TextDisabled("Neither run kept a layer's block scores (a bench run keeps none): no heatmaps to compare.");
        return;
    }
    if (!ca || !cb) {
        ImGui::TextDisabled("Layer %d is captured in %s only: pick a layer both runs captured.", layer, ca ? "A" : "B");
        return;
    }
    // Both sides show the whole layer at the same scale as their own data.
    auto side = [&](Side& s, const LayerCapture& c, int block, const char* name) {
        if (s.key != &c) {
            s.key = &c;
            s.pyramid = viz::HeatmapPyramid(viz::HeatmapSource::from_scores(c.scores, app.group, block));
            double lo, hi;
            s.pyramid.value_range(lo, hi);
            s.range = {lo, hi, viz::ValueScale::linear};
            s.image_key.clear();
        }
        const Selection& sel = &c == ca && app.selection() ? *app.selection() : c.selection;
        const viz::HeatmapSource& src = s.pyramid.source();
        ImGui::BeginGroup();
        ImGui::Text("%s: block scores L%d g%d (k=%d B=%d %s)", name, c.layer, app.group,
                    &c == ca ? app.budget.k : rb.config.k, block, to_string(&c == ca ? ra.config.scorer : rb.config.scorer));
        if (!src.valid()) {
            ImGui::TextDisabled("no block scores captured");
        } else {
            std::string key = std::to_string(iw) + "x" + std::to_string(ih) + "|" + std::to_string(app.group) + "|" +
                              std::to_string(reinterpret_cast<uintptr_t>(&sel)) + "|" + std::to_string(app.budget.k) +
                              "|" + std::to_string(app.budget.sink);
            if (key != s.image_key) {
                viz::HeatmapStyle style;
                style.range = s.range;
                s.texture.upload(viz::render_heatmap(s.pyramid, &sel, app.group,
                                                     viz::HeatmapWindow::whole(src.n_rows, src.n_blocks), iw, ih, style));
                s.image_key = key;
            }
            ImGui::Image(s.texture.id(), ImVec2(static_cast<float>(iw), static_cast<float>(ih)));
        }
        ImGui::EndGroup();
    };
    side(a_, *ca, app.block_size(), "A");
    ImGui::SameLine(0, 8);
    side(b_, *cb, rb.config.block, "B");
    ImGui::SameLine(0, 8);
    ImGui::BeginGroup();
    const Selection* sa = app.selection();
    const Selection& sb = cb->selection;
    const int nb = ca->scores.n_blocks ? ca->scores.n_blocks : ca->mass.n_blocks;
    if (!sa || sa->n_tokens != sb.n_tokens || app.block_size() != rb.config.block || sa->n_groups != sb.n_groups) {
        ImGui::Text("selection difference");
        ImGui::TextDisabled("needs the same tokens, groups and block size in both runs");
    } else {
        std::string key = std::to_string(iw) + "x" + std::to_string(ih) + "|" + std::to_string(app.group) + "|" +
                          std::to_string(reinterpret_cast<uintptr_t>(sa)) + "|" + std::to_string(reinterpret_cast<uintptr_t>(&sb)) +
                          "|" + std::to_string(app.budget.k) + "|" + std::to_string(app.budget.sink);
        if (key != difference_key_) {
            difference_.upload(viz::render_selection_difference(*sa, sb, app.group, app.block_size(), nb,
                                                                viz::HeatmapWindow::whole(sa->n_tokens, nb), iw, ih));
            jaccard_ = viz::selection_jaccard(*sa, sb);
            difference_key_ = key;
        }
        ImGui::Text("selection: ");
        ImGui::SameLine(0, 0);
        ImGui::TextColored(to_imvec4(viz::palette::only_a), "A only ");
        ImGui::SameLine(0, 0);
        ImGui::TextColored(to_imvec4(viz::palette::only_b), "B only ");
        ImGui::SameLine(0, 0);
        ImGui::TextColored(to_imvec4(viz::palette::both), "both");
        ImGui::SameLine();
        ImGui::TextDisabled("Jaccard %.3f", jaccard_);
        ImGui::Image(difference_.id(), ImVec2(static_cast<float>(iw), static_cast<float>(ih)));
    }
    ImGui::EndGroup();
}

void CompareView::draw(App& app, const viz::Rect& r) {
    begin_panel("Compare", r);
    if (app.doc().empty() || app.compare_doc().empty()) {
        ImGui::TextDisabled(app.doc().empty() ? "Load a run (A) first."
                                              : "Pick a second run: press B next to a run in the Sessions list, "
                                                "or start with --compare FILE[:RUN].");
        if (app.compare_loader().running()) ImGui::ProgressBar(-1.0f * static_cast<float>(ImGui::GetTime()), ImVec2(-1, 0), "loading B");
        ImGui::End();
        return;
    }
    ImGui::Text("A: %s", app.doc().source.c_str());
    ImGui::SameLine(0, 30);
    ImGui::Text("B: %s", app.compare_doc().source.c_str());
    float h = ImGui::GetContentRegionAvail().y;
    tables(app, h * 0.42f);
    heatmaps(app, ImGui::GetContentRegionAvail().y - 4);
    ImGui::End();
}

}  // namespace msa::gui
