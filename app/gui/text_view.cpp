#include "app/gui/text_view.h"

#include <imgui.h>

#include <algorithm>
#include <cstdio>

#include "app/gui/app.h"
#include "app/gui/panel.h"
#include "viz/query_stats.h"

namespace msa::gui {

namespace {

enum BlockState : unsigned char { plain = 0, selected = 1, local = 2 };

constexpr ImU32 kDimText = IM_COL32(105, 105, 115, 255);      // tokens the query cannot see
constexpr ImU32 kSelectedText = IM_COL32(255, 232, 205, 255);  // on the selected-block shade
constexpr ImU32 kGutter = IM_COL32(120, 120, 130, 255);

ImU32 tick_colour(unsigned char state) {
    return state == selected ? to_imgui(viz::palette::selected_outline)
           : state == local  ? IM_COL32(110, 170, 255, 255)
                             : IM_COL32(80, 80, 92, 255);
}

// A filled square and its label, on one line with what follows.
void swatch(viz::Rgba colour, const char* label) {
    const float s = ImGui::GetTextLineHeight() - 2;
    ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(p.x, p.y + 1), ImVec2(p.x + s, p.y + 1 + s), to_imgui(colour));
    ImGui::Dummy(ImVec2(s, s));
    ImGui::SameLine(0, 4);
    ImGui::TextUnformatted(label);
    ImGui::SameLine(0, 12);
}

}  // namespace

void TextView::relayout(App& app, float width) {
    const Document& doc = app.doc();
    if (laid_out_for_ != doc.run.get() || laid_out_source_ != doc.source || laid_out_reflow_ != reflow_) {
        laid_out_for_ = doc.run.get();
        laid_out_source_ = doc.source;
        laid_out_reflow_ = reflow_;
        std::vector<std::string> tokens(doc.run->tokens.size());
        for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = doc.token(static_cast<int>(t));
        pieces_ = viz::split_tokens(tokens, text_width, reflow_ ? viz::Newlines::paragraphs : viz::Newlines::keep);
        laid_out_width_ = -1;
        followed_query_ = -2;  // another document: show its query
    }
    if (std::abs(laid_out_width_ - width) >= 1) {
        laid_out_width_ = width;
        lines_ = viz::wrap_pieces(pieces_, width);
        if (app.query >= 0) followed_query_ = -2;  // the query moved to another line
    }
}

void TextView::scroll_to_token(int t) { scroll_to_line_ = viz::line_of_token(pieces_, lines_, t); }

void TextView::draw(App& app, const viz::Rect& r) {
    begin_panel("Text", r, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
    placement_.drawn = false;
    const Document& doc = app.doc();
    if (doc.empty() || doc.run->tokens.empty()) {
        ImGui::TextDisabled(doc.empty() ? "no run loaded" : "this run has no tokens (a bench run has no document)");
        ImGui::End();
        return;
    }
    const int n = static_cast<int>(doc.run->tokens.size());
    const int B = std::max(1, app.block_size());
    const int n_blocks = (n + B - 1) / B;
    const int q = app.query >= 0 && app.query < n ? app.query : -1;

    // Which blocks the inspected query keeps (for the shown group).
    std::vector<unsigned char> state(n_blocks, plain);
    const Selection* sel = app.selection();
    int kept = 0;
    if (q >= 0) {
        if (sel && q < sel->n_tokens && app.group < sel->n_groups) {
            const int32_t* row = sel->row(q, app.group);
            for (int s = 0; s < sel->slots; ++s)
                if (row[s] >= 0 && row[s] < n_blocks) state[row[s]] = selected, ++kept;
        }
        state[q / B] = local;  // always kept
    }

    // Header: the query, the legend, navigation between the kept blocks.
    if (q >= 0) {
        ImGui::Text("query %d \"%s\", block %d", q, doc.token_on_one_line(q).c_str(), q / B);
        char line[96];
        if (sel) std::snprintf(line, sizeof line, "group %d keeps %d of %d blocks", app.group, kept, q / B + 1);
        else std::snprintf(line, sizeof line, "no selection for this layer");
        text_beside_or_below(std::string(" |  ") + line);
    } else {
        ImGui::TextDisabled("no query: click a token to inspect it");
    }
    swatch(viz::palette::text_selected, "selected block");
    swatch(viz::palette::text_local, "its own block");
    swatch(viz::palette::text_query, "query");
    ImGui::NewLine();
    const int top_block = placement_.first_token >= 0 ? placement_.first_token / B : 0;
    int prev = -1, next = -1;
    for (int b = 0; b < n_blocks; ++b)
        if (state[b] != plain) {
            if (b < top_block) prev = b;
            if (b > top_block && next < 0) next = b;
        }
    float scroll_fraction = 1.f / 3;  // where the target line lands in the view
    if (ImGui::SmallButton("Go to query") && q >= 0) scroll_to_token(q);
    ImGui::SameLine();
    ImGui::BeginDisabled(prev < 0);
    if (ImGui::SmallButton("< kept block")) scroll_to_token(prev * B), scroll_fraction = 0;
    ImGui::EndDisabled();
    ImGui::SameLine();
    ImGui::BeginDisabled(next < 0);
    if (ImGui::SmallButton("kept block >")) scroll_to_token(next * B), scroll_fraction = 0;
    ImGui::EndDisabled();
    ImGui::SameLine();
    ImGui::Checkbox("reflow", &reflow_);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("a single newline reads as a space (hard-wrapped text as paragraphs); blank lines and indented lines still break");
    ImGui::SameLine();
    ImGui::TextDisabled("%s", viz::elide("click a token to inspect it", ImGui::GetContentRegionAvail().x, text_width,
                                         viz::Cut::end).c_str());

    ImGui::BeginChild("document", ImVec2(0, 0), true, ImGuiWindowFlags_AlwaysVerticalScrollbar);
    const float gutter = text_width("b" + std::to_string(n_blocks - 1)) + 8;
    const float wrap = std::max(40.f, ImGui::GetContentRegionAvail().x - gutter - 4);
    relayout(app, wrap);
    const float line_h = ImGui::GetTextLineHeight() + 3;
    const float view_h = ImGui::GetWindowHeight();
    if (q != followed_query_) {
        // The query changed elsewhere (heatmap, inspector, command line): follow it.
        followed_query_ = q;
        if (q >= 0) scroll_to_token(q), scroll_fraction = 1.f / 3;
    }
    if (scroll_to_line_ >= 0) {
        ImGui::SetScrollY(std::max(0.f, scroll_to_line_ * line_h - view_h * scroll_fraction));
        scroll_to_line_ = -1;
    }

    ImDrawList* dl = ImGui::GetWindowDrawList();
    const bool window_hovered = ImGui::IsWindowHovered();
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const int n_pieces = static_cast<int>(pieces_.size());
    int hovered = -1;
    placement_.first_token = placement_.last_token = -1;
    ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0));
    const float clip_top = dl->GetClipRectMin().y;
    bool top_labelled = false;
    ImGuiListClipper clipper;
    clipper.Begin(lines_.count(), line_h);
    while (clipper.Step()) {
        for (int line = clipper.DisplayStart; line < clipper.DisplayEnd; ++line) {
            const ImVec2 p = ImGui::GetCursorScreenPos();
            const float left = p.x + gutter, right = left + wrap, y0 = p.y, y1 = p.y + line_h;
            const int first = lines_.first_piece[line], end = lines_.first_piece[line + 1];
            bool labelled = false;
            for (int i = first; i < end; ++i) {
                const viz::TextPiece& piece = pieces_[i];
                const int t = piece.token, b = t / B;
                if (placement_.first_token < 0) placement_.first_token = t;
                placement_.last_token = t;
                // A space or newline query still gets a mark wide enough to see.
                const float x0 = left + piece.x, x1 = x0 + (t == q ? std::max(piece.width, 7.f) : piece.width);
                // The shade runs on to the line's end when the next line goes on in the same block.
                const bool run_on = i + 1 == end && end < n_pieces && pieces_[end].token / B == b;
                const float bx0 = std::max(left, x0), bx1 = run_on ? right : x1;
                if (t == q) dl->AddRectFilled(ImVec2(bx0, y0), ImVec2(x1, y1), to_imgui(viz::palette::text_query));
                else if (state[b] == selected)
                    dl->AddRectFilled(ImVec2(bx0, y0), ImVec2(bx1, y1), to_imgui(viz::palette::text_selected));
                else if (state[b] == local)
                    dl->AddRectFilled(ImVec2(bx0, y0), ImVec2(bx1, y1), to_imgui(viz::palette::text_local));
                else if (b % 2)
                    dl->AddRectFilled(ImVec2(bx0, y0), ImVec2(bx1, y1), to_imgui(viz::palette::text_odd_block));
                if (t == q && run_on && state[b] != plain)  // the rest of the line after the query mark
                    dl->AddRectFilled(ImVec2(x1, y0), ImVec2(right, y1),
                                      to_imgui(state[b] == local ? viz::palette::text_local : viz::palette::text_selected));
                // Where a block begins: a tick, and its id in the gutter.
                if (t % B == 0 && (i == 0 || pieces_[i - 1].token != t)) {
                    dl->AddRectFilled(ImVec2(bx0 - 1, y0), ImVec2(bx0 + 1, y1), tick_colour(state[b]));
                    if (!labelled) {
                        char label[16];
                        std::snprintf(label, sizeof label, "b%d", b);
                        dl->AddText(ImVec2(p.x, y0 + 1), state[b] == plain ? kGutter : tick_colour(state[b]), label);
                        labelled = true;
                    }
                }
                const ImU32 colour = t == q                 ? IM_COL32(0, 0, 0, 255)
                                     : q >= 0 && t > q      ? kDimText
                                     : state[b] == selected ? kSelectedText
                                                            : to_imgui(viz::palette::text);
                if (!piece.text.empty())
                    dl->AddText(ImVec2(x0, y0 + 1.5f), colour, piece.text.data(), piece.text.data() + piece.text.size());
                if (window_hovered && mouse.y >= y0 && mouse.y < y1 && mouse.x >= bx0 && mouse.x < std::max(x1, bx0 + 2))
                    hovered = t;
            }
            // The top line says its block even when the block began above it.
            if (!top_labelled && y0 >= clip_top - 1) {
                top_labelled = true;
                if (!labelled && first < end) {
                    const int b = pieces_[first].token / B;
                    char label[16];
                    std::snprintf(label, sizeof label, "b%d", b);
                    dl->AddText(ImVec2(p.x, y0 + 1), state[b] == plain ? kGutter : tick_colour(state[b]) & 0xA0FFFFFF,
                                label);
                }
            }
            ImGui::Dummy(ImVec2(gutter + wrap, line_h));
        }
    }
    ImGui::PopStyleVar();
    const ImVec2 wp = ImGui::GetWindowPos(), ws = ImGui::GetWindowSize();
    placement_ = {wp.x, wp.y, ws.x, ws.y, placement_.first_token, placement_.last_token, true};
    if (hovered >= 0) {
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) {
            app.query = hovered;
            followed_query_ = hovered;  // it is in view already: no jump
        }
        tooltip(app, hovered, state[hovered / B]);
    }
    ImGui::EndChild();
    ImGui::End();
}

void TextView::tooltip(App& app, int t, int block_state) {
    const Document& doc = app.doc();
    const int n = static_cast<int>(doc.run->tokens.size()), B = std::max(1, app.block_size()), b = t / B;
    const int q = app.query;
    ImGui::BeginTooltip();
    ImGui::Text("token %d: \"%s\"", t, doc.token_on_one_line(t).c_str());
    ImGui::Text("block %d: tokens %d-%d", b, b * B, std::min(n, (b + 1) * B) - 1);
    if (q >= 0 && q < n && t != q) {
        ImGui::Separator();
        if (t > q) ImGui::TextDisabled("after query %d: it cannot see this token (causal)", q);
        else if (block_state == local) ImGui::TextColored(ImVec4(0.45f, 0.67f, 1, 1), "in query %d's own block: always kept", q);
        else if (block_state == selected)
            ImGui::TextColored(to_imvec4(viz::palette::selected_outline), "selected by query %d (group %d, k=%d)", q,
                               app.group, app.budget.k);
        else ImGui::TextDisabled("not selected by query %d (group %d, k=%d)", q, app.group, app.budget.k);
        const LayerCapture* c = app.capture();
        if (t < q && c && !c->scores.values.empty() && q < c->scores.n_tokens && c->scores.n_blocks > b) {
            const int visible = viz::visible_blocks(q, B, c->scores.n_blocks);
            const float* row = c->scores.row(q, app.group);
            ImGui::Text("block score %.4f, rank %d of %d", row[b], viz::block_rank(row, visible, b), visible);
        }
    }
    ImGui::TextDisabled("click: inspect token %d as the query", t);
    ImGui::EndTooltip();
}

}  // namespace msa::gui
