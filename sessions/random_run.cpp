#include "sessions/random_run.h"

#include <cmath>
#include <limits>

namespace msa::sessions {

namespace {

// splitmix64: tiny, seedable, good enough for test data.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
    float normal() {
        const double u = std::max(uniform(), 1e-300), v = uniform();
        return static_cast<float>(std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v));
    }
};

BlockScores random_scores(const RandomRunShape& s, Rng& rng) {
    BlockScores scores;
    scores.n_tokens = s.n_tokens;
    scores.n_groups = s.n_kv_heads;
    scores.n_blocks = (s.n_tokens + s.block - 1) / s.block;
    scores.values.resize(size_t(scores.n_tokens) * scores.n_groups * scores.n_blocks);
    for (int t = 0; t < s.n_tokens; ++t)
        for (int g = 0; g < s.n_kv_heads; ++g) {
            float* row = scores.values.data() + (size_t(t) * s.n_kv_heads + g) * scores.n_blocks;
            for (int b = 0; b < scores.n_blocks; ++b)
                row[b] = b <= t / s.block ? rng.normal() : -std::numeric_limits<float>::infinity();
        }
    return scores;
}

}  // namespace

LayerCapture random_capture(const RandomRunShape& s, int layer, bool full, uint64_t seed) {
    Rng rng(seed ^ (uint64_t(layer) << 32));
    LayerCapture c;
    c.layer = layer;
    BlockScores scores = random_scores(s, rng);
    c.selection = select_blocks(scores, s.k, s.sink, s.block);
    if (!full) return c;
    BlockMass mass;
    mass.n_tokens = s.n_tokens;
    mass.n_heads = s.n_heads;
    mass.n_blocks = scores.n_blocks;
    mass.values.assign(size_t(mass.n_tokens) * mass.n_heads * mass.n_blocks, 0.0f);
    for (int t = 0; t < s.n_tokens; ++t)
        for (int h = 0; h < s.n_heads; ++h) {
            float* row = mass.values.data() + (size_t(t) * s.n_heads + h) * mass.n_blocks;
            double total = 0;
            const int visible = t / s.block + 1;
            for (int b = 0; b < visible; ++b) total += row[b] = static_cast<float>(std::exp(2.0 * rng.normal()));
            for (int b = 0; b < visible; ++b) row[b] = static_cast<float>(row[b] / total);
        }
    c.recall = attention_recall(mass, c.selection, s.n_heads / s.n_kv_heads);
    c.scores = std::move(scores);
    c.mass = std::move(mass);
    return c;
}

std::vector<KernelRecord> random_kernels(const RandomRunShape& s, int layer, uint64_t start_ns, uint64_t seed) {
    static const char* const names[] = {"msa_index_score_kernel", "msa_block_topk_kernel", "msa_sparse_prefill_kernel",
                                        "dense_attention_prefill_kernel", "gemm_f32_kernel"};
    static const char* const phases[] = {"index", "select", "sparse", "dense", "gemm"};
    Rng rng(seed ^ (uint64_t(layer) << 40) ^ 0xabcdefull);
    std::vector<KernelRecord> out;
    uint64_t t = start_ns;
    for (int i = 0; i < s.kernels_per_layer; ++i) {
        KernelRecord k;
        const int which = i % 5;
        k.name = names[which];
        k.phase = phases[which];
        k.grid[0] = 1 + int(rng.next() % 512);
        k.grid[1] = s.n_kv_heads;
        k.grid[2] = 1;
        k.block[0] = 128;
        k.block[1] = 1;
        k.block[2] = 1;
        k.registers = 32 + int(rng.next() % 96);
        k.shared_bytes = int(rng.next() % 65536);
        k.stream = which == 3 ? 14 : 7;  // the dense baseline runs on its own stream
        k.correlation_id = uint32_t(layer * 1000 + i + 1);
        k.start_ns = t + rng.next() % 2000;
        k.end_ns = k.start_ns + 5000 + rng.next() % 200000;
        t = k.end_ns;
        k.flops = 1e6 * (1 + rng.next() % 1000);
        k.bytes = 1e5 * (1 + rng.next() % 1000);
        k.layer = layer;
        out.push_back(std::move(k));
    }
    return out;
}

RunResult random_run(const RandomRunShape& s, uint64_t seed) {
    Rng rng(seed);
    RunResult r;
    r.model_path = "/models/random-" + std::to_string(seed) + ".gguf";
    r.model_hash = "0123456789abcdef" + std::to_string(seed);
    r.model_format = "gguf";
    r.quantization = "Q4_1";
    r.model_config.arch = "llama";
    r.model_config.n_layers = s.n_layers;
    r.model_config.hidden = 64 * s.n_heads;
    r.model_config.n_heads = s.n_heads;
    r.model_config.n_kv_heads = s.n_kv_heads;
    r.model_config.head_dim = 64;
    r.model_config.ffn = 1536;
    r.model_config.vocab = 49152;
    r.model_config.context_length = 8192;
    r.model_config.rope_theta = 100000.0f;
    r.model_config.tied_embeddings = true;
    r.text = "Random text, \"quoted\", with a comma and a newline\nand UTF-8: \xc3\xa9t\xc3\xa9.";
    r.tokens.resize(s.n_tokens);
    for (int& t : r.tokens) t = int(rng.next() % 49152);
    r.config.k = s.k;
    r.config.block = s.block;
    r.config.sink = s.sink;
    r.config.seed = rng.next();  // exercises the full uint64 range
    r.backend = "cuda";
    r.device = "NVIDIA H100 80GB HBM3";
    r.threads = 8;
    r.started_unix_ms = 1700000000000 + int64_t(seed);
    r.finished_unix_ms = r.started_unix_ms + 1234;
    uint64_t clock_ns = 1000000000ull;
    for (int l = 0; l < s.n_layers; ++l) {
        LayerResult layer;
        layer.layer = l;
        layer.recall_mean = 0.5 + 0.5 * rng.uniform();
        layer.recall_p5 = layer.recall_mean * rng.uniform();
        layer.recall_p50 = layer.recall_mean;
        layer.output_rel_error = 0.1 * rng.uniform();
        for (int g = 0; g < s.n_kv_heads; ++g) layer.group_recall_mean.push_back(rng.uniform());
        for (int h = 0; h < s.n_heads; ++h) {
            layer.head_recall_mean.push_back(rng.uniform());
            layer.head_rel_error.push_back(rng.uniform() * 0.2);
        }
        r.layers.push_back(std::move(layer));
        auto kernels = random_kernels(s, l, clock_ns, seed);
        if (!kernels.empty()) clock_ns = kernels.back().end_ns;
        r.kernels.insert(r.kernels.end(), kernels.begin(), kernels.end());
        bool full = false;
        for (int f : s.full_layers) full = full || f == l;
        if (s.selections || full) r.captures.push_back(random_capture(s, l, full, seed));
    }
    r.perplexity_dense = 10 + rng.uniform();
    r.perplexity_msa = r.perplexity_dense + rng.uniform();
    r.perplexity_random = NAN;  // not measured: must survive as NaN
    r.needle_hit_rate = rng.uniform();
    r.needles = {{"alpha", "4711", 100, 110, s.n_tokens - 1}, {"beta, \"b\"", "42", 300, 305, s.n_tokens - 2}};
    r.dense_attention_flops = 1e12;
    r.msa_attention_flops = 1e11;
    r.timings = {{"tokenize", 1.5}, {"forward_dense", 800 * rng.uniform()}, {"forward_msa", 500 * rng.uniform()}};
    r.warnings = {"k <= forced blocks leaves no free slot"};
    return r;
}

}  // namespace msa::sessions
