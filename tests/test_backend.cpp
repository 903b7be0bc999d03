// core/backend.h: the CPU backend is what analyze() used before backends
// existed, and analyze() routes every forward and attention op through the
// backend it is given (a counting backend proves it), taking the run's
// backend name, device, kernel records and warnings from it. CPU only.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <vector>

#include "core/analysis.h"
#include "core/backend.h"
#include "core/parallel.h"
#include "tests/support/tiny_model.h"

namespace {

msa::Model small_model(uint64_t seed) {
    msa::ModelConfig c = msa::tiny_config();
    c.n_layers = 3;
    return msa::make_random_model(c, seed);
}

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    std::vector<int> t(n);
    for (auto& x : t) x = pick(rng);
    return t;
}

msa::AnalysisOptions small_options() {
    msa::AnalysisOptions o;
    o.threads = 2;
    o.config.k = 3;
    o.config.block = 16;
    o.capture = msa::CaptureLevel::full;
    return o;
}

void expect_same_run(const msa::RunResult& a, const msa::RunResult& b) {
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (size_t l = 0; l < a.layers.size(); ++l) {
        EXPECT_EQ(a.layers[l].recall_mean, b.layers[l].recall_mean);
        EXPECT_EQ(a.layers[l].recall_p5, b.layers[l].recall_p5);
        EXPECT_EQ(a.layers[l].output_rel_error, b.layers[l].output_rel_error);
        EXPECT_EQ(a.layers[l].head_recall_mean, b.layers[l].head_recall_mean);
    }
    EXPECT_EQ(a.perplexity_dense, b.perplexity_dense);
    EXPECT_EQ(a.perplexity_msa, b.perplexity_msa);
    EXPECT_EQ(a.perplexity_random, b.perplexity_random);
    ASSERT_EQ(a.captures.size(), b.captures.size());
    for (size_t i = 0; i < a.captures.size(); ++i) {
        EXPECT_EQ(a.captures[i].selection.blocks, b.captures[i].selection.blocks);
        EXPECT_EQ(a.captures[i].scores.values, b.captures[i].scores.values);
        EXPECT_EQ(a.captures[i].mass.values, b.captures[i].mass.values);
        EXPECT_EQ(a.captures[i].recall, b.captures[i].recall);
    }
}

TEST(Backend, CpuBackendIsCoreFunctions) {
    const msa::ComputeBackend& cpu = msa::cpu_backend();
    EXPECT_EQ(cpu.name(), "cpu");
    EXPECT_EQ(&cpu, &msa::cpu_backend());
    EXPECT_TRUE(cpu.take_kernel_records().empty());

    msa::Model model = small_model(3);
    const auto tokens = random_tokens(90, model.config.vocab, 4);
    msa::ForwardOptions fo;
    fo.threads = 2;
    EXPECT_EQ(cpu.forward(model, tokens, fo).nll, msa::forward(model, tokens, fo).nll);

    // Attention ops on random Q/K/V: same arrays as msa.h's functions.
    std::mt19937_64 rng(5);
    std::normal_distribution<float> d;
    msa::AttentionShape s{70, 4, 2, 16};
    std::vector<float> q(70 * 4 * 16), k(70 * 2 * 16), v(k.size());
    for (auto* a : {&q, &k, &v})
        for (auto& x : *a) x = d(rng);
    const msa::QKV qkv{q.data(), k.data(), v.data(), s};
    std::vector<float> o1(q.size()), o2(q.size());
    cpu.dense_attention(qkv, o1.data(), 2);
    msa::dense_attention(qkv, o2.data(), 2);
    EXPECT_EQ(o1, o2);

    msa::MsaConfig mc;
    mc.k = 2;
    mc.block = 16;
    const msa::IndexInputs idx = msa::free_index_inputs(qkv);
    msa::BlockScores scores;
    const msa::Selection sel = cpu.select_blocks(idx, mc, &scores, 2);
    const msa::BlockScores ref_scores = msa::score_blocks(idx, mc.block, mc.scorer, mc.seed, 2);
    EXPECT_EQ(scores.values, ref_scores.values);
    EXPECT_EQ(sel.blocks, msa::select_blocks(ref_scores, mc.k, mc.sink, mc.block).blocks);
    EXPECT_EQ(cpu.select_blocks(idx, mc, nullptr, 2).blocks, sel.blocks);

    cpu.sparse_attention(qkv, sel, mc.block, o1.data(), 2);
    const msa::MsaLayerOutput ref = msa::msa_attention(qkv, idx, mc, o2.data(), 2);
    EXPECT_EQ(ref.selection.blocks, sel.blocks);
    EXPECT_EQ(o1, o2);
}

TEST(Backend, AnalyzeWithExplicitCpuBackendEqualsDefault) {
    msa::Model model = small_model(7);
    const auto tokens = random_tokens(150, model.config.vocab, 8);
    msa::AnalysisOptions o = small_options();
    msa::RunResult by_default = msa::analyze(model, tokens, "t", o);
    o.backend = &msa::cpu_backend();
    msa::RunResult explicit_cpu = msa::analyze(model, tokens, "t", o);
    EXPECT_EQ(by_default.backend, "cpu");
    EXPECT_EQ(explicit_cpu.backend, "cpu");
    EXPECT_EQ(explicit_cpu.device, by_default.device);
    EXPECT_TRUE(explicit_cpu.kernels.empty());
    expect_same_run(by_default, explicit_cpu);
}

// Delegates to the CPU backend and counts the calls; reports one fake kernel
// record per forward so the test can see analyze() collect them.
class CountingBackend final : public msa::ComputeBackend {
public:
    mutable std::atomic<int> forwards{0}, dense{0}, selects{0}, sparse{0}, takes{0}, scored{0};
    std::string name() const override { return "counting"; }
    std::string device() const override { return "test device"; }
    msa::ForwardResult forward(const msa::Model& m, const std::vector<int>& t,
                               const msa::ForwardOptions& o) const override {
        ++forwards;
        return msa::cpu_backend().forward(m, t, o);
    }
    void dense_attention(const msa::QKV& qkv, float* out, int threads) const override {
        ++dense;
        msa::cpu_backend().dense_attention(qkv, out, threads);
    }
    msa::Selection select_blocks(const msa::IndexInputs& index, const msa::MsaConfig& config,
                                 msa::BlockScores* scores, int threads) const override {
        ++selects;
        if (scores) ++scored;
        return msa::cpu_backend().select_blocks(index, config, scores, threads);
    }
    void sparse_attention(const msa::QKV& qkv, const msa::Selection& selection, int block, float* out,
                          int threads) const override {
        ++sparse;
        msa::cpu_backend().sparse_attention(qkv, selection, block, out, threads);
    }
    std::vector<msa::KernelRecord> take_kernel_records() const override {
        const int call = takes++;
        if (call == 0) return {msa::KernelRecord{}};  // "from before the run": must be dropped
        msa::KernelRecord r;
        r.name = "fake";
        r.phase = "gemm";
        r.flops = forwards.load();
        return {r};
    }
    std::vector<std::string> take_warnings() const override { return {"counting backend says hi"}; }
};

TEST(Backend, AnalyzeRoutesEveryOpThroughTheBackend) {
    msa::Model model = small_model(9);
    const auto tokens = random_tokens(120, model.config.vocab, 10);
    msa::AnalysisOptions o = small_options();
    o.layers = {0, 2};
    o.capture_layers = {2};
    msa::RunResult cpu = msa::analyze(model, tokens, "t", o);
    CountingBackend counting;
    o.backend = &counting;
    msa::RunResult run = msa::analyze(model, tokens, "t", o);
    const int L = model.config.n_layers;
    EXPECT_EQ(counting.forwards, 3);        // dense + MSA + random control
    EXPECT_EQ(counting.dense, L);           // every layer of the dense pass
    EXPECT_EQ(counting.selects, 2 + 2 * L); // analysed layers + both MSA forwards
    EXPECT_EQ(counting.sparse, 2 + 2 * L);
    EXPECT_EQ(counting.scored, 1);          // block scores only for the full-capture layer
    EXPECT_EQ(counting.takes, 2);           // once before (dropped), once after
    EXPECT_EQ(run.backend, "counting");
    EXPECT_EQ(run.device, "test device");
    ASSERT_EQ(run.kernels.size(), 1u);
    EXPECT_EQ(run.kernels[0].name, "fake");
    EXPECT_EQ(run.kernels[0].flops, 3);
    EXPECT_NE(std::find(run.warnings.begin(), run.warnings.end(), "counting backend says hi"), run.warnings.end());
    expect_same_run(cpu, run);
}

}  // namespace
