#include "sessions/bench_run.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/errors.h"

namespace msa::sessions {

using nlohmann::json;

namespace {

double num(const json& j, const char* key) {
    return (j.is_object() && j.contains(key) && j[key].is_number()) ? j[key].get<double>() : NAN;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json contexts_of(const json& bench) {
    if (bench.contains("contexts") && bench["contexts"].is_array()) return bench["contexts"];
    json out = json::array();
    std::set<int64_t> seen;
    for (const char* table : {"rows", "decode_rows"})
        if (bench.contains(table) && bench[table].is_array())
            for (const json& r : bench[table])
                if (r.contains("context") && r["context"].is_number_integer() && seen.insert(r["context"].get<int64_t>()).second)
                    out.push_back(r["context"]);
    return out;
}

int int_field(const json& j, const char* key, const std::string& what) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 1 || j[key].get<int64_t>() > (1 << 20))
        throw InputError(what + ": \"" + key + "\" must be a positive integer");
    return j[key].get<int>();
}

RunResult bench_identity(const json& header) {
    const std::string what = "bench result";
    if (!header.contains("shape") || !header["shape"].is_object())
        throw InputError(what + " has no \"shape\" object (is it `msascope-cli bench --json` output?)");
    const json& shape = header["shape"];
    RunResult r;
    r.model_config.arch = shape.value("name", std::string("bench shape"));
    r.model_config.n_layers = 1;
    r.model_config.n_heads = int_field(shape, "n_heads", what + " shape");
    r.model_config.n_kv_heads = int_field(shape, "n_kv_heads", what + " shape");
    r.model_config.head_dim = int_field(shape, "head_dim", what + " shape");
    r.model_path = header.value("model", std::string());
    if (r.model_path.empty()) r.model_path = "bench shape " + r.model_config.arch;
    r.model_format = "bench shape";
    r.config.k = header.contains("k") ? int_field(header, "k", what) : 16;
    r.config.block = header.contains("block") ? int_field(header, "block", what) : 128;
    r.backend = "cuda";
    r.device = header.value("device", std::string());
    return r;
}

std::string bench_label(const RunResult& identity, const json& contexts) {
    std::string list;
    for (const json& c : contexts)
        if (c.is_number_integer()) list += (list.empty() ? "" : ",") + context_label(c.get<int64_t>());
    return identity.model_config.arch + " " + (list.empty() ? "" : list + " ") + "k" + std::to_string(identity.config.k) +
           " B" + std::to_string(identity.config.block);
}

int64_t context_of(const json& row) {
    return (row.is_object() && row.contains("context") && row["context"].is_number_integer()) ? row["context"].get<int64_t>()
                                                                                               : -1;
}

}  // namespace

json kernel_json(const KernelRecord& k) {
    return {{"context", k.context},
            {"name", k.name},
            {"phase", k.phase},
            {"grid", {k.grid[0], k.grid[1], k.grid[2]}},
            {"block", {k.block[0], k.block[1], k.block[2]}},
            {"registers", k.registers},
            {"shared_bytes", k.shared_bytes},
            {"ms", k.ms()},
            {"start_ns", k.start_ns},
            {"end_ns", k.end_ns},
            {"stream", k.stream},
            {"correlation_id", k.correlation_id},
            {"flops", k.flops},
            {"bytes", k.bytes},
            {"tflops", k.ms() > 0 && k.flops > 0 ? k.flops / (k.ms() * 1e9) : 0.0}};
}

std::vector<KernelRecord> kernels_from_json(const json& kernels, uint64_t* t0_ns) {
    std::vector<KernelRecord> out;
    if (kernels.is_null()) return out;
    if (!kernels.is_array()) throw InputError("bench \"kernels\" is not an array");
    uint64_t clock = t0_ns ? *t0_ns : 0;
    for (size_t i = 0; i < kernels.size(); ++i) {
        const json& j = kernels[i];
        const std::string where = "bench kernel record " + std::to_string(i);
        if (!j.is_object() || !j.contains("name") || !j["name"].is_string())
            throw InputError(where + " has no \"name\"");
        KernelRecord k;
        k.name = j["name"].get<std::string>();
        k.phase = j.value("phase", std::string());
        k.context = context_of(j) > 0 ? context_of(j) : 0;
        for (int d = 0; d < 3; ++d) {
            if (j.contains("grid") && j["grid"].is_array() && j["grid"].size() == 3) k.grid[d] = j["grid"][d].get<int>();
            if (j.contains("block") && j["block"].is_array() && j["block"].size() == 3) k.block[d] = j["block"][d].get<int>();
        }
        k.registers = j.value("registers", 0);
        k.shared_bytes = j.value("shared_bytes", 0);
        k.stream = j.value("stream", 0u);
        k.correlation_id = j.value("correlation_id", 0u);
        k.flops = std::isfinite(num(j, "flops")) ? num(j, "flops") : 0;
        k.bytes = std::isfinite(num(j, "bytes")) ? num(j, "bytes") : 0;
        k.layer = j.value("layer", -1);
        if (j.contains("start_ns") && j["start_ns"].is_number_unsigned() && j.contains("end_ns") &&
            j["end_ns"].is_number_unsigned() && j["end_ns"].get<uint64_t>() >= j["start_ns"].get<uint64_t>()) {
            k.start_ns = j["start_ns"].get<uint64_t>();
            k.end_ns = j["end_ns"].get<uint64_t>();
        } else {
            const double ms = num(j, "ms");
            if (!std::isfinite(ms) || ms < 0) throw InputError(where + " (" + k.name + ") has no \"ms\"");
            k.start_ns = clock;
            k.end_ns = clock + static_cast<uint64_t>(std::llround(ms * 1e6));
        }
        clock = std::max(clock, k.end_ns);
        out.push_back(std::move(k));
    }
    if (t0_ns) *t0_ns = clock;
    return out;
}

BenchRecorder::BenchRecorder(Writer& writer, const json& header) : writer_(writer) {
    if (!header.is_object()) throw InputError("bench result is not a JSON object");
    const json contexts = contexts_of(header);
    const RunResult identity = bench_identity(header);
    config_ = {{"shape", header["shape"]},
               {"k", identity.config.k},
               {"block", identity.config.block},
               {"contexts", contexts},
               {"device", identity.device}};
    for (const char* key : {"reps", "peers", "source", "model"})
        if (header.contains(key) && !header[key].is_null()) config_[key] = header[key];
    run_ = writer_.begin_run(identity, "bench");
    writer_.set_label(run_, bench_label(identity, contexts));
    writer_.write_config(run_, config_);
}

void BenchRecorder::add_context(const json& row, const json& decode_row, const json& kernels) {
    json rows = json::array();
    if (row.is_object()) rows.push_back(json(row)), rows.back()["table"] = "prefill";
    if (decode_row.is_object()) rows.push_back(json(decode_row)), rows.back()["table"] = "decode";
    writer_.write_sweep_rows(run_, rows);
    std::vector<KernelRecord> records = kernels_from_json(kernels, &clock_ns_);
    const int64_t context = context_of(row.is_object() ? row : decode_row);
    for (KernelRecord& k : records)
        if (k.context == 0 && context > 0) k.context = context;
    writer_.write_kernels(run_, records);
}

void BenchRecorder::finish(const json& warnings, const json& peers) {
    if (peers.is_object() && !peers.empty() && config_.value("peers", json()) != peers) {
        config_["peers"] = peers;
        writer_.write_config(run_, config_);
    }
    RunResult summary;
    if (warnings.is_array())
        for (const json& w : warnings)
            if (w.is_string()) summary.warnings.push_back(w.get<std::string>());
    writer_.write_summary(run_, summary);
    writer_.finish_run(run_);
}

std::string context_label(int64_t n) {
    if (n >= (int64_t(1) << 20) && n % (int64_t(1) << 20) == 0) return std::to_string(n >> 20) + "M";
    if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + "K";
    return std::to_string(n);
}

int64_t write_bench_run(Writer& writer, const json& bench, const std::string& source) {
    if (!bench.is_object() || !bench.contains("rows") || !bench["rows"].is_array())
        throw InputError("not a bench result: no \"rows\" array (expected `msascope-cli bench --json` output)");
    json header = bench;
    if (!source.empty() && !header.contains("source")) header["source"] = source;
    BenchRecorder recorder(writer, header);
    const json none;
    const json& decode = bench.contains("decode_rows") && bench["decode_rows"].is_array() ? bench["decode_rows"] : none;
    const json& kernels = bench.contains("kernels") && bench["kernels"].is_array() ? bench["kernels"] : none;
    std::vector<bool> decode_used(decode.is_array() ? decode.size() : 0), kernel_used(kernels.is_array() ? kernels.size() : 0);
    auto take = [&](int64_t context) {
        json d, k = json::array();
        for (size_t i = 0; i < decode_used.size(); ++i)
            if (!decode_used[i] && context_of(decode[i]) == context) {
                d = decode[i];
                decode_used[i] = true;
                break;
            }
        for (size_t i = 0; i < kernel_used.size(); ++i)
            if (!kernel_used[i] && context_of(kernels[i]) == context) k.push_back(kernels[i]), kernel_used[i] = true;
        return std::make_pair(d, k);
    };
    for (const json& row : bench["rows"]) {
        auto [d, k] = take(context_of(row));
        recorder.add_context(row, d, k);
    }
    // Decode rows and kernels of contexts without a prefill row, in their order.
    for (size_t i = 0; i < decode_used.size(); ++i)
        if (!decode_used[i]) {
            decode_used[i] = true;
            auto [unused, k] = take(context_of(decode[i]));
            recorder.add_context(json(), decode[i], k);
        }
    json rest = json::array();
    for (size_t i = 0; i < kernel_used.size(); ++i)
        if (!kernel_used[i]) rest.push_back(kernels[i]);
    if (!rest.empty()) recorder.add_context(json(), json(), rest);
    recorder.finish(bench.value("warnings", json::array()), bench.value("peers", json()));
    return recorder.run();
}

AttentionFlopsShape bench_shape(const json& config, const ModelConfig& fallback) {
    AttentionFlopsShape s;
    const json shape = config.is_object() ? config.value("shape", json::object()) : json::object();
    s.name = shape.value("name", fallback.arch);
    s.n_heads = shape.value("n_heads", std::max(1, fallback.n_heads));
    s.n_kv_heads = shape.value("n_kv_heads", std::max(1, fallback.n_kv_heads));
    s.head_dim = shape.value("head_dim", std::max(1, fallback.head_dim));
    // Without index fields: the training-free index (one head per group, the head dim).
    s.index_heads = shape.value("index_heads", s.n_kv_heads);
    s.index_dim = shape.value("index_dim", s.head_dim);
    return s;
}

BenchRun load_bench_run(const Reader& reader, int64_t run) {
    BenchRun out;
    out.config = reader.run_config(run);
    for (json row : reader.sweep_rows(run)) {
        const std::string table = row.value("table", std::string("prefill"));
        row.erase("table");
        (table == "decode" ? out.decode_rows : out.rows).push_back(std::move(row));
    }
    ModelConfig fallback;
    if (!out.config.contains("shape")) fallback = reader.load_run(run, false).model_config;
    out.shape = bench_shape(out.config, fallback);
    return out;
}

void add_bench_comparison(json& comparison, const BenchRun& a, const BenchRun& b) {
    if (a.empty() && b.empty()) return;
    json& diff = comparison["config_diff"];
    for (const char* field : {"shape", "contexts", "reps"}) {
        const json va = a.config.value(field, json()), vb = b.config.value(field, json());
        if (va != vb) diff.push_back({{"field", field}, {"a", va.is_null() ? va : json(va.dump())},
                                      {"b", vb.is_null() ? vb : json(vb.dump())}});
    }
    json& metrics = comparison["metrics"];
    static const std::pair<const char*, const char*> kKeys[] = {
        {"sparse_ms", "lower"}, {"index_ms", "lower"}, {"main_ms", "lower"},      {"dense_ms", "lower"},
        {"sdpa_ms", "lower"},   {"flex_ms", "lower"},  {"speedup", "higher"},     {"sparse_tflops", "higher"}};
    for (const char* table : {"prefill", "decode"}) {
        const json& ra = std::string(table) == "decode" ? a.decode_rows : a.rows;
        const json& rb = std::string(table) == "decode" ? b.decode_rows : b.rows;
        std::set<int64_t> contexts;
        for (const json* rows : {&ra, &rb})
            for (const json& r : *rows) contexts.insert(context_of(r));
        auto find = [](const json& rows, int64_t context) {
            for (const json& r : rows)
                if (context_of(r) == context) return r;
            return json();
        };
        for (int64_t context : contexts) {
            const json x = find(ra, context), y = find(rb, context);
            for (const auto& [key, better] : kKeys) {
                const double va = num(x, key), vb = num(y, key);
                if (std::isnan(va) && std::isnan(vb)) continue;
                const double delta = vb - va;
                const double rel = (std::isfinite(va) && va != 0 && std::isfinite(vb)) ? delta / std::fabs(va) : NAN;
                // "8K sparse_ms", "decode 1M speedup": short enough for the compare page's
                // name column, which elides in the middle and would cut the context.
                const std::string prefix = std::string(table) == "decode" ? "decode " : "";
                metrics.push_back({{"name", prefix + context_label(context) + " " + key},
                                   {"a", number_or_null(va)},
                                   {"b", number_or_null(vb)},
                                   {"delta", number_or_null(delta)},
                                   {"rel", number_or_null(rel)},
                                   {"better", better}});
            }
        }
    }
}

}  // namespace msa::sessions
