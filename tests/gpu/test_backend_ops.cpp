// GPU ops vs the CPU reference (core/msa.h), in the style of ggml's
// test-backend-ops: fresh random inputs per case, rounded to bf16 and fed to
// both sides; outputs compared by NMSE, selections as sets with ties resolved by
// the reference scores; the host API poisons outputs and checks guard zones
// around them on every call (a kernel that writes out of bounds throws).
// Without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/msa.h"
#include "core/parallel.h"
#include "kernels/cuda_attention.h"
#include "kernels/cupti_collector.h"

namespace {

#define REQUIRE_GPU()                                                  \
    do {                                                               \
        std::string why_;                                              \
        if (!msa::cuda::cuda_available(&why_)) GTEST_SKIP() << "no CUDA device: " << why_; \
    } while (0)

int threads() { return msa::default_threads(); }

std::vector<float> random_bf16(size_t n, std::mt19937_64& rng, float scale = 1.0f) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = msa::cuda::round_bf16(dist(rng));
    return v;
}

double nmse(const float* a, const float* ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = static_cast<double>(a[i]) - ref[i];
        num += d * d;
        den += static_cast<double>(ref[i]) * ref[i];
    }
    return den > 0 ? num / den : num;
}

bool all_finite(const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// Worst NMSE per op, printed at the end of the run (the summary the lead reads).
struct Worst {
    std::string op;
    double value = 0;
    std::string where;
};
std::vector<Worst>& worst_table() {
    static std::vector<Worst> t;
    return t;
}
void note(const std::string& op, double v, const std::string& where) {
    for (auto& w : worst_table())
        if (w.op == op) {
            if (v > w.value) {
                w.value = v;
                w.where = where;
            }
            return;
        }
    worst_table().push_back({op, v, where});
}
struct PrintWorst : ::testing::Environment {
    void TearDown() override {
        if (worst_table().empty()) return;
        std::printf("\n[backend-ops] worst NMSE per op:\n");
        for (auto& w : worst_table()) std::printf("  %-16s %.3e  (%s)\n", w.op.c_str(), w.value, w.where.c_str());
    }
};
const auto* kEnv = ::testing::AddGlobalTestEnvironment(new PrintWorst);

struct Case {
    int n, groups, r, d, k, sink, block;
    msa::Scorer scorer;
    int key_heads;  // 0: training-free (one per group), 1: shared index key head
    std::string name() const {
        char b[160];
        std::snprintf(b, sizeof b, "N%d_G%d_r%d_d%d_k%d_s%d_B%d_%s_kh%d", n, groups, r, d, k, sink, block,
                      msa::to_string(scorer), key_heads);
        return b;
    }
};

struct Inputs {
    msa::AttentionShape shape;
    std::vector<float> q, k, v;
    msa::QKV qkv() const { return {q.data(), k.data(), v.data(), shape}; }
};

Inputs make_inputs(const Case& c, uint64_t seed) {
    std::mt19937_64 rng(seed);
    Inputs in;
    in.shape = {c.n, c.groups * c.r, c.groups, c.d};
    in.q = random_bf16(static_cast<size_t>(c.n) * c.groups * c.r * c.d, rng);
    in.k = random_bf16(static_cast<size_t>(c.n) * c.groups * c.d, rng);
    in.v = random_bf16(static_cast<size_t>(c.n) * c.groups * c.d, rng);
    return in;
}

msa::IndexInputs make_index(const Case& c, const Inputs& in, uint64_t seed) {
    if (c.key_heads == 0) {
        msa::IndexInputs idx = msa::free_index_inputs(in.qkv());
        for (auto& x : idx.q) x = msa::cuda::round_bf16(x);  // the GPU sees the bf16 mean
        return idx;
    }
    std::mt19937_64 rng(seed ^ 0xABCDEF);
    msa::IndexInputs idx;
    idx.n_tokens = c.n;
    idx.n_groups = c.groups;
    idx.n_key_heads = 1;
    idx.dim = c.d;
    idx.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    idx.q = random_bf16(static_cast<size_t>(c.n) * c.groups * c.d, rng);
    idx.k = random_bf16(static_cast<size_t>(c.n) * c.d, rng);
    return idx;
}

// Compares selections row by row as sets. A block in only one of the two sets is
// accepted when its reference score ties the row's boundary (the weakest free
// block the reference kept) within tol; anything else is a mismatch.
int compare_selections(const msa::Selection& gpu, const msa::Selection& cpu, const msa::BlockScores& ref, int block,
                       int sink, std::string* first) {
    int bad = 0;
    for (int t = 0; t < cpu.n_tokens; ++t)
        for (int g = 0; g < cpu.n_groups; ++g) {
            std::set<int> a, b;
            for (int i = 0; i < gpu.slots; ++i)
                if (gpu.row(t, g)[i] >= 0) a.insert(gpu.row(t, g)[i]);
            for (int i = 0; i < cpu.slots; ++i)
                if (cpu.row(t, g)[i] >= 0) b.insert(cpu.row(t, g)[i]);
            if (a == b) continue;
            const int local = t / block;
            float boundary = INFINITY;
            for (int x : b)
                if (x != local && !(sink && x == 0)) boundary = std::min(boundary, ref.at(t, g, x));
            const float tol = 1e-3f * (1.0f + std::fabs(boundary));
            bool ok = a.size() == b.size();
            std::vector<int> diff;
            std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(diff));
            for (int x : diff)
                if (x < 0 || x > local || !(std::fabs(ref.at(t, g, x) - boundary) <= tol)) ok = false;
            if (!ok) {
                if (!bad && first) *first = "t=" + std::to_string(t) + " g=" + std::to_string(g);
                ++bad;
            }
            // Ascending order, -1 padding after the valid ids.
            const int32_t* row = gpu.row(t, g);
            for (int i = 1; i < gpu.slots; ++i)
                if (row[i] >= 0 && !(row[i] > row[i - 1] && row[i - 1] >= 0)) ++bad;
        }
    return bad;
}

class BackendOps : public ::testing::TestWithParam<Case> {};

// Float64 attention of the cache's last token (q: its Hq x d values) over the
// blocks its group's selection row names, as a set (-1 and repeats ignored),
// or over every key when sel is null.
std::vector<float> decode_reference(const float* q, const Inputs& in, int block, const int32_t* sel, int slots) {
    const int N = in.shape.n_tokens, Hq = in.shape.n_heads, G = in.shape.n_kv_heads, d = in.shape.head_dim;
    const int r = Hq / G, nb = (N + block - 1) / block;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<float> out(static_cast<size_t>(Hq) * d);
    for (int h = 0; h < Hq; ++h) {
        const int g = h / r;
        std::vector<char> chosen(nb, sel ? 0 : 1);
        for (int i = 0; sel && i < slots; ++i)
            if (sel[static_cast<size_t>(g) * slots + i] >= 0) chosen[sel[static_cast<size_t>(g) * slots + i]] = 1;
        double m = -INFINITY;
        std::vector<double> s(N, -INFINITY);
        for (int j = 0; j < N; ++j) {
            if (!chosen[j / block]) continue;
            double acc = 0;
            for (int x = 0; x < d; ++x) acc += double(q[h * d + x]) * in.k[(static_cast<size_t>(j) * G + g) * d + x];
            s[j] = acc * scale;
            m = std::max(m, s[j]);
        }
        double l = 0;
        std::vector<double> o(d, 0.0);
        for (int j = 0; j < N; ++j) {
            if (s[j] == -INFINITY) continue;
            const double p = std::exp(s[j] - m);
            l += p;
            for (int x = 0; x < d; ++x) o[x] += p * in.v[(static_cast<size_t>(j) * G + g) * d + x];
        }
        for (int x = 0; x < d; ++x) out[static_cast<size_t>(h) * d + x] = static_cast<float>(o[x] / l);
    }
    return out;
}

msa::MsaConfig config_of(const Case& c) {
    msa::MsaConfig cfg;
    cfg.k = c.k;
    cfg.block = c.block;
    cfg.sink = c.sink;
    cfg.scorer = c.scorer;
    return cfg;
}

TEST_P(BackendOps, IndexTopkMatchesCpu) {
    REQUIRE_GPU();
    const Case c = GetParam();
    Inputs in = make_inputs(c, 1000 + c.n);
    msa::IndexInputs idx = make_index(c, in, 2000 + c.n);
    const msa::MsaConfig cfg = config_of(c);
    msa::BlockScores ref = msa::score_blocks(idx, c.block, c.scorer, cfg.seed, threads());
    msa::Selection cpu = msa::select_blocks(ref, c.k, c.sink, c.block);
    msa::BlockScores got;
    msa::Selection gpu = msa::cuda::select_blocks(idx, cfg, &got);
    ASSERT_EQ(gpu.slots, cpu.slots);
    ASSERT_EQ(got.values.size(), ref.values.size());
    // Scores: -inf exactly where the reference has it, NMSE over the rest.
    double num = 0, den = 0;
    size_t inf_mismatch = 0;
    for (size_t i = 0; i < ref.values.size(); ++i) {
        float a = got.values[i], b = ref.values[i];
        if (std::isinf(b) || std::isinf(a)) {
            inf_mismatch += (a != b);
            continue;
        }
        ASSERT_FALSE(std::isnan(a)) << "score " << i << " left poisoned";
        num += (double(a) - b) * (double(a) - b);
        den += double(b) * b;
    }
    EXPECT_EQ(inf_mismatch, 0u);
    double e = den > 0 ? num / den : num;
    note("index_scores", e, c.name());
    EXPECT_LT(e, 1e-6) << c.name();
    std::string first;
    int bad = compare_selections(gpu, cpu, ref, c.block, c.sink, &first);
    EXPECT_EQ(bad, 0) << c.name() << " first mismatch at " << first;
}

// The prefill top-k when no scores are asked for: the sm_90a tile writes them
// to scratch, in slices of tokens (forced to 1,000 here), and
// topk_prefill_kernel ranks each slice. Random keys, and keys that tie every
// score (ties go to the lower block id: compared exactly), with k beyond one
// lane maximum per lane (k = 40) and a row of tied survivors beyond what shared
// memory holds (20,000 tokens, B = 64: 312 candidates, 128 held).
TEST(BackendOpsIndex, SlicedTopkFromScratchScores) {
    REQUIRE_GPU();
    using msa::Scorer;
    for (const Case c : {Case{4113, 4, 1, 128, 16, 1, 128, Scorer::max, 1},
                         Case{4113, 2, 1, 128, 40, 0, 64, Scorer::max, 1}, Case{4113, 2, 1, 64, 8, 1, 128, Scorer::mean, 0},
                         Case{20000, 2, 1, 64, 16, 1, 64, Scorer::max, 1}})
        for (const bool tied : {false, true}) {
            if (c.n > 4113 && !tied) continue;
            Inputs in = make_inputs(c, 10000 + c.n);
            msa::IndexInputs idx = make_index(c, in, 11000 + c.n);
            if (tied) std::fill(idx.k.begin(), idx.k.end(), 0.f);
            const msa::MsaConfig cfg = config_of(c);
            msa::BlockScores ref = msa::score_blocks(idx, c.block, c.scorer, cfg.seed, threads());
            msa::Selection cpu = msa::select_blocks(ref, c.k, c.sink, c.block);
            setenv("MSA_INDEX_SLICE_TOKENS", "1000", 1);
            msa::Selection gpu = msa::cuda::select_blocks(idx, cfg);
            unsetenv("MSA_INDEX_SLICE_TOKENS");
            ASSERT_EQ(gpu.slots, cpu.slots);
            const std::string where = c.name() + (tied ? " tied" : " random");
            if (tied) {
                EXPECT_EQ(gpu.blocks, cpu.blocks) << where;
            } else {
                std::string first;
                EXPECT_EQ(compare_selections(gpu, cpu, ref, c.block, c.sink, &first), 0)
                    << where << " first mismatch at " << first;
            }
        }
}

// Both orders of the main branch against the CPU on the selection of c's
// max-scorer index.
void check_sparse_attention(const Case& c) {
    Inputs in = make_inputs(c, 3000 + c.n);
    msa::IndexInputs idx = make_index(c, in, 4000 + c.n);
    msa::BlockScores ref = msa::score_blocks(idx, c.block, c.scorer, 0x5eed, threads());
    msa::Selection sel = msa::select_blocks(ref, c.k, c.sink, c.block);
    const size_t n_out = static_cast<size_t>(c.n) * c.groups * c.r * c.d;
    std::vector<float> cpu(n_out), gpu(n_out);
    msa::sparse_attention(in.qkv(), sel, c.block, cpu.data(), threads());
    // Both orders of the main branch, whatever the automatic choice would be,
    // and block-major with both attend kernels (wgmma where the device has it,
    // mma.sync as on sm_80).
    struct Run {
        msa::SparseOrder order;
        bool force_mma;
        const char* label;
    };
    for (const Run run : {Run{msa::SparseOrder::token_major, false, "sparse_attention"},
                          Run{msa::SparseOrder::block_major, false, "sparse_block_major"},
                          Run{msa::SparseOrder::block_major, true, "sparse_block_major_mma"}}) {
        const bool block_major = run.order == msa::SparseOrder::block_major;
        if (block_major && (c.r > 16 || c.block > 128)) continue;
        std::fill(gpu.begin(), gpu.end(), NAN);
        if (run.force_mma) setenv("MSA_BLOCK_MAJOR_ATTEND", "mma", 1);
        msa::cuda::sparse_attention(in.qkv(), sel, c.block, gpu.data(), run.order);
        if (run.force_mma) unsetenv("MSA_BLOCK_MAJOR_ATTEND");
        ASSERT_TRUE(all_finite(gpu)) << "poisoned or non-finite output (" << run.label << ")";
        double e = nmse(gpu.data(), cpu.data(), n_out);
        note(run.label, e, c.name());
        EXPECT_LT(e, 5e-4) << c.name() << " (" << run.label << ")";
    }
}

TEST_P(BackendOps, SparseAttentionMatchesCpu) {
    REQUIRE_GPU();
    const Case c = GetParam();
    if (c.scorer != msa::Scorer::max) GTEST_SKIP() << "main branch is scorer-independent; covered by max cases";
    check_sparse_attention(c);
}

// More (group, block) lists (4 x 3,250) than one shared-memory histogram of
// the block-major reverse index holds (12,288): its count and fill run in
// slices of the lists, as at 1M tokens in the bench shape.
TEST(BackendOpsBlockMajor, ListsBeyondOneHistogramSlice) {
    REQUIRE_GPU();
    check_sparse_attention(Case{6500, 4, 2, 64, 4, 1, 2, msa::Scorer::max, 0});
}

TEST_P(BackendOps, DenseAttentionMatchesCpu) {
    REQUIRE_GPU();
    const Case c = GetParam();
    if (c.scorer != msa::Scorer::max) GTEST_SKIP() << "dense is scorer-independent; covered by max cases";
    if (static_cast<double>(c.n) * c.n * c.groups * c.r * c.d > 2e11) GTEST_SKIP() << "CPU reference too slow here";
    Inputs in = make_inputs(c, 5000 + c.n);
    const size_t n_out = static_cast<size_t>(c.n) * c.groups * c.r * c.d;
    std::vector<float> cpu(n_out), gpu(n_out);
    msa::dense_attention(in.qkv(), cpu.data(), threads());
    msa::cuda::dense_attention(in.qkv(), gpu.data());
    ASSERT_TRUE(all_finite(gpu));
    double e = nmse(gpu.data(), cpu.data(), n_out);
    note("dense_attention", e, c.name());
    EXPECT_LT(e, 5e-4) << c.name();
}

TEST_P(BackendOps, FullBudgetSparseEqualsDense) {
    REQUIRE_GPU();
    const Case c = GetParam();
    if (c.scorer != msa::Scorer::max || c.n > 8192) GTEST_SKIP() << "covered by the max-scorer cases up to 8K";
    Inputs in = make_inputs(c, 6000 + c.n);
    const int nb = in.shape.n_blocks(c.block);
    msa::Selection all;
    all.n_tokens = c.n;
    all.n_groups = c.groups;
    all.slots = nb;
    all.blocks.assign(static_cast<size_t>(c.n) * c.groups * nb, -1);
    for (int t = 0; t < c.n; ++t)
        for (int g = 0; g < c.groups; ++g)
            for (int b = 0; b <= t / c.block; ++b) all.row(t, g)[b] = b;
    const size_t n_out = static_cast<size_t>(c.n) * c.groups * c.r * c.d;
    std::vector<float> dense(n_out), sparse(n_out);
    msa::cuda::dense_attention(in.qkv(), dense.data());
    msa::cuda::sparse_attention(in.qkv(), all, c.block, sparse.data());
    double e = nmse(sparse.data(), dense.data(), n_out);
    note("full_budget", e, c.name());
    if (e == 0) std::printf("[full budget] %s: bit-identical to dense\n", c.name().c_str());
    // Both paths run the same tile code over the same 64-key chunks when B is a
    // multiple of 64, and most cases come out bit-identical; measured exceptions
    // (H100): r = 1 at 4113 tokens, NMSE 2.5e-6 (dense and sparse CTAs take the
    // masked/unmasked branch on different chunks, so FMA contraction of
    // s*scale - m differs), and B = 32, NMSE 1.3e-6 (the online softmax is
    // re-chunked). Both are bf16 noise; the bound is 1e-5.
    EXPECT_LT(e, 1e-5) << c.name();
    if (c.r <= 16 && c.block <= 128) {
        // Block-major rounds each block's normalised partial to bf16 before the
        // merge: one more bf16 rounding than dense, still within the bound.
        msa::cuda::sparse_attention(in.qkv(), all, c.block, sparse.data(), msa::SparseOrder::block_major);
        double eb = nmse(sparse.data(), dense.data(), n_out);
        note("full_budget_block_major", eb, c.name());
        EXPECT_LT(eb, 1e-5) << c.name() << " (block-major)";
    }
}

TEST_P(BackendOps, DecodeMatchesReference) {
    REQUIRE_GPU();
    const Case c = GetParam();
    if (c.scorer != msa::Scorer::max && c.scorer != msa::Scorer::mean) GTEST_SKIP() << "decode index: max/mean";
    Inputs in = make_inputs(c, 7000 + c.n);
    msa::IndexInputs idx = make_index(c, in, 8000 + c.n);
    const int N = c.n, Hq = c.groups * c.r, d = c.d, G = c.groups, t = N - 1;
    const float* q = in.q.data() + static_cast<size_t>(t) * Hq * d;
    const msa::MsaConfig cfg = config_of(c);
    int slots = 0;
    std::vector<float> gscores;
    std::vector<int32_t> gsel = msa::cuda::decode_select(idx.q.data() + static_cast<size_t>(t) * G * idx.dim, idx, cfg,
                                                         &slots, &gscores);
    // Reference scores of the last row from the CPU scorer; selection compared as sets.
    msa::BlockScores ref = msa::score_blocks(idx, c.block, c.scorer, cfg.seed, threads());
    msa::Selection cpu = msa::select_blocks(ref, c.k, c.sink, c.block);
    const int nb = ref.n_blocks;
    msa::Selection one;
    one.n_tokens = N;
    one.n_groups = G;
    one.slots = slots;
    one.blocks.assign(static_cast<size_t>(N) * G * slots, -1);
    std::copy(gsel.begin(), gsel.end(), one.row(t, 0));
    double num = 0, den = 0;
    for (int g = 0; g < G; ++g)
        for (int b = 0; b < nb; ++b) {
            float a = gscores[static_cast<size_t>(g) * nb + b], r = ref.at(t, g, b);
            if (std::isinf(r)) {
                EXPECT_EQ(a, r);
                continue;
            }
            num += (double(a) - r) * (double(a) - r);
            den += double(r) * r;
        }
    note("decode_scores", den > 0 ? num / den : num, c.name());
    EXPECT_LT(den > 0 ? num / den : num, 1e-6);
    // Only row t of `one` is meaningful; compare that row.
    msa::Selection cpu_one = one;
    std::copy(cpu.row(t, 0), cpu.row(t, 0) + static_cast<size_t>(G) * cpu.slots, cpu_one.row(t, 0));
    for (int g = 0; g < G; ++g) {
        std::set<int> a(one.row(t, g), one.row(t, g) + slots), b(cpu.row(t, g), cpu.row(t, g) + cpu.slots);
        a.erase(-1);
        b.erase(-1);
        if (a != b) {
            msa::Selection x = one, y = one;
            std::string first;
            msa::Selection rowsel;  // reuse the tie-tolerant comparison on the single row
            (void)rowsel;
            std::fill(y.blocks.begin(), y.blocks.end(), -1);
            std::copy(cpu.row(t, g), cpu.row(t, g) + std::min(cpu.slots, slots), y.row(t, g));
            std::fill(x.blocks.begin(), x.blocks.end(), -1);
            std::copy(one.row(t, g), one.row(t, g) + slots, x.row(t, g));
            EXPECT_EQ(compare_selections(x, y, ref, c.block, c.sink, &first), 0) << c.name() << " group " << g;
        }
    }
    // Attention over the GPU's selection vs a float64 reference of the same selection; dense too.
    std::vector<float> gs(static_cast<size_t>(Hq) * d), gd(gs.size());
    msa::cuda::sparse_decode(q, in.qkv(), gsel.data(), slots, c.block, gs.data());
    msa::cuda::dense_decode(q, in.qkv(), gd.data());
    const std::vector<float> rs = decode_reference(q, in, c.block, gsel.data(), slots);
    const std::vector<float> rd = decode_reference(q, in, c.block, nullptr, 0);
    double es = nmse(gs.data(), rs.data(), gs.size()), ed = nmse(gd.data(), rd.data(), gd.size());
    note("sparse_decode", es, c.name());
    note("dense_decode", ed, c.name());
    EXPECT_LT(es, 5e-4) << c.name();
    EXPECT_LT(ed, 5e-4) << c.name();
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name(); }
// Without it gtest (and so ctest's test list) prints each case as raw bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name(); }

using S = msa::Scorer;
// Tiny: fast enough for compute-sanitizer. Small: the edge lengths around a
// block. Large: 32K tokens with few heads (the CPU reference is the slow part).
INSTANTIATE_TEST_SUITE_P(Tiny, BackendOps,
                         ::testing::Values(Case{1, 2, 1, 64, 1, 0, 128, S::max, 0},
                                           Case{127, 2, 3, 64, 2, 1, 128, S::max, 0},
                                           Case{128, 1, 4, 128, 4, 0, 128, S::max, 1},
                                           Case{129, 2, 16, 128, 1, 1, 128, S::max, 0},
                                           Case{129, 3, 1, 64, 16, 0, 64, S::mean, 0},
                                           Case{300, 2, 4, 64, 2, 1, 32, S::max, 1},
                                           Case{300, 2, 4, 128, 2, 0, 256, S::max, 1},
                                           Case{129, 2, 3, 128, 2, 1, 16, S::quest, 0},
                                           Case{129, 2, 4, 64, 2, 0, 16, S::random, 0}),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Small, BackendOps,
                         ::testing::Values(Case{4113, 2, 4, 128, 4, 1, 128, S::max, 0},
                                           Case{4113, 1, 16, 64, 16, 0, 128, S::max, 0},
                                           Case{4113, 4, 3, 128, 32, 1, 128, S::max, 1},
                                           Case{4113, 2, 1, 128, 2, 0, 128, S::max, 0},
                                           Case{4113, 2, 16, 128, 16, 0, 128, S::max, 1},
                                           Case{4113, 2, 4, 128, 4, 1, 128, S::mean, 0},
                                           Case{4113, 2, 4, 128, 4, 1, 128, S::mean, 1},
                                           Case{4113, 2, 4, 64, 8, 1, 128, S::quest, 1},
                                           Case{4113, 2, 3, 64, 16, 0, 128, S::random, 0}),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Large, BackendOps,
                         ::testing::Values(Case{32768, 1, 16, 64, 4, 0, 128, S::max, 1},
                                           Case{32768, 1, 4, 64, 32, 1, 128, S::max, 0},
                                           Case{32768, 1, 1, 64, 16, 1, 128, S::max, 0}),
                         case_name);

TEST(BackendOpsErrors, RejectsUnsupportedHeadDim) {
    REQUIRE_GPU();
    Case c{64, 1, 2, 96, 4, 0, 32, S::max, 0};
    Inputs in = make_inputs(c, 1);
    std::vector<float> out(static_cast<size_t>(64) * 2 * 96);
    EXPECT_THROW(msa::cuda::dense_attention(in.qkv(), out.data()), msa::InputError);
}

// Block-major keeps one token's r heads in one m16 tile and a block in one
// staged tile: asked for it explicitly past those limits, the op says so.
TEST(BackendOpsErrors, BlockMajorRejectsLargeGroupsAndBlocks) {
    REQUIRE_GPU();
    for (const Case& c : {Case{300, 1, 32, 64, 2, 0, 128, S::max, 0}, Case{300, 1, 4, 64, 2, 0, 256, S::max, 0}}) {
        Inputs in = make_inputs(c, 3);
        msa::IndexInputs idx = make_index(c, in, 4);
        msa::Selection sel = msa::select_blocks(msa::score_blocks(idx, c.block, c.scorer, 0x5eed, threads()), c.k,
                                                c.sink, c.block);
        std::vector<float> out(in.q.size());
        EXPECT_THROW(msa::cuda::sparse_attention(in.qkv(), sel, c.block, out.data(), msa::SparseOrder::block_major),
                     msa::InputError)
            << c.name();
        // The automatic choice falls back to token-major instead.
        EXPECT_NO_THROW(msa::cuda::sparse_attention(in.qkv(), sel, c.block, out.data())) << c.name();
    }
}

// Decode selection at 9,375 and 2,500 blocks (the top-k ranks the scoring
// warps' bests, then the blocks of the best warps) on score patterns that
// break threshold shortcuts:
// random keys, every score tied (ties go to the lower block id), and the best
// blocks packed into one run (many from the same part). Compared with the
// exact top-k of the GPU's own scores, as sets. The oracle is a partial sort
// of the one row here: msa::select_blocks takes scores for every token
// (N x G x nb floats, 90 GB at this size).
TEST(BackendOpsDecode, SelectionIsExactTopKOfScores) {
    REQUIRE_GPU();
    // One shared key head and B = 64 (the bulk-copy scorer on sm_90a), and one
    // key head per group with B = 16 (the register-streaming scorer); both rank
    // the scoring warps' bests first.
    struct Shape {
        int n, block, key_heads;
    };
    for (const Shape shape : {Shape{600000, 64, 1}, Shape{40000, 16, 4}}) {
        const int N = shape.n, G = 4, dim = 64, block = shape.block, nb = (N + block - 1) / block, kh = shape.key_heads;
        std::mt19937_64 rng(91);
        msa::IndexInputs idx;
        idx.n_tokens = N;
        idx.n_groups = G;
        idx.n_key_heads = kh;
        idx.dim = dim;
        idx.scale = 0.125f;
        const std::vector<float> q = random_bf16(static_cast<size_t>(G) * dim, rng);
        const size_t n_keys = static_cast<size_t>(N) * kh * dim;
        for (const char* pattern : {"random", "tied", "one_run"}) {
            const std::string pat = pattern;
            if (pat == "random") idx.k = random_bf16(n_keys, rng);
            if (pat == "tied") idx.k.assign(n_keys, 0.f);
            const int run0 = std::min(3000, nb / 2);  // 40 blocks from run0 on aligned with group 0's query, rising
            if (pat == "one_run")
                for (int j = run0 * block; j < (run0 + 40) * block; ++j)
                    for (int h = 0; h < kh; ++h)
                        for (int x = 0; x < dim; ++x)
                            idx.k[(static_cast<size_t>(j) * kh + h) * dim + x] =
                                msa::cuda::round_bf16(q[x] * (1.f + (j / block) * 1e-3f));
            for (int sink : {0, 1}) {
                msa::MsaConfig cfg;
                cfg.k = 16;
                cfg.block = block;
                cfg.sink = sink;
                cfg.scorer = msa::Scorer::max;
                int slots = 0;
                std::vector<float> scores;
                const std::vector<int32_t> sel = msa::cuda::decode_select(q.data(), idx, cfg, &slots, &scores);
                const int local = (N - 1) / block, forced = msa::forced_block_count(local, sink);
                const std::string where = pat + " N " + std::to_string(N) + " sink " + std::to_string(sink);
                for (int g = 0; g < G; ++g) {
                    const float* s = scores.data() + static_cast<size_t>(g) * nb;
                    std::vector<int> order;
                    for (int b = (forced == 2 ? 1 : 0); b < local; ++b) order.push_back(b);
                    std::partial_sort(order.begin(), order.begin() + (cfg.k - forced), order.end(),
                                      [&](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
                    std::set<int> want(order.begin(), order.begin() + (cfg.k - forced));
                    want.insert(local);
                    if (forced == 2) want.insert(0);
                    std::set<int> got(sel.begin() + static_cast<long>(g) * slots,
                                      sel.begin() + static_cast<long>(g + 1) * slots);
                    got.erase(-1);
                    EXPECT_EQ(got, want) << where << " group " << g;
                }
                if (pat == "tied") {  // every eligible score is 0: the lowest ids win
                    std::set<int> got(sel.begin(), sel.begin() + slots);
                    EXPECT_TRUE(got.count(14) && !got.count(15)) << where;
                }
            }
        }
    }
}

// Decode attention on a selection the top-k would not write: more slots than a
// cluster has CTAs (each CTA takes several 128-key pieces), blocks of two
// pieces, the partial last block, an adjacent repeat (counted once) and -1
// padding; against the float64 reference of the same set.
TEST(BackendOpsDecode, AttentionOverManyPiecesAndPadding) {
    REQUIRE_GPU();
    const int block = 256, N = 40 * block + 77, nb = (N + block - 1) / block, slots = 40;
    Case c{N, 2, 16, 128, 0, 0, block, S::max, 0};
    Inputs in = make_inputs(c, 4242);
    const int Hq = c.groups * c.r;
    const float* q = in.q.data() + static_cast<size_t>(N - 1) * Hq * c.d;
    std::mt19937_64 rng(17);
    std::vector<int32_t> sel(static_cast<size_t>(c.groups) * slots, -1);
    for (int g = 0; g < c.groups; ++g) {
        std::vector<int32_t> row;
        for (int b = 0; b < nb; ++b)
            if (b == 0 || b == nb - 1 || rng() % 4 != 0) row.push_back(b);
        row.insert(row.begin() + 3, row[2]);  // an adjacent repeat
        if (row.size() > static_cast<size_t>(slots - 2)) row.erase(row.begin() + 5, row.end() - (slots - 7));
        std::copy(row.begin(), row.end(), sel.begin() + static_cast<long>(g) * slots);
    }
    std::vector<float> got(static_cast<size_t>(Hq) * c.d);
    msa::cuda::sparse_decode(q, in.qkv(), sel.data(), slots, block, got.data());
    const std::vector<float> want = decode_reference(q, in, block, sel.data(), slots);
    const double e = nmse(got.data(), want.data(), got.size());
    note("sparse_decode", e, "many_pieces");
    EXPECT_LT(e, 5e-4);
}

TEST(BackendOpsErrors, RejectsSelectionOutOfRange) {
    REQUIRE_GPU();
    Case c{200, 1, 2, 64, 2, 0, 128, S::max, 0};
    Inputs in = make_inputs(c, 2);
    msa::Selection sel;
    sel.n_tokens = 200;
    sel.n_groups = 1;
    sel.slots = 2;
    sel.blocks.assign(400, 0);
    sel.blocks[7] = 5;  // only blocks 0 and 1 exist
    std::vector<float> out(static_cast<size_t>(200) * 2 * 64);
    EXPECT_THROW(msa::cuda::sparse_attention(in.qkv(), sel, 128, out.data()), msa::InputError);
}

// The collector: CUPTI records (or the event fallback) carry names, sizes, times
// and the launcher's analytic cost.
void check_records(bool prefer_cupti) {
    Case c{1000, 2, 4, 128, 4, 0, 128, S::max, 0};
    Inputs in = make_inputs(c, 3);
    std::vector<float> out(in.q.size());
    msa::cuda::KernelCollector collector(prefer_cupti);
    collector.start();
    msa::cuda::dense_attention(in.qkv(), out.data());
    auto recs = collector.stop();
    std::printf("[collector] cupti=%d warning='%s' records=%zu dropped=%llu\n", collector.using_cupti() ? 1 : 0,
                collector.warning().c_str(), recs.size(), static_cast<unsigned long long>(collector.dropped_records()));
    ASSERT_FALSE(recs.empty());
    bool found = false;
    for (auto& r : recs) {
        EXPECT_GE(r.end_ns, r.start_ns);
        if (r.phase == "dense" && r.flops > 0) {
            found = true;
            const double expect = 4.0 * 8 * 128 * (1000.0 * 1001.0 / 2.0);
            EXPECT_NEAR(r.flops, expect, expect * 1e-9);
            EXPECT_GT(r.end_ns, r.start_ns);
            if (collector.using_cupti()) {
                EXPECT_NE(r.name.find("attn_fwd_kernel"), std::string::npos) << r.name;
                EXPECT_GT(r.registers, 0);
                EXPECT_GT(r.shared_bytes, 0);
                EXPECT_GT(r.grid[0] * r.grid[1] * r.grid[2], 0);
                EXPECT_EQ(r.block[0], 128);
            }
        }
    }
    EXPECT_TRUE(found) << "no record tagged 'dense' with FLOPs";
}

TEST(KernelCollector, CuptiOrFallbackRecordsTaggedKernels) {
    REQUIRE_GPU();
    check_records(true);
}

TEST(KernelCollector, EventFallbackRecordsTaggedLaunches) {
    REQUIRE_GPU();
    check_records(false);
}

// An op of several kernels under one tag (block-major: count, plan, fill,
// attend, merge): its analytic FLOPs land on the attend launches only and
// still add up to the op's count.
TEST(KernelCollector, MultiKernelOpCostGoesToItsArithmeticKernel) {
    REQUIRE_GPU();
    Case c{1000, 2, 16, 128, 4, 0, 128, msa::Scorer::max, 1};
    Inputs in = make_inputs(c, 11);
    msa::IndexInputs idx = make_index(c, in, 12);
    msa::Selection sel = msa::select_blocks(msa::score_blocks(idx, c.block, c.scorer, 0x5eed, threads()), c.k, c.sink,
                                            c.block);
    std::vector<float> out(in.q.size());
    msa::cuda::KernelCollector collector(true);
    collector.start();
    msa::cuda::sparse_attention(in.qkv(), sel, c.block, out.data(), msa::SparseOrder::block_major);
    auto recs = collector.stop();
    if (!collector.using_cupti()) GTEST_SKIP() << "CUPTI unavailable (one record per op): " << collector.warning();
    double sum = 0;
    int costed = 0, sparse = 0;
    for (const auto& r : recs) {
        if (r.phase != "sparse") continue;
        ++sparse;
        sum += r.flops;
        if (r.flops > 0) {
            ++costed;
            EXPECT_NE(r.name.find("block_major_attend"), std::string::npos) << r.name;  // wgmma or mma.sync
        }
    }
    EXPECT_GE(sparse, 5) << "count, plan, fill, attend, merge";
    EXPECT_GE(costed, 1);
    double keys = 0;  // the analytic count: min(k * B, visible keys) per query
    for (int t = 0; t < c.n; ++t) keys += std::min(c.k * c.block, t + 1);
    const double expect = 4.0 * c.groups * c.r * c.d * keys;
    EXPECT_NEAR(sum, expect, expect * 1e-9);
}

}  // namespace
