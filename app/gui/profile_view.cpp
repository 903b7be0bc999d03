#include "app/gui/profile_view.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "app/gui/app.h"
#include "app/gui/charts.h"
#include "app/gui/panel.h"
#include <fstream>

#include "core/flops.h"
#include "sessions/bench_run.h"
#include "sessions/export.h"

namespace msa::gui {

namespace {

struct KernelStats {
    std::string name;
    int64_t context = 0;  // a bench's context length; 0 for a model run
    int count = 0;
    double total_ms = 0, flops = 0;
    const KernelRecord* first = nullptr;
};

// One row per kernel name (and context: a bench times each kernel at several).
std::vector<KernelStats> kernel_stats(const RunResult& run) {
    std::map<std::pair<std::string, int64_t>, KernelStats> by_name;
    for (const KernelRecord& k : run.kernels) {
        KernelStats& s = by_name[{k.name, k.context}];
        s.name = k.name;
        s.context = k.context;
        s.count++;
        s.total_ms += k.ms();
        s.flops += k.flops;
        if (!s.first) s.first = &k;
    }
    std::vector<KernelStats> out;
    for (auto& [name, s] : by_name) out.push_back(s);
    std::sort(out.begin(), out.end(), [](const KernelStats& a, const KernelStats& b) {
        return a.context != b.context ? a.context < b.context : a.total_ms > b.total_ms;
    });
    return out;
}

std::string context_label(double n) { return sessions::context_label(static_cast<int64_t>(n)); }

double row_number(const nlohmann::json& row, const char* key) {
    return row.contains(key) && row[key].is_number() ? row[key].get<double>() : NAN;
}

void number_cell(double v, const char* format) {
    ImGui::TableNextColumn();
    if (std::isfinite(v)) ImGui::Text(format, v);
    else ImGui::TextDisabled("-");
}

ImU32 phase_colour(const std::string& phase) {
    if (phase == "dense") return to_imgui(viz::palette::dense_bar);
    if (phase == "sparse") return to_imgui(viz::palette::sparse_bar);
    if (phase == "index") return IM_COL32(90, 170, 230, 255);
    if (phase == "select") return IM_COL32(150, 110, 220, 255);
    return IM_COL32(100, 190, 130, 255);
}

// Dense vs MSA time: kernel phases when there are kernels, else CPU stages by name.
// Kernels: a run launches sparse attention in several passes (the MSA forward,
// the random control, the diagnostics of the dense pass) but dense attention in
// one, so phase totals would compare three passes with one. Each phase is
// instead the sum over its kernels of the mean time per launch: one layer of
// one pass, since each of these kernels runs once per layer and pass.
void split_time(const RunResult& run, double& dense_ms, double& sparse_ms, double& index_ms) {
    dense_ms = sparse_ms = index_ms = 0;
    if (!run.kernels.empty()) {
        for (const KernelStats& k : kernel_stats(run)) {
            const std::string& phase = k.first->phase;
            const double per_launch = k.total_ms / k.count;
            if (phase == "dense") dense_ms += per_launch;
            else if (phase == "sparse") sparse_ms += per_launch;
            else if (phase == "index" || phase == "select") index_ms += per_launch;
        }
        return;
    }
    for (const StageTiming& s : run.timings) {
        if (s.name.find("dense attention") != std::string::npos) dense_ms += s.ms;
        else if (s.name.find("sparse") != std::string::npos) sparse_ms += s.ms;
        else if (s.name.find("index") != std::string::npos || s.name.find("select") != std::string::npos ||
                 s.name.find("top-k") != std::string::npos)
            index_ms += s.ms;
    }
}

}  // namespace

void ProfileView::kernel_table(App& app, const RunResult& run, float height) {
    std::vector<KernelStats> stats = kernel_stats(run);
    if (stats.empty()) {
        ImGui::TextDisabled("No kernel records: this run used the %s backend. CPU stage timings:", run.backend.c_str());
        if (ImGui::BeginTable("stages", 2, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV, ImVec2(0, height - 24))) {
            ImGui::TableSetupColumn("stage");
            ImGui::TableSetupColumn("ms", ImGuiTableColumnFlags_WidthFixed, 90);
            ImGui::TableHeadersRow();
            for (const StageTiming& s : run.timings) {
                ImGui::TableNextRow();
                ImGui::TableNextColumn();
                ImGui::TextUnformatted(s.name.c_str());
                ImGui::TableNextColumn();
                ImGui::Text("%.1f", s.ms);
            }
            ImGui::EndTable();
        }
        return;
    }
    const bool by_context = std::any_of(stats.begin(), stats.end(), [](const KernelStats& s) { return s.context > 0; });
    if (!ImGui::BeginTable("kernels", by_context ? 11 : 10,
                           ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_BordersInnerV |
                               ImGuiTableFlags_Resizable,
                           ImVec2(0, height)))
        return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("kernel", ImGuiTableColumnFlags_WidthStretch);
    if (by_context) ImGui::TableSetupColumn("context", ImGuiTableColumnFlags_WidthFixed, 60);
    for (const char* c : {"count", "total ms", "mean ms", "grid", "block", "regs", "smem", "GFLOP", "TFLOP/s"})
        ImGui::TableSetupColumn(c, ImGuiTableColumnFlags_WidthFixed, 70);
    ImGui::TableHeadersRow();
    for (const KernelStats& s : stats) {
        const KernelRecord& k = *s.first;
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(viz::short_kernel_name(s.name).c_str());
        if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s\nphase %s", s.name.c_str(), k.phase.c_str());
        if (by_context) {
            // A click shows this context alone on the timeline (again: every context).
            ImGui::TableNextColumn();
            const std::string label = context_label(static_cast<double>(s.context)) + "##" + s.name;
            if (ImGui::Selectable(label.c_str(), app.timeline_context == s.context))
                app.timeline_context = app.timeline_context == s.context ? 0 : s.context;
            if (ImGui::IsItemHovered()) ImGui::SetTooltip("click: the timeline shows this context's kernels only");
        }
        ImGui::TableNextColumn();
        ImGui::Text("%d", s.count);
        ImGui::TableNextColumn();
        ImGui::Text("%.3f", s.total_ms);
        ImGui::TableNextColumn();
        ImGui::Text("%.4f", s.total_ms / s.count);
        ImGui::TableNextColumn();
        ImGui::Text("%dx%dx%d", k.grid[0], k.grid[1], k.grid[2]);
        ImGui::TableNextColumn();
        ImGui::Text("%dx%dx%d", k.block[0], k.block[1], k.block[2]);
        ImGui::TableNextColumn();
        ImGui::Text("%d", k.registers);
        ImGui::TableNextColumn();
        ImGui::Text("%d", k.shared_bytes);
        ImGui::TableNextColumn();
        // No analytic cost attached (copies, reductions, cuBLAS helper kernels):
        // unknown, not zero work.
        if (s.flops > 0) ImGui::Text("%.2f", s.flops * 1e-9);
        else ImGui::TextDisabled("-");
        ImGui::TableNextColumn();
        if (s.total_ms > 0 && s.flops > 0) ImGui::Text("%.1f", s.flops / (s.total_ms * 1e-3) * 1e-12);
        else ImGui::TextDisabled("-");
    }
    ImGui::EndTable();
}

void ProfileView::timeline(App& app, const RunResult& run, float height) {
    // A bench times several contexts one after another, and the longest one's
    // dense kernel makes every other kernel a sliver: one context can be shown
    // alone (its own time axis), by the buttons or a click in the table.
    std::vector<int64_t> contexts;
    for (const KernelRecord& k : run.kernels)
        if (k.context > 0 && std::find(contexts.begin(), contexts.end(), k.context) == contexts.end())
            contexts.push_back(k.context);
    std::sort(contexts.begin(), contexts.end());
    if (std::find(contexts.begin(), contexts.end(), app.timeline_context) == contexts.end()) app.timeline_context = 0;
    const int64_t only = app.timeline_context;
    if (contexts.size() > 1) {
        const float before = ImGui::GetCursorPosY();
        ImGui::TextUnformatted("timeline of");
        ImGui::SameLine();
        if (ImGui::RadioButton("every context", only == 0)) app.timeline_context = 0;
        for (int64_t c : contexts) {
            ImGui::SameLine();
            if (ImGui::RadioButton(context_label(static_cast<double>(c)).c_str(), only == c)) app.timeline_context = c;
        }
        height -= ImGui::GetCursorPosY() - before;
    }
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImVec2 p = ImGui::GetCursorScreenPos();
    float w = ImGui::GetContentRegionAvail().x;
    ImGui::InvisibleButton("timeline", ImVec2(w, height));
    bool hovered = ImGui::IsItemHovered();
    ImVec2 mouse = ImGui::GetIO().MousePos;
    dl->AddRectFilled(p, ImVec2(p.x + w, p.y + height), to_imgui(viz::palette::background));
    struct Span { double start, end; std::string name, phase; int lane; };
    std::vector<Span> spans;
    if (!run.kernels.empty()) {
        uint64_t t0 = UINT64_MAX;
        std::map<uint32_t, int> lanes;
        auto shown = [&](const KernelRecord& k) { return only == 0 || k.context == only; };
        for (const KernelRecord& k : run.kernels) {
            if (!shown(k)) continue;
            t0 = std::min(t0, k.start_ns);
            lanes.emplace(k.stream, static_cast<int>(lanes.size()));
        }
        for (const KernelRecord& k : run.kernels)
            if (shown(k))
                spans.push_back({(k.start_ns - t0) * 1e-6, (k.end_ns - t0) * 1e-6, k.name, k.phase, lanes[k.stream]});
    } else {
        double t = 0;  // CPU stages ran one after another
        for (const StageTiming& s : run.timings) {
            spans.push_back({t, t + s.ms, s.name, s.name.find("dense") != std::string::npos    ? "dense"
                                                  : s.name.find("sparse") != std::string::npos ? "sparse"
                                                  : s.name.find("index") != std::string::npos  ? "index"
                                                                                               : "other",
                             0});
            t += s.ms;
        }
    }
    int lanes = 1;
    std::vector<std::pair<double, double>> intervals;
    for (const Span& s : spans) lanes = std::max(lanes, s.lane + 1), intervals.push_back({s.start, s.end});
    // Kernel records can sit seconds apart (a bench runs the peers and the
    // host work in between): gaps longer than 3% of the busy time are drawn
    // that long and marked, so that the kernels are not slivers.
    const viz::CutTimeAxis axis = viz::cut_idle_gaps(intervals, run.kernels.empty() ? INFINITY : 0.03);
    const double end = axis.drawn_length;
    std::string title = run.kernels.empty() ? "timeline (CPU stages)"
                        : only > 0 ? "timeline (kernels of " + context_label(static_cast<double>(only)) + ", one lane per stream)"
                                   : "timeline (kernels, one lane per stream)";
    if (!axis.cuts.empty())
        title.replace(title.size() - 1, 1, "; " + std::to_string(axis.cuts.size()) + " idle gaps cut, marked //)");
    dl->AddText(ImVec2(p.x + 4, p.y + 2), to_imgui(viz::palette::text), title.c_str());
    if (end <= 0) return;
    float x0 = p.x + 4, x1 = p.x + w - 4, y0 = p.y + 20, lane_h = std::min(28.f, (height - 40) / lanes);
    auto x_drawn = [&](double d) { return x0 + static_cast<float>(d / end) * (x1 - x0); };
    auto x_of = [&](double t) { return x_drawn(axis(t)); };
    const float axis_y = y0 + lanes * lane_h + 4;
    auto tick = [&](float px, const std::string& label) {
        dl->AddLine(ImVec2(px, y0), ImVec2(px, axis_y), IM_COL32(60, 60, 70, 255));
        const float label_x = std::min(px + 2, x1 - text_width(label));  // the last one stays inside the panel
        dl->AddText(ImVec2(label_x, axis_y), to_imgui(viz::palette::axis), label.c_str());
        return label_x + text_width(label);
    };
    if (axis.cuts.empty()) {
        for (double t : viz::nice_ticks(0, end, 8)) tick(x_of(t), viz::short_number(t) + " ms");
    } else {
        // Not a linear axis any more: a label where work starts and after each
        // cut (the time it resumes), those that fit.
        auto time_label = [](double ms) {
            return ms >= 1000 ? viz::short_number(ms / 1000) + " s" : viz::short_number(ms) + " ms";
        };
        float free_x = tick(x_of(axis.knots.front().t), time_label(axis.knots.front().t)) + 8;
        // Inside a stretch of work wider than a fifth of the axis, ticks after
        // its start ("+2 ms"): the stretch's own scale, which absolute labels
        // seconds apart do not give.
        auto stretch_ticks = [&](double from, double to) {
            if (x_of(to) - x_of(from) < 0.2f * (x1 - x0)) return;
            for (double t : viz::nice_ticks(0, to - from, 6))
                if (t > 0 && x_of(from + t) >= free_x && x_of(from + t) < x1 - 40)
                    free_x = tick(x_of(from + t), "+" + time_label(t)) + 8;
        };
        double stretch_start = axis.knots.front().t;
        for (const viz::CutTimeAxis::Cut& c : axis.cuts) {
            stretch_ticks(stretch_start, c.resume - c.idle);
            stretch_start = c.resume;
            const float px = x_drawn(c.drawn);
            for (float dx : {-3.f, 2.f})
                dl->AddLine(ImVec2(px + dx - 2, axis_y - 2), ImVec2(px + dx + 2, y0 + 2), to_imgui(viz::palette::axis));
            if (hovered && std::abs(mouse.x - px) < 5 && mouse.y >= y0 && mouse.y < axis_y)
                ImGui::SetTooltip("%s idle, cut (work resumes at %s)", time_label(c.idle).c_str(),
                                  time_label(c.resume).c_str());
            const std::string label = time_label(c.resume);
            if (x_of(c.resume) >= free_x) free_x = tick(x_of(c.resume), label) + 8;
        }
        stretch_ticks(stretch_start, axis.knots.back().t);
    }
    for (const Span& s : spans) {
        float a = x_of(s.start), b = x_of(s.end);
        float ly = y0 + s.lane * lane_h;
        dl->AddRectFilled(ImVec2(a, ly + 2), ImVec2(std::max(a + 1, b), ly + lane_h - 2), phase_colour(s.phase));
        if (b - a > 60) dl->PushClipRect(ImVec2(a, ly), ImVec2(b, ly + lane_h), true),
                        dl->AddText(ImVec2(a + 3, ly + 4), IM_COL32(15, 15, 20, 255), s.name.c_str()), dl->PopClipRect();
        if (hovered && mouse.x >= a && mouse.x <= std::max(a + 1, b) && mouse.y >= ly && mouse.y < ly + lane_h)
            ImGui::SetTooltip("%s\n%.3f ms (at %.3f ms)", s.name.c_str(), s.end - s.start, s.start);
    }
}

void ProfileView::dense_vs_sparse(const RunResult& run, float width, float height) {
    double dense, sparse, index;
    split_time(run, dense, sparse, index);
    BarChartStyle style;
    style.labels = {"dense", "MSA sparse", "MSA index+select", "MSA total"};
    style.colours = {to_imgui(viz::palette::dense_bar), to_imgui(viz::palette::sparse_bar), IM_COL32(90, 170, 230, 255),
                     IM_COL32(255, 190, 90, 255)};
    std::vector<double> values = {dense, sparse, index, sparse + index};
    if (dense + sparse + index <= 0) {
        // A CPU run through the CLI times whole forwards, not attention ops:
        // an all-zero chart would only look like a measurement of nothing.
        // Same footprint as the chart, so the FLOPs curve beside it keeps its place.
        ImGui::BeginChild("dense_sparse_empty", ImVec2(width, height));
        ImGui::TextDisabled("No per-op attention timings in this run (%s backend).", run.backend.c_str());
        ImGui::TextDisabled("`msascope-cli bench` or `run --backend cuda` record kernels.");
        ImGui::TextDisabled("Analytic attention FLOPs ratio %.2fx.", run.flops_ratio());
        ImGui::EndChild();
        return;
    }
    style.hi = std::max(1e-9, *std::max_element(values.begin(), values.end()) * 1.1);
    char title[128];
    std::snprintf(title, sizeof title, "time, ms (%s)   speedup %.2fx   analytic FLOPs ratio %.2fx",
                  run.kernels.empty() ? "CPU stages" : "kernels, per layer and pass",
                  (sparse + index) > 0 ? dense / (sparse + index) : NAN,
                  run.flops_ratio());
    int hit = bar_chart("dense_sparse", title, values, style, ImVec2(width, height));
    if (hit >= 0) ImGui::SetTooltip("%s: %.3f ms", style.labels[hit].c_str(), values[hit]);
}

void ProfileView::bench_rows(const sessions::BenchRun& bench, float width, float height) {
    ImGui::BeginChild("bench_rows", ImVec2(width, height));
    auto table = [](const char* id, const char* title, const nlohmann::json& rows, bool decode, float h) {
        ImGui::TextUnformatted(title);
        if (rows.empty()) {
            ImGui::TextDisabled("none in this run");
            return;
        }
        const char* heads[] = {"context", "dense ms", "SDPA ms", "MSA ms", "index ms", "main ms",
                               decode ? "dense/MSA" : "Flex ms", "speedup", "TFLOP/s"};
        if (!ImGui::BeginTable(id, 9, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY,
                               ImVec2(0, h)))
            return;
        for (const char* c : heads) ImGui::TableSetupColumn(c);
        ImGui::TableHeadersRow();
        for (const nlohmann::json& r : rows) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(context_label(row_number(r, "context")).c_str());
            const char* f = decode ? "%.4f" : "%.2f";
            number_cell(row_number(r, "dense_ms"), f);
            number_cell(row_number(r, "sdpa_ms"), f);
            number_cell(row_number(r, "sparse_ms"), f);
            number_cell(row_number(r, "index_ms"), f);
            number_cell(row_number(r, "main_ms"), f);
            if (decode) number_cell(row_number(r, "speedup_vs_ours_dense"), "%.2fx");
            else number_cell(row_number(r, "flex_ms"), f);
            number_cell(row_number(r, "speedup"), "%.2fx");
            number_cell(row_number(r, "sparse_tflops"), "%.1f");
        }
        ImGui::EndTable();
    };
    const float line = ImGui::GetTextLineHeightWithSpacing();
    const float rows_h = (height - 4 * line) / 2;
    table("prefill", "prefill, one layer (speedup = SDPA / MSA sparse; MSA = index + top-k + main)", bench.rows, false,
          rows_h);
    table("decode", "decode, one query at the end of the context", bench.decode_rows, true, rows_h);
    ImGui::EndChild();
}

void ProfileView::flops_curve(App& app, float width, float height) {
    const RunResult& run = *app.doc().run;
    const sessions::BenchRun& bench = app.doc().bench;
    // A bench's shape from its config; a model run's: training-free, one index head per group.
    const AttentionFlopsShape mine = sessions::bench_shape(bench.config, run.model_config);
    AttentionFlopsShape m3 = msa_m3_shape();
    ChartLine model_line, m3_line, measured, timed;
    model_line.colour = IM_COL32(255, 140, 0, 255);
    model_line.name = bench.empty() ? "model: " + (run.model_config.arch.empty() ? std::string("run") : run.model_config.arch)
                                    : run.model_config.arch + " shape";
    m3_line.colour = IM_COL32(120, 160, 230, 255);
    m3_line.name = "MiniMax-M3 shape";
    for (double n = 1024; n <= 1048576 * 1.001; n *= std::sqrt(2.0)) {
        model_line.x.push_back(n);
        model_line.y.push_back(flops_ratio(mine, n, run.config.k, run.config.block));
        m3_line.x.push_back(n);
        m3_line.y.push_back(flops_ratio(m3, n, 16, 128));
    }
    measured.points = true;
    measured.colour = IM_COL32(255, 255, 255, 255);
    measured.name = "this run (analytic count)";
    double ratio = run.flops_ratio();
    if (std::isfinite(ratio)) {
        measured.x.push_back(static_cast<double>(run.tokens.size()));
        measured.y.push_back(ratio);
    }
    const bool same_as_m3 = mine.n_heads == m3.n_heads && mine.n_kv_heads == m3.n_kv_heads &&
                            mine.head_dim == m3.head_dim && mine.index_heads == m3.index_heads &&
                            mine.index_dim == m3.index_dim;
    std::vector<ChartLine> lines;
    if (!same_as_m3 || bench.empty()) lines.push_back(m3_line);
    lines.push_back(model_line);
    double dense, sparse, index;
    split_time(run, dense, sparse, index);
    if (!bench.empty()) {
        // Each context's analytic ratio on the curve, and what the GPU measured beside it.
        measured.name = "analytic, per context";
        ChartLine vs_sdpa, vs_ours;
        vs_sdpa.points = vs_ours.points = true;
        vs_sdpa.colour = IM_COL32(120, 230, 140, 255);
        vs_sdpa.name = "measured: SDPA / MSA time";
        vs_ours.colour = IM_COL32(230, 120, 200, 255);
        vs_ours.name = "measured: our dense / MSA time";
        for (const nlohmann::json& r : bench.rows) {
            const double n = row_number(r, "context"), sparse_ms = row_number(r, "sparse_ms");
            if (!(n > 0)) continue;
            if (row_number(r, "flops_ratio") > 0) measured.x.push_back(n), measured.y.push_back(row_number(r, "flops_ratio"));
            if (row_number(r, "sdpa_ms") > 0 && sparse_ms > 0)
                vs_sdpa.x.push_back(n), vs_sdpa.y.push_back(row_number(r, "sdpa_ms") / sparse_ms);
            if (row_number(r, "dense_ms") > 0 && sparse_ms > 0)
                vs_ours.x.push_back(n), vs_ours.y.push_back(row_number(r, "dense_ms") / sparse_ms);
        }
        lines.push_back(measured);
        if (!vs_sdpa.x.empty()) lines.push_back(vs_sdpa);
        if (!vs_ours.x.empty()) lines.push_back(vs_ours);
    } else if (!run.kernels.empty() && sparse + index > 0) {
        lines.push_back(measured);
        timed.points = true;
        timed.colour = IM_COL32(120, 230, 140, 255);
        timed.name = "measured time ratio";
        timed.x.push_back(static_cast<double>(run.tokens.size()));
        timed.y.push_back(dense / (sparse + index));
        lines.push_back(timed);
    } else {
        lines.push_back(measured);
    }
    char title[160];
    std::snprintf(title, sizeof title, "dense / MSA attention FLOPs per token vs context (k=%d, B=%d); M3 at 1M: %.1fx",
                  run.config.k, run.config.block, flops_ratio(m3, 1048576, 16, 128));
    line_chart("flops", title, lines, true, true, ImVec2(width, height));
}

void ProfileView::draw(App& app, const viz::Rect& r) {
    begin_panel("Profile", r);
    if (app.doc().empty()) {
        ImGui::TextDisabled("no run loaded");
        ImGui::End();
        return;
    }
    const RunResult& run = *app.doc().run;
    const sessions::BenchRun& bench = app.doc().bench;
    if (bench.empty()) {
        ImGui::Text("%s on %s  |  %zu tokens  |  %zu kernel launches", run.backend.c_str(),
                    run.device.empty() ? "?" : run.device.c_str(), run.tokens.size(), run.kernels.size());
    } else {
        std::string contexts;
        for (const nlohmann::json& r : bench.rows) contexts += (contexts.empty() ? "" : ", ") + context_label(row_number(r, "context"));
        ImGui::Text("bench on %s  |  %s (Hq %d, Hkv %d, d %d, index %dx%d), k=%d B=%d  |  contexts %s  |  %zu kernel launches",
                    run.device.empty() ? "?" : run.device.c_str(), bench.shape.name.c_str(), bench.shape.n_heads,
                    bench.shape.n_kv_heads, bench.shape.head_dim, bench.shape.index_heads, bench.shape.index_dim,
                    run.config.k, run.config.block, contexts.c_str(), run.kernels.size());
    }
    ImGui::SameLine(0, 20);
    // A trace is of CUDA kernels: a CPU run has none, and an empty trace says nothing.
    const bool no_kernels = run.kernels.empty();
    ImGui::BeginDisabled(no_kernels);
    if (ImGui::SmallButton(no_kernels ? "Export Perfetto JSON (no kernel records)" : "Export Perfetto JSON")) {
        std::string path = "msascope-trace.json";
        std::ofstream out(path);
        out << sessions::perfetto_trace(run, "msascope " + app.doc().source).dump(1);
        app.set_status(out ? "wrote " + path + " (open in ui.perfetto.dev)" : "cannot write " + path);
    }
    ImGui::EndDisabled();
    if (no_kernels && ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled))
        ImGui::SetTooltip("This run has no CUDA kernel records (a %s run), so a trace would be empty.\n"
                          "Record one with --backend cuda, or a bench with --profile.",
                          run.backend.c_str());
    if (!app.doc().session_path.empty()) {
        const std::vector<const char*> tables = bench.empty() ? std::vector<const char*>{"kernels", "layers", "timings"}
                                                              : std::vector<const char*>{"kernels", "sweep_rows"};
        for (const char* table : tables) {
            ImGui::SameLine();
            std::string label = std::string("CSV: ") + table;
            if (ImGui::SmallButton(label.c_str())) {
                std::string path = std::string("msascope-") + table + ".csv";
                try {
                    sessions::Reader reader(app.doc().session_path);
                    std::ofstream out(path);
                    sessions::write_csv(reader, app.doc().session_run, table, out);
                    app.set_status("wrote " + path);
                } catch (const std::exception& e) {
                    app.set_status(e.what());
                }
            }
        }
    }
    ImVec2 avail = ImGui::GetContentRegionAvail();
    kernel_table(app, run, avail.y * 0.30f);
    timeline(app, run, avail.y * 0.22f);
    float half = (avail.x - 8) / 2, chart_h = ImGui::GetContentRegionAvail().y - 4;
    if (bench.empty()) dense_vs_sparse(run, half, chart_h);
    else bench_rows(bench, half, chart_h);
    ImGui::SameLine(0, 8);
    flops_curve(app, half, chart_h);
    ImGui::End();
}

}  // namespace msa::gui
