#pragma once
// Synthetic attention inputs: Q/K/V arrays whose attention is known in kind,
// for tests and for `msascope-cli sweep --synthetic`.
//
// - concentrated: most keys are weak background; a few "strong" keys carry a
//   planted direction, and every query is built from the directions of a few
//   strong keys before it with decaying weights. Its dense attention puts most
//   of the mass on a handful of blocks (plus a diffuse tail), the regime where
//   block top-k keeps almost everything.
// - noise: Q, K, V i.i.d. standard normal. Attention is close to uniform, so
//   any block selection keeps roughly its share of the visible keys: the
//   selector can only beat a uniform pick by a little. MSA's quality is
//   borrowed from concentration.
#include <cstdint>
#include <string>
#include <vector>

#include "core/msa.h"

namespace msa {

enum class SyntheticKind { concentrated, noise };
const char* to_string(SyntheticKind kind);
SyntheticKind parse_synthetic_kind(const std::string& name);  // InputError on unknown names

struct SyntheticOptions {
    SyntheticKind kind = SyntheticKind::concentrated;
    AttentionShape shape{2048, 4, 2, 64};
    uint64_t seed = 1;
    // concentrated only:
    int targets_per_query = 12;   // strong keys each query is aligned with
    double strong_fraction = 1.0 / 24;  // share of key positions that are strong
    double strength = 10.0;       // logit of the best target above the background
    double decay = 0.85;          // each further target's weight relative to the previous
    double background_std = 1.5;  // std of the logits of the weak keys (the diffuse tail)
};

struct SyntheticAttention {
    SyntheticOptions options;
    std::vector<float> q, k, v;   // [N, Hq, d], [N, Hkv, d], [N, Hkv, d]
    QKV qkv() const { return QKV{q.data(), k.data(), v.data(), options.shape}; }
};

// Deterministic from the options. InputError on an impossible shape.
SyntheticAttention make_synthetic_attention(const SyntheticOptions& options);

// What one MSA configuration keeps of the dense attention on these inputs.
struct SyntheticMeasure {
    double recall_mean = 0;        // dense mass on the selected blocks, mean over queries and heads
    double recall_p5 = 0;
    double output_rel_error = 0;   // ||O_msa - O_dense|| / ||O_dense||
    double uniform_recall = 0;     // expected recall of k blocks picked uniformly from the visible ones
};
SyntheticMeasure measure_synthetic(const SyntheticAttention& input, const MsaConfig& config, int threads = 1);

}  // namespace msa
