#pragma once
// What one msascope run produces: the CLI prints it, sessions/ stores it, the
// GUI draws it. Plain data only.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/msa.h"

namespace msa {

// One GPU kernel launch as CUPTI (or the CUDA-event fallback) saw it, with the
// launcher's analytic cost.
struct KernelRecord {
    std::string name;          // demangled
    int grid[3] = {0, 0, 0};
    int block[3] = {0, 0, 0};
    int registers = 0;
    int shared_bytes = 0;      // static + dynamic
    uint64_t start_ns = 0;
    uint64_t end_ns = 0;
    uint32_t stream = 0;
    uint32_t correlation_id = 0;
    double flops = 0;          // analytic
    double bytes = 0;          // analytic, fewest bytes the launch must move
    int layer = -1;            // -1 when not tied to a layer
    std::string phase;         // e.g. "index", "select", "sparse", "dense", "gemm"
    int64_t context = 0;       // tokens of the launch's sequence when it differs per launch (a bench's context); 0 = the run's
    double ms() const { return (end_ns - start_ns) * 1e-6; }
};

struct StageTiming {
    std::string name;
    double ms = 0;
};

struct LayerResult {
    int layer = 0;
    double recall_mean = 0;
    double recall_p5 = 0;
    double recall_p50 = 0;
    double output_rel_error = 0;
    std::vector<double> group_recall_mean;  // [G]
    std::vector<double> head_recall_mean;   // [Hq]
    std::vector<double> head_rel_error;     // [Hq]
};

// Per-layer arrays captured for views; any may be empty when not asked for.
struct LayerCapture {
    int layer = 0;
    Selection selection;      // [N, G, slots]
    BlockScores scores;       // [N, G, nb]
    BlockMass mass;           // [N, Hq, nb] dense mass per block
    std::vector<float> recall;  // [N, Hq]
    // Optional: the layer's post-RoPE Q [N,Hq,d], K and V [N,Hkv,d]. Present
    // only when a run kept them (the GUI's synthetic runs); with them the GUI
    // can re-pool for another scorer or block size (viz::repool).
    std::vector<float> q, k, v;
    AttentionShape qkv_shape;
};

struct Needle {
    std::string key;
    std::string value;
    int token_begin = 0;      // fact tokens [begin, end)
    int token_end = 0;
    int question_token = 0;   // position of the last token of its question
};

struct RunResult {
    // identity
    std::string model_path;
    std::string model_hash;
    std::string model_format;
    std::string quantization;
    ModelConfig model_config;
    std::string text;
    std::vector<int> tokens;
    MsaConfig config;
    std::string backend = "cpu";
    std::string device;
    int threads = 1;
    int64_t started_unix_ms = 0;
    int64_t finished_unix_ms = 0;

    // metrics
    std::vector<LayerResult> layers;
    double perplexity_dense = NAN;
    double perplexity_msa = NAN;
    double perplexity_random = NAN;
    double needle_hit_rate = NAN;
    std::vector<Needle> needles;
    double dense_attention_flops = 0;  // analytic, whole run
    double msa_attention_flops = 0;
    double flops_ratio() const { return msa_attention_flops > 0 ? dense_attention_flops / msa_attention_flops : NAN; }

    std::vector<StageTiming> timings;
    std::vector<KernelRecord> kernels;
    std::vector<LayerCapture> captures;
    std::vector<std::string> warnings;
};

}  // namespace msa
