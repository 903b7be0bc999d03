#include "sessions/export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/errors.h"

namespace msa::sessions {

namespace {

using nlohmann::json;

std::string cell(const std::string& text) {
    if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
    std::string quoted = "\"";
    for (char c : text) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    return quoted + "\"";
}

std::string cell(double v) {
    if (std::isnan(v)) return "";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.9g", v);
    return buffer;
}

std::string cell(int64_t v) { return std::to_string(v); }
std::string cell(int v) { return std::to_string(v); }
std::string cell(uint64_t v) { return std::to_string(v); }
std::string cell(uint32_t v) { return std::to_string(v); }

// Writes one CSV line from already-formatted cells.
void line(std::ostream& out, const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
        if (i) out << ',';
        out << cells[i];
    }
    out << '\n';
}

std::string json_cell(const json& v) {
    if (v.is_null()) return "";
    if (v.is_string()) return cell(v.get<std::string>());
    if (v.is_number_float()) return cell(v.get<double>());
    return cell(v.dump());
}

std::vector<int> capture_layers(const Reader& reader, int64_t run, int layer, const std::string& table) {
    const std::vector<int> layers = reader.captured_layers(run);
    if (layers.empty())
        throw InputError(reader.path() + ": run " + std::to_string(run) + " has no captures, so no '" + table + "' table");
    if (layer < 0) return layers;
    if (std::find(layers.begin(), layers.end(), layer) == layers.end())
        throw InputError(reader.path() + ": run " + std::to_string(run) + " did not capture layer " + std::to_string(layer));
    return {layer};
}

void write_capture_table(const Reader& reader, int64_t run, const std::string& table, std::ostream& out, int layer) {
    bool header_done = false;
    for (int l : capture_layers(reader, run, layer, table)) {
        LayerCapture c;
        if (table == "selections") {
            c.layer = l;
            c.selection = reader.load_selection(run, l);
        } else {
            c = reader.load_capture(run, l);
        }
        std::vector<std::string> cells;
        if (table == "selections") {
            const Selection& s = c.selection;
            if (!header_done) {
                cells = {"layer", "query", "group"};
                for (int i = 0; i < s.slots; ++i) cells.push_back("slot_" + std::to_string(i));
                line(out, cells);
                header_done = true;
            }
            for (int t = 0; t < s.n_tokens; ++t)
                for (int g = 0; g < s.n_groups; ++g) {
                    cells = {cell(l), cell(t), cell(g)};
                    const int32_t* row = s.row(t, g);
                    for (int i = 0; i < s.slots; ++i) cells.push_back(row[i] < 0 ? std::string() : cell(row[i]));
                    line(out, cells);
                }
        } else if (table == "scores" || table == "mass") {
            const bool scores = table == "scores";
            const int n_tokens = scores ? c.scores.n_tokens : c.mass.n_tokens;
            const int rows = scores ? c.scores.n_groups : c.mass.n_heads;
            const int n_blocks = scores ? c.scores.n_blocks : c.mass.n_blocks;
            const std::vector<float>& values = scores ? c.scores.values : c.mass.values;
            if (values.empty()) continue;
            if (!header_done) {
                cells = {"layer", "query", scores ? "group" : "head"};
                for (int b = 0; b < n_blocks; ++b) cells.push_back("block_" + std::to_string(b));
                line(out, cells);
                header_done = true;
            }
            for (int t = 0; t < n_tokens; ++t)
                for (int r = 0; r < rows; ++r) {
                    cells = {cell(l), cell(t), cell(r)};
                    const float* v = values.data() + (size_t(t) * rows + r) * n_blocks;
                    for (int b = 0; b < n_blocks; ++b) cells.push_back(cell(double(v[b])));
                    line(out, cells);
                }
        } else {  // recall
            if (c.recall.empty()) continue;
            const int n_tokens = std::max(c.selection.n_tokens, std::max(c.scores.n_tokens, c.mass.n_tokens));
            const size_t heads = n_tokens > 0 ? c.recall.size() / n_tokens : 0;
            if (!header_done) {
                cells = {"layer", "query"};
                for (size_t h = 0; h < heads; ++h) cells.push_back("head_" + std::to_string(h));
                line(out, cells);
                header_done = true;
            }
            for (int t = 0; t < n_tokens; ++t) {
                cells = {cell(l), cell(t)};
                for (size_t h = 0; h < heads; ++h) cells.push_back(cell(double(c.recall[t * heads + h])));
                line(out, cells);
            }
        }
    }
    if (!header_done)
        throw InputError(reader.path() + ": run " + std::to_string(run) + " stored no " + table + " in its captures");
}

}  // namespace

const std::vector<std::string>& csv_tables() {
    static const std::vector<std::string> names = {"runs",     "layers",  "groups",     "heads",      "kernels",
                                                   "timings",  "needles", "warnings",   "stages",     "sweep_rows",
                                                   "selections", "scores", "mass",      "recall"};
    return names;
}

void write_csv(const Reader& reader, int64_t run, const std::string& table, std::ostream& out, int layer) {
    const auto& names = csv_tables();
    if (std::find(names.begin(), names.end(), table) == names.end()) {
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        throw InputError("unknown table '" + table + "' (tables: " + list + ")");
    }
    if (table == "runs") {
        line(out, {"id", "kind", "status", "label", "model_path", "backend", "device", "k", "block", "scorer", "sink",
                   "index", "n_tokens", "started_unix_ms", "finished_unix_ms", "recall_mean", "perplexity_dense",
                   "perplexity_msa", "layers_stored", "captures", "kernels"});
        for (const RunSummary& r : reader.runs())
            line(out, {cell(r.id), cell(r.kind), cell(r.status), cell(r.label), cell(r.model_path), cell(r.backend),
                       cell(r.device), cell(r.config.k), cell(r.config.block), cell(std::string(to_string(r.config.scorer))),
                       cell(r.config.sink), cell(std::string(to_string(r.config.index))), cell(r.n_tokens),
                       cell(r.started_unix_ms), r.finished_unix_ms ? cell(r.finished_unix_ms) : std::string(),
                       cell(r.recall_mean), cell(r.perplexity_dense), cell(r.perplexity_msa), cell(r.n_layers_stored),
                       cell(r.n_captures), cell(r.n_kernels)});
        return;
    }
    if (table == "selections" || table == "scores" || table == "mass" || table == "recall") {
        write_capture_table(reader, run, table, out, layer);
        return;
    }
    if (table == "sweep_rows") {
        const json rows = reader.sweep_rows(run);
        std::vector<std::string> keys;
        std::set<std::string> seen;
        for (const auto& r : rows)
            for (const auto& item : r.items())
                if (seen.insert(item.key()).second) keys.push_back(item.key());
        std::vector<std::string> cells;
        for (const auto& k : keys) cells.push_back(cell(k));
        line(out, cells);
        for (const auto& r : rows) {
            cells.clear();
            for (const auto& k : keys) cells.push_back(r.contains(k) ? json_cell(r.at(k)) : std::string());
            line(out, cells);
        }
        return;
    }
    if (table == "stages") {
        line(out, {"seq", "stage", "rows", "layer"});
        int seq = 0;
        for (const StageRecord& s : reader.stages(run))
            line(out, {cell(++seq), cell(s.stage), cell(s.rows), s.layer >= 0 ? cell(s.layer) : std::string()});
        return;
    }
    const RunResult r = reader.load_run(run, false);
    if (table == "layers") {
        line(out, {"layer", "recall_mean", "recall_p5", "recall_p50", "output_rel_error"});
        for (const auto& l : r.layers)
            line(out, {cell(l.layer), cell(l.recall_mean), cell(l.recall_p5), cell(l.recall_p50), cell(l.output_rel_error)});
    } else if (table == "groups") {
        line(out, {"layer", "group", "recall_mean"});
        for (const auto& l : r.layers)
            for (size_t g = 0; g < l.group_recall_mean.size(); ++g)
                line(out, {cell(l.layer), cell(int64_t(g)), cell(l.group_recall_mean[g])});
    } else if (table == "heads") {
        line(out, {"layer", "head", "recall_mean", "rel_error"});
        for (const auto& l : r.layers)
            for (size_t h = 0; h < l.head_recall_mean.size(); ++h)
                line(out, {cell(l.layer), cell(int64_t(h)), cell(l.head_recall_mean[h]),
                           cell(h < l.head_rel_error.size() ? l.head_rel_error[h] : NAN)});
    } else if (table == "kernels") {
        line(out, {"seq", "name", "phase", "layer", "stream", "correlation_id", "grid_x", "grid_y", "grid_z", "block_x",
                   "block_y", "block_z", "registers", "shared_bytes", "start_ns", "end_ns", "ms", "flops", "bytes",
                   "tflops_per_s", "context"});
        int64_t seq = 0;
        for (const auto& k : r.kernels) {
            const double ms = k.end_ns > k.start_ns ? k.ms() : NAN;
            line(out, {cell(++seq), cell(k.name), cell(k.phase), cell(k.layer), cell(k.stream), cell(k.correlation_id),
                       cell(k.grid[0]), cell(k.grid[1]), cell(k.grid[2]), cell(k.block[0]), cell(k.block[1]),
                       cell(k.block[2]), cell(k.registers), cell(k.shared_bytes), cell(k.start_ns), cell(k.end_ns),
                       cell(ms), cell(k.flops), cell(k.bytes), cell(ms > 0 ? k.flops / (ms * 1e9) : NAN),
                       cell(k.context)});
        }
    } else if (table == "timings") {
        line(out, {"name", "ms"});
        for (const auto& t : r.timings) line(out, {cell(t.name), cell(t.ms)});
    } else if (table == "needles") {
        line(out, {"key", "value", "token_begin", "token_end", "question_token"});
        for (const auto& n : r.needles)
            line(out, {cell(n.key), cell(n.value), cell(n.token_begin), cell(n.token_end), cell(n.question_token)});
    } else if (table == "warnings") {
        line(out, {"message"});
        for (const auto& w : r.warnings) line(out, {cell(w)});
    }
}

json perfetto_trace(const RunResult& run, const std::string& process_name) {
    json events = json::array();
    constexpr int kPid = 1;
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", 0}, {"args", {{"name", process_name}}}});
    uint64_t t0 = UINT64_MAX;
    std::set<uint32_t> streams;
    int64_t untimed = 0;
    for (const auto& k : run.kernels) {
        if (k.start_ns == 0 && k.end_ns == 0) continue;
        t0 = std::min(t0, k.start_ns);
        streams.insert(k.stream);
    }
    for (uint32_t s : streams) {
        events.push_back({{"name", "thread_name"},
                          {"ph", "M"},
                          {"pid", kPid},
                          {"tid", s},
                          {"args", {{"name", "CUDA stream " + std::to_string(s)}}}});
        events.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", kPid}, {"tid", s}, {"args", {{"sort_index", s}}}});
    }
    for (const auto& k : run.kernels) {
        if (k.start_ns == 0 && k.end_ns == 0) {
            ++untimed;
            continue;
        }
        const uint64_t end = std::max(k.end_ns, k.start_ns);
        const double dur_ms = (end - k.start_ns) * 1e-6;
        json args = {{"grid", {k.grid[0], k.grid[1], k.grid[2]}},
                     {"block", {k.block[0], k.block[1], k.block[2]}},
                     {"registers", k.registers},
                     {"shared_bytes", k.shared_bytes},
                     {"correlation_id", k.correlation_id},
                     {"layer", k.layer},
                     {"flops", k.flops},
                     {"bytes", k.bytes}};
        if (dur_ms > 0 && k.flops > 0) args["tflops_per_s"] = k.flops / (dur_ms * 1e9);
        if (k.context > 0) args["context"] = k.context;
        events.push_back({{"name", k.name},
                          {"cat", k.phase.empty() ? "kernel" : k.phase},
                          {"ph", "X"},
                          {"ts", (k.start_ns - t0) / 1000.0},
                          {"dur", (end - k.start_ns) / 1000.0},
                          {"pid", kPid},
                          {"tid", k.stream},
                          {"args", args}});
    }
    return {{"traceEvents", events},
            {"displayTimeUnit", "ns"},
            {"otherData",
             {{"producer", "msascope"},
              {"device", run.device},
              {"backend", run.backend},
              {"first_start_ns", t0 == UINT64_MAX ? 0 : t0},
              {"untimed_kernels", untimed}}}};
}

}  // namespace msa::sessions
