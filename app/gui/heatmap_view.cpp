#include "app/gui/heatmap_view.h"

#include <cmath>
#include <cstdio>

#include "app/gui/app.h"
#include "app/gui/panel.h"
#include "viz/chart.h"
#include "viz/figure.h"
#include "viz/query_stats.h"

namespace msa::gui {

namespace {

constexpr float kAxisLeft = 48, kAxisBottom = 18, kTitle = 18, kLegend = 64, kGap = 10;

// One legend strip shared by every heatmap (the colormap never changes).
Texture& legend_texture() {
    static Texture texture;
    if (texture.empty()) texture.upload(viz::legend_bar(12, 256, true));
    return texture;
}

std::string describe(const viz::HeatmapWindow& w) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "queries %s-%s, blocks %d-%d", viz::short_number(std::floor(w.q0)).c_str(),
                  viz::short_number(std::ceil(w.q1)).c_str(), static_cast<int>(std::floor(w.b0)),
                  static_cast<int>(std::ceil(w.b1)) - 1);
    return buf;
}

}  // namespace

void HeatmapView::prepare(App& app, int, int) {
    const LayerCapture* c = app.capture();
    const int B = app.block_size();
    if (scores_.source_key != c || scores_.source_revision != app.capture_revision() || scores_.source_index != app.group) {
        scores_.source_key = c;
        scores_.source_revision = app.capture_revision();
        scores_.source_index = app.group;
        scores_.pyramid = viz::HeatmapPyramid(viz::HeatmapSource::from_scores(c->scores, app.group, B));
        double lo, hi;
        scores_.pyramid.value_range(lo, hi);
        scores_.range = {lo, hi, viz::ValueScale::linear};
        scores_.image_key.clear();
    }
    if (mass_.source_key != c || mass_.source_revision != app.capture_revision() || mass_.source_index != app.head) {
        mass_.source_key = c;
        mass_.source_revision = app.capture_revision();
        mass_.source_index = app.head;
        mass_.pyramid = viz::HeatmapPyramid(viz::HeatmapSource::from_mass(c->mass, app.head, B));
        mass_.image_key.clear();
    }
    mass_.range = log_mass_ ? viz::ColorRange{1e-4, 1.0, viz::ValueScale::log10}
                            : viz::ColorRange{0.0, 1.0, viz::ValueScale::linear};
    const int n = c->scores.n_tokens ? c->scores.n_tokens : c->mass.n_tokens;
    const int nb = c->scores.n_blocks ? c->scores.n_blocks : c->mass.n_blocks;
    if (reset_) {
        window_ = viz::HeatmapWindow::whole(n, nb);
        reset_ = false;
    }
    window_.clamp_to(n, nb);
}

void HeatmapView::draw(App& app, const viz::Rect& r) {
    begin_panel("Block selection", r, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
    scores_placement_.drawn = false;
    const LayerCapture* c = app.capture();
    if (!c || (c->scores.values.empty() && c->mass.values.empty())) {
        if (app.doc().empty()) {
            ImGui::TextDisabled("No run loaded. Open a session (left), run a model, or press Synthetic.");
        } else if (!c) {
            ImGui::TextDisabled("This run has no captured layers: record it with --capture full to see heatmaps.");
        } else {
            ImGui::TextDisabled("Layer %d kept its selections only (no block scores or dense mass to draw).",
                                c->layer);
            // Offer the layers that do have heatmap data.
            const std::vector<int> with_heatmaps = app.heatmap_captures();
            if (with_heatmaps.empty())
                ImGui::TextDisabled("No layer of this run has them: record it with --capture-layers LIST.");
            for (int index : with_heatmaps) {
                const std::string label = "Show layer " + std::to_string(app.doc().run->captures[index].layer);
                if (ImGui::Button(label.c_str())) app.jump_to(index, app.group);
                ImGui::SameLine();
            }
        }
        ImGui::End();
        return;
    }
    // Toolbar.
    int agg = aggregate_ == viz::Aggregate::max ? 0 : 1;
    ImGui::SetNextItemWidth(150);
    if (ImGui::Combo("##agg", &agg, "rows: max\0rows: mean\0")) aggregate_ = agg ? viz::Aggregate::mean : viz::Aggregate::max;
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("how query rows that share a pixel are combined (level of detail)");
    ImGui::SameLine();
    ImGui::Checkbox("log mass", &log_mass_);
    ImGui::SameLine();
    if (ImGui::Button("Reset view")) reset_ = true;
    ImGui::SameLine();
    if (ImGui::Button("Export PNG")) export_png(app);
    ImGui::SameLine();
    // The hint is cut at the end on narrow windows; hovering shows it whole.
    const std::string hint = describe(window_) + "  |  wheel: zoom (Shift: rows, Ctrl: blocks)  drag: pan  click: inspect";
    const std::string shown_hint = viz::elide(hint, ImGui::GetContentRegionAvail().x, text_width, viz::Cut::end);
    ImGui::TextDisabled("%s", shown_hint.c_str());
    if (shown_hint != hint && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", hint.c_str());

    ImVec2 origin = ImGui::GetCursorScreenPos();
    ImVec2 avail = ImGui::GetContentRegionAvail();
    float col_w = (avail.x - kGap) / 2;
    float plot_w = std::max(32.f, col_w - kAxisLeft - kLegend);
    float plot_h = std::max(32.f, avail.y - kTitle - kAxisBottom);
    prepare(app, static_cast<int>(plot_w), static_cast<int>(plot_h));

    const int layer = c->layer;
    char title[128];
    std::snprintf(title, sizeof title, "block scores  L%d  group %d  (%s pooling, B=%d%s)", layer, app.group,
                  to_string(app.using_repooled() ? app.budget.scorer : app.doc().run->config.scorer), app.block_size(),
                  app.using_repooled() ? ", re-pooled from Q/K/V" : "");
    draw_plot(app, scores_, false, title, origin.x + kAxisLeft, origin.y + kTitle, plot_w, plot_h);
    std::snprintf(title, sizeof title, "dense attention mass  L%d  head %d", layer, app.head);
    draw_plot(app, mass_, true, title, origin.x + col_w + kGap + kAxisLeft, origin.y + kTitle, plot_w, plot_h);
    ImGui::Dummy(avail);
    ImGui::End();
}

void HeatmapView::draw_plot(App& app, Plot& plot, bool is_mass, const char* title, float x, float y, float w, float h) {
    const LayerCapture* c = app.capture();
    const viz::HeatmapSource& src = plot.pyramid.source();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddText(ImVec2(x, y - kTitle + 1), to_imgui(viz::palette::text), title);
    if (!src.valid()) {
        dl->AddRectFilled(ImVec2(x, y), ImVec2(x + w, y + h), to_imgui(viz::palette::background));
        dl->AddText(ImVec2(x + 8, y + 8), to_imgui(viz::palette::axis),
                    is_mass ? "no dense mass captured" : "no block scores captured");
        return;
    }
    const int iw = static_cast<int>(w), ih = static_cast<int>(h);
    const Selection* sel = app.selection();
    int group = is_mass ? app.head / app.group_size() : app.group;
    char key[256];
    std::snprintf(key, sizeof key, "%p|%llu|%p|%d|%d|%d|%.6f|%.6f|%.6f|%.6f|%d|%d|%d|%d|%d", static_cast<const void*>(c),
                  static_cast<unsigned long long>(plot.source_revision), static_cast<const void*>(sel), plot.source_index, iw, ih, window_.q0, window_.q1, window_.b0,
                  window_.b1, static_cast<int>(aggregate_), static_cast<int>(plot.range.scale), app.budget.k,
                  app.budget.sink, app.block_size());
    if (plot.image_key != key) {
        viz::HeatmapStyle style;
        style.range = plot.range;
        style.aggregate = aggregate_;
        plot.texture.upload(viz::render_heatmap(plot.pyramid, sel, group, window_, iw, ih, style));
        plot.image_key = key;
    }
    ImGui::SetCursorScreenPos(ImVec2(x, y));
    ImGui::PushID(is_mass ? "mass" : "scores");
    ImGui::InvisibleButton("plot", ImVec2(w, h));
    ImGui::PopID();
    if (!is_mass) scores_placement_ = {x, y, static_cast<float>(iw), static_cast<float>(ih), window_, true};
    dl->AddImage(plot.texture.id(), ImVec2(x, y), ImVec2(x + iw, y + ih));
    dl->AddRect(ImVec2(x - 1, y - 1), ImVec2(x + iw + 1, y + ih + 1), to_imgui(viz::palette::axis));

    // Axes: query positions down the left, block ids along the bottom.
    for (double t : viz::nice_ticks(window_.q0, window_.q1, std::max(2, ih / 70))) {
        float py = y + static_cast<float>((t - window_.q0) / (window_.q1 - window_.q0) * ih);
        dl->AddLine(ImVec2(x - 4, py), ImVec2(x - 1, py), to_imgui(viz::palette::axis));
        std::string label = viz::short_number(t);
        ImVec2 size = ImGui::CalcTextSize(label.c_str());
        dl->AddText(ImVec2(x - 6 - size.x, py - size.y / 2), to_imgui(viz::palette::axis), label.c_str());
    }
    for (double b : viz::nice_ticks(window_.b0, window_.b1, std::max(2, iw / 60))) {
        if (b != std::floor(b)) continue;
        float px = x + static_cast<float>((b + 0.5 - window_.b0) / (window_.b1 - window_.b0) * iw);
        dl->AddLine(ImVec2(px, y + ih + 1), ImVec2(px, y + ih + 4), to_imgui(viz::palette::axis));
        std::string label = std::to_string(static_cast<int>(b));
        ImVec2 size = ImGui::CalcTextSize(label.c_str());
        dl->AddText(ImVec2(px - size.x / 2, y + ih + 3), to_imgui(viz::palette::axis), label.c_str());
    }
    // Legend.
    float lx = x + iw + 8;
    dl->AddImage(legend_texture().id(), ImVec2(lx, y), ImVec2(lx + 12, y + ih));
    for (int i = 0; i <= 4; ++i) {
        double t = i / 4.0;
        float py = y + static_cast<float>((1 - t) * ih);
        char label[32];
        std::snprintf(label, sizeof label, "%.3g", plot.range.value_at(t));
        ImVec2 size = ImGui::CalcTextSize(label);
        dl->AddText(ImVec2(lx + 15, std::clamp(py - size.y / 2, y, y + ih - size.y)), to_imgui(viz::palette::axis), label);
    }
    // The inspected query.
    if (app.query >= window_.q0 && app.query < window_.q1) {
        float py = y + static_cast<float>((app.query + 0.5 - window_.q0) / (window_.q1 - window_.q0) * ih);
        dl->AddLine(ImVec2(x - 8, py), ImVec2(x, py), IM_COL32(255, 255, 255, 255), 2.f);
        dl->AddLine(ImVec2(x + iw, py), ImVec2(x + iw + 6, py), IM_COL32(255, 255, 255, 255), 2.f);
    }

    // Interaction: wheel zoom about the cursor, drag pan, click inspects.
    ImGuiIO& io = ImGui::GetIO();
    const bool hovered = ImGui::IsItemHovered();
    const float fx = (io.MousePos.x - x) / w, fy = (io.MousePos.y - y) / h;
    if (hovered && io.MouseWheel != 0) {
        double factor = std::pow(0.8, io.MouseWheel);
        window_.zoom(io.KeyCtrl ? factor : (io.KeyShift ? 1.0 : factor), io.KeyShift ? factor : (io.KeyCtrl ? 1.0 : factor),
                     fx, fy);
        window_.clamp_to(src.n_rows, src.n_blocks);
    }
    if (ImGui::IsItemActive() && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 2.f)) {
        window_.pan(-io.MouseDelta.x / w, -io.MouseDelta.y / h);
        window_.clamp_to(src.n_rows, src.n_blocks);
    }
    if (ImGui::IsItemDeactivated() && io.MouseDragMaxDistanceSqr[0] < 16.f) {
        int t = window_.query_at(io.MousePos.y - y, ih, src.n_rows);
        if (t >= 0) app.query = t;
    }
    if (hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) reset_ = true;
    if (hovered && !ImGui::IsItemActive()) {
        int t = window_.query_at(io.MousePos.y - y, ih, src.n_rows);
        int b = window_.block_at(io.MousePos.x - x, iw, src.n_blocks);
        if (t >= 0 && b >= 0) tooltip(app, t, b);
    }
}

void HeatmapView::tooltip(App& app, int t, int b) {
    const LayerCapture* c = app.capture();
    const Document& doc = app.doc();
    const int B = app.block_size();
    const int n = static_cast<int>(doc.run->tokens.size());
    ImGui::BeginTooltip();
    ImGui::Text("query %d: \"%s\"", t, doc.token_on_one_line(t).c_str());
    ImGui::TextDisabled("...%s", doc.text(std::max(0, t - 12), t + 1, 120).c_str());
    ImGui::Separator();
    int key_end = std::min(n, (b + 1) * B);
    ImGui::Text("block %d: keys %d-%d", b, b * B, key_end - 1);
    if (!viz::HeatmapSource::from_scores(c->scores, app.group, B).valid() && c->mass.values.empty()) {
        ImGui::EndTooltip();
        return;
    }
    int visible = viz::visible_blocks(t, B, c->scores.n_blocks ? c->scores.n_blocks : c->mass.n_blocks);
    if (b >= visible) {
        ImGui::TextDisabled("not visible: the query precedes this block (causal mask)");
        ImGui::EndTooltip();
        return;
    }
    const Selection* sel = app.selection();
    bool selected = sel && viz::is_selected(*sel, t, app.group, b);
    if (!c->scores.values.empty()) {
        const float* row = c->scores.row(t, app.group);
        ImGui::Text("score %.4f   rank %d of %d (group %d)", row[b], viz::block_rank(row, visible, b), visible, app.group);
    }
    if (selected) ImGui::TextColored(to_imvec4(viz::palette::selected_outline), "selected (k=%d%s)", app.budget.k,
                                     b == t / B ? ", local block: forced" : (b == 0 && app.budget.sink ? ", sink: forced" : ""));
    else ImGui::TextDisabled("not selected (k=%d)", app.budget.k);
    if (!c->mass.values.empty()) {
        const float* mrow = c->mass.row(t, app.head);
        double group_mass = 0;
        int r = app.group_size(), g0 = app.group * r;
        for (int h = g0; h < g0 + r && h < c->mass.n_heads; ++h) group_mass += c->mass.row(t, h)[b] / r;
        ImGui::Text("dense mass %.4f (head %d), %.4f (group mean)", mrow[b], app.head, group_mass);
    }
    if (const std::vector<float>* recall = app.recall(); recall && !recall->empty()) {
        int heads = c->mass.n_heads ? c->mass.n_heads : doc.run->model_config.n_heads;
        ImGui::Text("recall of query %d, head %d: %.3f", t, app.head, (*recall)[static_cast<size_t>(t) * heads + app.head]);
    }
    ImGui::Separator();
    ImGui::PushTextWrapPos(420);
    ImGui::TextDisabled("%s", doc.text(b * B, std::min(key_end, t + 1), 160).c_str());
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
}

void HeatmapView::export_png(App& app) {
    const LayerCapture* c = app.capture();
    const Selection* sel = app.selection();
    viz::HeatmapStyle style;
    style.aggregate = aggregate_;
    std::vector<viz::FigurePanel> panels;
    const int size = 720;
    char title[128];
    if (scores_.pyramid.source().valid()) {
        style.range = scores_.range;
        std::snprintf(title, sizeof title, "block scores L%d group %d", c->layer, app.group);
        panels.push_back({viz::render_heatmap(scores_.pyramid, sel, app.group, window_, size, size, style), title,
                          scores_.range, true});
    }
    if (mass_.pyramid.source().valid()) {
        style.range = mass_.range;
        std::snprintf(title, sizeof title, "dense mass L%d head %d", c->layer, app.head);
        panels.push_back({viz::render_heatmap(mass_.pyramid, sel, app.head / app.group_size(), window_, size, size, style),
                          title, mass_.range, true});
    }
    char caption[256];
    std::snprintf(caption, sizeof caption, "%s  k=%d B=%d sink=%d  %s  (orange: selected blocks)", app.doc().source.c_str(),
                  app.budget.k, app.block_size(), app.budget.sink, describe(window_).c_str());
    char path[128];
    std::snprintf(path, sizeof path, "msascope-heatmap-L%d-g%d-h%d.png", c->layer, app.group, app.head);
    try {
        viz::write_png(viz::compose_figure(panels, caption), path);
        app.set_status(std::string("wrote ") + path);
    } catch (const std::exception& e) {
        app.set_status(e.what());
    }
}

}  // namespace msa::gui
