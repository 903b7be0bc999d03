#include "sessions/compare.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

namespace msa::sessions {

namespace {

using nlohmann::json;

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json describe(const RunResult& r) {
    return {{"model", r.model_path},
            {"model_hash", r.model_hash},
            {"backend", r.backend},
            {"device", r.device},
            {"tokens", r.tokens.size()},
            {"threads", r.threads},
            {"started_unix_ms", r.started_unix_ms},
            {"config",
             {{"k", r.config.k},
              {"block", r.config.block},
              {"scorer", to_string(r.config.scorer)},
              {"sink", r.config.sink},
              {"index", to_string(r.config.index)}}}};
}

// `zero_is_absent`: for counts a run leaves at 0 when it did not count them
// (a bench run has no attention FLOPs of its own): skipped when both are.
void add_metric(json& metrics, const std::string& name, double a, double b, const char* better,
                bool zero_is_absent = false) {
    auto absent = [zero_is_absent](double v) { return std::isnan(v) || (zero_is_absent && v == 0); };
    if (absent(a) && absent(b)) return;
    const double delta = b - a;
    const double rel = (std::isfinite(a) && a != 0 && std::isfinite(b)) ? delta / std::fabs(a) : NAN;
    metrics.push_back(
        {{"name", name}, {"a", number(a)}, {"b", number(b)}, {"delta", number(delta)}, {"rel", number(rel)}, {"better", better}});
}

double mean_of(const std::vector<LayerResult>& layers, double LayerResult::*field) {
    double sum = 0;
    int n = 0;
    for (const auto& l : layers)
        if (std::isfinite(l.*field)) sum += l.*field, ++n;
    return n ? sum / n : NAN;
}

const LayerResult* find_layer(const std::vector<LayerResult>& layers, int layer) {
    for (const auto& l : layers)
        if (l.layer == layer) return &l;
    return nullptr;
}

// Selected ids of one row (ascending, -1 padding), as sorted key intervals
// [begin, end) clipped to the query's causal horizon t + 1.
void row_intervals(const Selection& s, int t, int g, int block, std::vector<std::pair<int64_t, int64_t>>& out) {
    out.clear();
    const int32_t* row = s.row(t, g);
    for (int i = 0; i < s.slots; ++i) {
        if (row[i] < 0) continue;
        const int64_t begin = int64_t(row[i]) * block;
        const int64_t end = std::min<int64_t>(begin + block, int64_t(t) + 1);
        if (end > begin) out.emplace_back(begin, end);
    }
    std::sort(out.begin(), out.end());
}

int64_t covered(const std::vector<std::pair<int64_t, int64_t>>& v) {
    int64_t n = 0;
    for (const auto& [b, e] : v) n += e - b;
    return n;
}

int64_t overlap(const std::vector<std::pair<int64_t, int64_t>>& a, const std::vector<std::pair<int64_t, int64_t>>& b) {
    int64_t n = 0;
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        const int64_t lo = std::max(a[i].first, b[j].first), hi = std::min(a[i].second, b[j].second);
        if (hi > lo) n += hi - lo;
        (a[i].second < b[j].second) ? ++i : ++j;
    }
    return n;
}

}  // namespace

double selection_jaccard(const Selection& a, int block_a, const Selection& b, int block_b, int group, int* queries) {
    const int n = std::min(a.n_tokens, b.n_tokens);
    if (queries) *queries = n;
    if (n <= 0 || group >= a.n_groups || group >= b.n_groups || group < 0) return NAN;
    double sum = 0;
    if (block_a == block_b) {
        // Same block grid: compare the id sets directly (both rows ascending).
        for (int t = 0; t < n; ++t) {
            const int32_t* ra = a.row(t, group);
            const int32_t* rb = b.row(t, group);
            int ca = 0, cb = 0;
            while (ca < a.slots && ra[ca] >= 0) ++ca;
            while (cb < b.slots && rb[cb] >= 0) ++cb;
            int i = 0, j = 0, both = 0;
            while (i < ca && j < cb) {
                if (ra[i] == rb[j]) ++both, ++i, ++j;
                else if (ra[i] < rb[j]) ++i;
                else ++j;
            }
            const int either = ca + cb - both;
            sum += either ? double(both) / either : 1.0;
        }
    } else {
        std::vector<std::pair<int64_t, int64_t>> ia, ib;
        for (int t = 0; t < n; ++t) {
            row_intervals(a, t, group, block_a, ia);
            row_intervals(b, t, group, block_b, ib);
            const int64_t both = overlap(ia, ib);
            const int64_t either = covered(ia) + covered(ib) - both;
            sum += either ? double(both) / double(either) : 1.0;
        }
    }
    return sum / n;
}

json compare_runs(const RunResult& a, const RunResult& b) {
    json out;
    out["a"] = describe(a);
    out["b"] = describe(b);

    json diff = json::array();
    auto field = [&](const char* name, const json& va, const json& vb) {
        if (va != vb) diff.push_back({{"field", name}, {"a", va}, {"b", vb}});
    };
    field("model", a.model_path, b.model_path);
    field("model_hash", a.model_hash, b.model_hash);
    field("quantization", a.quantization, b.quantization);
    field("k", a.config.k, b.config.k);
    field("block", a.config.block, b.config.block);
    field("scorer", to_string(a.config.scorer), to_string(b.config.scorer));
    field("sink", a.config.sink, b.config.sink);
    field("index", to_string(a.config.index), to_string(b.config.index));
    if (a.config.scorer == Scorer::random || b.config.scorer == Scorer::random) field("seed", a.config.seed, b.config.seed);
    field("tokens", a.tokens.size(), b.tokens.size());
    field("backend", a.backend, b.backend);
    field("device", a.device, b.device);
    field("threads", a.threads, b.threads);
    out["config_diff"] = diff;
    out["same_tokens"] = a.tokens == b.tokens;

    json metrics = json::array();
    add_metric(metrics, "perplexity_dense", a.perplexity_dense, b.perplexity_dense, "lower");
    add_metric(metrics, "perplexity_msa", a.perplexity_msa, b.perplexity_msa, "lower");
    add_metric(metrics, "perplexity_random", a.perplexity_random, b.perplexity_random, "lower");
    add_metric(metrics, "needle_hit_rate", a.needle_hit_rate, b.needle_hit_rate, "higher");
    add_metric(metrics, "flops_ratio", a.flops_ratio(), b.flops_ratio(), "higher");
    add_metric(metrics, "msa_attention_flops", a.msa_attention_flops, b.msa_attention_flops, "lower", true);
    add_metric(metrics, "dense_attention_flops", a.dense_attention_flops, b.dense_attention_flops, "", true);
    add_metric(metrics, "recall_mean", mean_of(a.layers, &LayerResult::recall_mean),
               mean_of(b.layers, &LayerResult::recall_mean), "higher");
    add_metric(metrics, "output_rel_error_mean", mean_of(a.layers, &LayerResult::output_rel_error),
               mean_of(b.layers, &LayerResult::output_rel_error), "lower");
    std::vector<int> layers;
    for (const auto& l : a.layers) layers.push_back(l.layer);
    for (const auto& l : b.layers) layers.push_back(l.layer);
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
    for (int layer : layers) {
        const LayerResult* la = find_layer(a.layers, layer);
        const LayerResult* lb = find_layer(b.layers, layer);
        const std::string prefix = "layer " + std::to_string(layer) + " ";
        add_metric(metrics, prefix + "recall_mean", la ? la->recall_mean : NAN, lb ? lb->recall_mean : NAN, "higher");
        add_metric(metrics, prefix + "recall_p5", la ? la->recall_p5 : NAN, lb ? lb->recall_p5 : NAN, "higher");
        add_metric(metrics, prefix + "output_rel_error", la ? la->output_rel_error : NAN, lb ? lb->output_rel_error : NAN,
                   "lower");
    }
    // Stage timings by name (a stage timed twice counts once, summed), in first-seen order.
    std::vector<std::string> stage_names;
    std::map<std::string, std::pair<double, double>> stage_ms;
    auto add_stage = [&](const StageTiming& t, bool is_a) {
        auto it = stage_ms.find(t.name);
        if (it == stage_ms.end()) {
            stage_names.push_back(t.name);
            it = stage_ms.emplace(t.name, std::make_pair(double(NAN), double(NAN))).first;
        }
        double& slot = is_a ? it->second.first : it->second.second;
        slot = std::isnan(slot) ? t.ms : slot + t.ms;
    };
    for (const auto& t : a.timings) add_stage(t, true);
    for (const auto& t : b.timings) add_stage(t, false);
    for (const auto& name : stage_names)
        add_metric(metrics, "timing " + name + " ms", stage_ms[name].first, stage_ms[name].second, "lower");

    // Kernels: i-th launch of each name against the i-th launch in b.
    std::unordered_map<std::string, std::vector<const KernelRecord*>> launches_b;
    std::unordered_map<std::string, size_t> seen_a, seen_b;
    json kernels = json::array();
    std::vector<std::string> names;
    std::map<std::string, json> totals;
    auto total = [&](const std::string& name) -> json& {
        auto it = totals.find(name);
        if (it == totals.end()) {
            names.push_back(name);
            it = totals.emplace(name, json{{"name", name}, {"a_ms", 0.0}, {"b_ms", 0.0}, {"a_count", 0}, {"b_count", 0}}).first;
        }
        return it->second;
    };
    auto launch_entry = [](const std::string& name, size_t i, const KernelRecord* ka, const KernelRecord* kb) {
        const double a_ms = ka ? ka->ms() : NAN, b_ms = kb ? kb->ms() : NAN;
        const double delta = b_ms - a_ms;
        const KernelRecord* any = ka ? ka : kb;
        return json{{"name", name},
                    {"launch", i},
                    {"a_ms", number(a_ms)},
                    {"b_ms", number(b_ms)},
                    {"delta_ms", number(delta)},
                    {"rel", number(std::isfinite(delta) && a_ms > 0 ? delta / a_ms : NAN)},
                    {"layer", any->layer},
                    {"context", any->context},
                    {"phase", any->phase}};
    };
    // A bench times one kernel at several contexts: its launches pair up by
    // name and context, so runs over different context lists still line up.
    auto key = [](const KernelRecord& k) { return k.context > 0 ? k.name + '\x1f' + std::to_string(k.context) : k.name; };
    for (const auto& k : b.kernels) launches_b[key(k)].push_back(&k);
    for (const auto& ka : a.kernels) {
        const size_t i = seen_a[key(ka)]++;
        const auto it = launches_b.find(key(ka));
        const KernelRecord* kb = (it != launches_b.end() && i < it->second.size()) ? it->second[i] : nullptr;
        kernels.push_back(launch_entry(ka.name, i, &ka, kb));
        json& t = total(ka.name);
        t["a_ms"] = t["a_ms"].get<double>() + ka.ms();
        t["a_count"] = t["a_count"].get<int>() + 1;
    }
    for (const auto& kb : b.kernels) {
        json& t = total(kb.name);
        const size_t i = seen_b[key(kb)]++;
        t["b_ms"] = t["b_ms"].get<double>() + kb.ms();
        t["b_count"] = t["b_count"].get<int>() + 1;
        if (i >= seen_a[key(kb)]) kernels.push_back(launch_entry(kb.name, i, nullptr, &kb));
    }
    json kernel_totals = json::array();
    double sum_a = 0, sum_b = 0;
    for (const auto& name : names) {
        json t = totals[name];
        const double a_ms = t["a_count"].get<int>() ? t["a_ms"].get<double>() : NAN;
        const double b_ms = t["b_count"].get<int>() ? t["b_ms"].get<double>() : NAN;
        if (std::isfinite(a_ms)) sum_a += a_ms;
        if (std::isfinite(b_ms)) sum_b += b_ms;
        t["a_ms"] = number(a_ms);
        t["b_ms"] = number(b_ms);
        t["delta_ms"] = number(b_ms - a_ms);
        t["rel"] = number(a_ms > 0 ? (b_ms - a_ms) / a_ms : NAN);
        kernel_totals.push_back(t);
    }
    if (!a.kernels.empty() || !b.kernels.empty())
        add_metric(metrics, "kernels total ms", a.kernels.empty() ? NAN : sum_a, b.kernels.empty() ? NAN : sum_b, "lower");
    out["metrics"] = metrics;
    out["kernels"] = kernels;
    out["kernel_totals"] = kernel_totals;

    json rows = json::array();
    double sum = 0;
    int count = 0;
    for (const auto& ca : a.captures) {
        if (ca.selection.blocks.empty()) continue;
        for (const auto& cb : b.captures) {
            if (cb.layer != ca.layer || cb.selection.blocks.empty()) continue;
            const int groups = std::min(ca.selection.n_groups, cb.selection.n_groups);
            for (int g = 0; g < groups; ++g) {
                int queries = 0;
                const double j = selection_jaccard(ca.selection, a.config.block, cb.selection, b.config.block, g, &queries);
                rows.push_back({{"layer", ca.layer}, {"group", g}, {"jaccard", number(j)}, {"queries", queries}});
                if (std::isfinite(j)) sum += j, ++count;
            }
        }
    }
    out["selection_jaccard"] = {{"mean", count ? json(sum / count) : json(nullptr)},
                                {"unit", a.config.block == b.config.block ? "blocks" : "tokens"},
                                {"rows", rows}};
    return out;
}

}  // namespace msa::sessions
