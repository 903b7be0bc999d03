#include "viz/live_selection.h"

#include <chrono>
#include <stdexcept>

namespace msa::viz {

void summarize_recall(const std::vector<float>& recall, int n_heads, int group_size, LayerSelectionStats& stats) {
    stats.recall_mean = 0;
    stats.head_recall_mean.assign(n_heads, 0.0);
    stats.group_recall_mean.assign(group_size > 0 ? n_heads / group_size : 0, 0.0);
    if (recall.empty() || n_heads <= 0) return;
    const size_t n = recall.size() / n_heads;
    double total = 0;
    for (size_t t = 0; t < n; ++t)
        for (int h = 0; h < n_heads; ++h) {
            double r = recall[t * n_heads + h];
            stats.head_recall_mean[h] += r;
            total += r;
        }
    for (int h = 0; h < n_heads; ++h) stats.head_recall_mean[h] /= static_cast<double>(n);
    for (size_t g = 0; g < stats.group_recall_mean.size(); ++g) {
        double s = 0;
        for (int i = 0; i < group_size; ++i) s += stats.head_recall_mean[g * group_size + i];
        stats.group_recall_mean[g] = s / group_size;
    }
    stats.recall_mean = total / static_cast<double>(recall.size());
    stats.recall_p5 = quantile(recall, 0.05);
    stats.recall_p50 = quantile(recall, 0.50);
}

LayerSelectionStats reselect(const LayerCapture& capture, int k, int sink, int block) {
    if (capture.scores.values.empty() || capture.mass.values.empty())
        throw std::invalid_argument("layer " + std::to_string(capture.layer) +
                                    ": re-selection needs the captured block scores and dense block mass");
    auto start = std::chrono::steady_clock::now();
    LayerSelectionStats stats;
    stats.selection = select_blocks(capture.scores, k, sink, block);
    const int group_size = capture.mass.n_heads / std::max(1, capture.scores.n_groups);
    stats.recall = attention_recall(capture.mass, stats.selection, group_size);
    summarize_recall(stats.recall, capture.mass.n_heads, group_size, stats);
    stats.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return stats;
}

bool can_repool(const LayerCapture& capture) {
    const AttentionShape& s = capture.qkv_shape;
    size_t q = static_cast<size_t>(s.n_tokens) * s.n_heads * s.head_dim;
    size_t kv = static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim;
    return q > 0 && capture.q.size() == q && capture.k.size() == kv && capture.v.size() == kv;
}

BlockScores pool_block_scores(const LayerCapture& capture, int block, Scorer scorer, uint64_t seed, int threads) {
    if (!can_repool(capture))
        throw std::invalid_argument("layer " + std::to_string(capture.layer) +
                                    ": this run did not keep Q/K/V, so the scorer and block size cannot change");
    QKV qkv{capture.q.data(), capture.k.data(), capture.v.data(), capture.qkv_shape};
    return score_blocks(free_index_inputs(qkv), block, scorer, seed, threads);
}

LayerCapture repool(const LayerCapture& capture, int capture_block, const MsaConfig& config, int threads,
                    const ProgressFn& progress) {
    const bool reuse_mass = config.block == capture_block && !capture.mass.values.empty();
    auto step = [&progress](double fraction, const std::string& stage) {
        if (progress && !progress(fraction, stage)) throw std::runtime_error("cancelled");
    };
    LayerCapture out;
    out.layer = capture.layer;
    step(0.0, std::string("block scores (") + to_string(config.scorer) + ", B = " + std::to_string(config.block) + ")");
    out.scores = pool_block_scores(capture, config.block, config.scorer, config.seed, threads);
    QKV qkv{capture.q.data(), capture.k.data(), capture.v.data(), capture.qkv_shape};
    if (reuse_mass) {
        out.mass = capture.mass;
    } else {
        // The dense pass is the long part: about Hq / Hkv times the index pass's work, plus the exponentials.
        step(0.25, "dense block mass (B = " + std::to_string(config.block) + ")");
        out.mass = dense_block_mass(qkv, config.block, threads);
    }
    step(0.95, "top-k and recall");
    out.selection = select_blocks(out.scores, config.k, config.sink, config.block);
    out.recall = attention_recall(out.mass, out.selection, qkv.shape.group_size());
    step(1.0, "done");
    return out;
}

}  // namespace msa::viz
