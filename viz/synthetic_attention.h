#pragma once
// "Synthetic attention": a demo input that needs no model file. Builds Q/K/V
// with concentrated, topic-structured attention (as in the reproductions of
// REFERENCE.md) and runs the real MSA engine on it, producing a RunResult the
// GUI draws exactly like a model run.
//
// Structure: the sequence is cut into regions of 32-192 tokens, each about one
// topic. Keys point along their topic's axis; each query looks at its own topic
// (recency) and at one earlier topic it "retrieves", plus a weak sink on the
// first tokens. Layers get sharper with depth, so the layer overview shows a
// range of recalls. Each token carries a word of its topic, so the text of the
// blocks a query selects shows what it retrieved.
#include <cstdint>
#include <string>

#include "core/forward.h"
#include "core/msa.h"
#include "core/run_result.h"

namespace msa::viz {

struct SyntheticOptions {
    int n_tokens = 4096;
    int n_layers = 4;
    int n_heads = 8;      // Hq
    int n_kv_heads = 2;   // groups
    int head_dim = 32;
    uint64_t seed = 7;
    MsaConfig config;
    int threads = 1;
    bool keep_qkv = true;  // lets the GUI re-pool for another scorer / block size
    ProgressFn progress;   // false = cancel (the result then holds the layers done)
};

RunResult synthetic_run(const SyntheticOptions& options);

// The word a synthetic token id stands for (with its leading space).
std::string synthetic_token_text(int id);

}  // namespace msa::viz
