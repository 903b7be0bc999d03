#pragma once
// One msascope analysis run: the function the CLI `run` and the GUI's Run
// button both call. Dense forward with MSA diagnostics in every analysed layer
// (recall, output error on the same Q/K/V), then perplexity with MSA in every
// layer and with the random control.
#include <string>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/msa.h"
#include "core/run_result.h"

namespace msa {

class ComputeBackend;  // core/backend.h

enum class CaptureLevel {
    none,        // metrics only
    selections,  // + per-layer selections
    full,        // + block scores, dense block mass and recall per query (heatmaps)
};

struct AnalysisOptions {
    MsaConfig config;
    int threads = 1;
    std::vector<int> layers;            // layers to analyse; empty = all
    bool perplexity = true;             // forward with MSA in every layer (and dense)
    bool random_control = true;         // + forward with the random scorer
    CaptureLevel capture = CaptureLevel::selections;
    std::vector<int> capture_layers;    // for CaptureLevel::full; empty = all analysed layers
    // Full-capture layers also keep their post-RoPE Q/K/V, so a view can
    // re-pool them for another scorer or block size (viz::repool) without
    // running the model again. Costs N * (Hq + 2 Hkv) * d floats per layer.
    bool keep_qkv = false;
    ProgressFn progress;                // fraction over the whole run; false = cancel
    // Planted facts (multi-needle documents): the run reports the needle block
    // hit rate = fraction of (layer, group, needle) triples whose fact block is
    // selected at the needle's question token.
    std::vector<Needle> needles;
    // Where the forwards and the attention ops run; null = cpu_backend().
    // Recall, dense block mass and output error are always computed on the CPU
    // from the Q/K/V the backend's forward produced.
    const ComputeBackend* backend = nullptr;
};

// Hit rate of needles over captured selections (NaN when there is nothing to count).
double needle_hit_rate(const std::vector<LayerCapture>& captures, const std::vector<Needle>& needles, int block);

// The attention hook of a forward with MSA in every layer: the index branch
// (training-free unless the model hands trained index inputs and the config
// asks for them), top-k, then the main branch, all on `backend`.
AttentionFn msa_attention_hook(const ComputeBackend& backend, const MsaConfig& config, int threads);

// The identity part of a run (model, text, tokens, config, backend, start
// time, budget warnings) as analyze() records it, so a session can mark the
// run as begun before the long work starts.
RunResult make_run_identity(const Model& model, const std::vector<int>& tokens, const std::string& text,
                            const AnalysisOptions& options);

// Throws InputError for impossible settings (k < 1, block < 1, layer out of range...).
RunResult analyze(const Model& model, const std::vector<int>& tokens, const std::string& text,
                  const AnalysisOptions& options);

}  // namespace msa
