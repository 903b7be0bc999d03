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

LayerCapture repool(const LayerCapture& capture, const MsaConfig& config, int threads) {
    if (!can_repool(capture))
        throw std::invalid_argument("layer " + std::to_string(capture.layer) +
                                    ": this run did not keep Q/K/V, so the scorer and block size cannot change");
    LayerCapture out;
    out.layer = capture.layer;
    out.q = capture.q;
    out.k = capture.k;
    out.v = capture.v;
    out.qkv_shape = capture.qkv_shape;
    QKV qkv{out.q.data(), out.k.data(), out.v.data(), out.qkv_shape};
    IndexInputs index = free_index_inputs(qkv);
    out.scores = score_blocks(index, config.block, config.scorer, config.seed, threads);
    out.mass = dense_block_mass(qkv, config.block, threads);
    out.selection = select_blocks(out.scores, config.k, config.sink, config.block);
    out.recall = attention_recall(out.mass, out.selection, qkv.shape.group_size());
    return out;
}

}  // namespace msa::viz
