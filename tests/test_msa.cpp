// The CPU MSA engine against brute-force references written here, plus the
// properties the rest of msascope leans on (bit-identity at full budget, top-k
// rules, recall bounds). Every random case prints its seed on failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/errors.h"
#include "core/msa.h"

namespace {

using msa::AttentionShape;
using msa::QKV;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t fresh_seed() {
    static std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
}

struct Inputs {
    AttentionShape shape;
    std::vector<float> q, k, v;
    QKV view() const {
        QKV x;
        x.q = q.data();
        x.k = k.data();
        x.v = v.data();
        x.shape = shape;
        return x;
    }
};

Inputs random_inputs(int n, int hq, int hkv, int d, uint64_t seed, float q_sd = 1.0f) {
    Inputs in;
    in.shape = {n, hq, hkv, d};
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    in.q.resize(static_cast<size_t>(n) * hq * d);
    in.k.resize(static_cast<size_t>(n) * hkv * d);
    in.v.resize(static_cast<size_t>(n) * hkv * d);
    for (float& x : in.q) x = normal(rng) * q_sd;
    for (float& x : in.k) x = normal(rng);
    for (float& x : in.v) x = normal(rng);
    return in;
}

// Naive softmax attention in double over the keys `visible(t, g, j)` says yes to.
template <class Visible>
std::vector<double> reference_attention(const Inputs& in, Visible visible) {
    const AttentionShape& s = in.shape;
    const int r = s.group_size(), d = s.head_dim;
    std::vector<double> out(static_cast<size_t>(s.n_tokens) * s.n_heads * d, 0.0);
    std::vector<double> logits;
    std::vector<int> keys;
    for (int t = 0; t < s.n_tokens; ++t)
        for (int h = 0; h < s.n_heads; ++h) {
            const int g = h / r;
            const float* q = &in.q[(static_cast<size_t>(t) * s.n_heads + h) * d];
            keys.clear();
            logits.clear();
            for (int j = 0; j <= t; ++j) {
                if (!visible(t, g, j)) continue;
                const float* k = &in.k[(static_cast<size_t>(j) * s.n_kv_heads + g) * d];
                double dot = 0;
                for (int c = 0; c < d; ++c) dot += static_cast<double>(q[c]) * k[c];
                keys.push_back(j);
                logits.push_back(dot / std::sqrt(static_cast<double>(d)));
            }
            if (keys.empty()) continue;
            double mx = *std::max_element(logits.begin(), logits.end()), sum = 0;
            for (double& x : logits) sum += (x = std::exp(x - mx));
            double* o = &out[(static_cast<size_t>(t) * s.n_heads + h) * d];
            for (size_t i = 0; i < keys.size(); ++i) {
                const float* v = &in.v[(static_cast<size_t>(keys[i]) * s.n_kv_heads + g) * d];
                for (int c = 0; c < d; ++c) o[c] += logits[i] / sum * v[c];
            }
        }
    return out;
}

double nmse(const std::vector<float>& got, const std::vector<double>& want) {
    double err = 0, ref = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        err += (got[i] - want[i]) * (got[i] - want[i]);
        ref += want[i] * want[i];
    }
    return ref > 0 ? err / ref : err;
}

bool selected(const msa::Selection& sel, int t, int g, int b) {
    const int32_t* row = sel.row(t, g);
    return std::find(row, row + sel.slots, b) != row + sel.slots;
}

msa::Selection full_selection(int n, int groups, int block) {
    msa::Selection sel;
    sel.n_tokens = n;
    sel.n_groups = groups;
    sel.slots = std::max(1, (n + block - 1) / block);
    sel.blocks.assign(static_cast<size_t>(n) * groups * sel.slots, -1);
    for (int t = 0; t < n; ++t)
        for (int g = 0; g < groups; ++g)
            for (int b = 0; b <= t / block; ++b) sel.row(t, g)[b] = b;
    return sel;
}

struct Case {
    int n, hq, hkv, d, block, sink;
};

std::vector<Case> mixed_cases() {
    // N below, at and off multiples of B; group sizes 1, 3, 4, 16; d 64 and 128 (and odd ones).
    return {{1, 1, 1, 64, 16, 0},     {5, 3, 1, 64, 128, 1},    {50, 4, 1, 128, 64, 0},  {100, 2, 2, 64, 16, 1},
            {130, 9, 3, 64, 128, 0},  {130, 9, 3, 64, 128, 1},  {200, 16, 1, 64, 64, 1}, {257, 8, 2, 128, 16, 0},
            {300, 4, 4, 64, 128, 1},  {333, 3, 3, 128, 64, 0},  {129, 16, 1, 128, 128, 0}, {400, 6, 2, 64, 16, 1},
            // head dims off the 16-channel kernels: 8-wide and scalar tails
            {150, 4, 2, 40, 64, 1},   {77, 3, 1, 20, 16, 0}};
}

// ---------------------------------------------------------------------------

TEST(Msa, FullBudgetSparseIsBitIdenticalToDense) {
    for (const Case& c : mixed_cases()) {
        const uint64_t seed = fresh_seed();
        SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(c.n) + " hq " + std::to_string(c.hq) +
                     " hkv " + std::to_string(c.hkv) + " d " + std::to_string(c.d) + " B " + std::to_string(c.block) +
                     " sink " + std::to_string(c.sink));
        Inputs in = random_inputs(c.n, c.hq, c.hkv, c.d, seed, 2.0f);
        const size_t size = in.q.size();
        std::vector<float> dense(size), sparse(size, 1.0f), sparse1(size, 2.0f);
        msa::dense_attention(in.view(), dense.data(), 2);

        msa::MsaConfig config;
        config.block = c.block;
        config.sink = c.sink;
        config.k = in.shape.n_blocks(c.block);  // every visible block
        msa::IndexInputs index = msa::free_index_inputs(in.view());
        msa::MsaLayerOutput result = msa::msa_attention(in.view(), index, config, sparse.data(), 2);
        for (int t = 0; t < c.n; ++t) ASSERT_EQ(result.selection.count(t, 0), t / c.block + 1);
        EXPECT_EQ(0, std::memcmp(dense.data(), sparse.data(), size * sizeof(float)));

        // A hand-made full selection (different slot width, one thread) too.
        msa::sparse_attention(in.view(), full_selection(c.n, c.hkv, c.block), c.block, sparse1.data(), 1);
        EXPECT_EQ(0, std::memcmp(dense.data(), sparse1.data(), size * sizeof(float)));
        EXPECT_EQ(0.0, msa::relative_error(sparse.data(), dense.data(), size));
    }
}

TEST(Msa, DenseIndependentOfThreadCount) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    Inputs in = random_inputs(700, 9, 3, 64, seed);
    std::vector<float> a(in.q.size()), b(in.q.size());
    msa::dense_attention(in.view(), a.data(), 1);
    msa::dense_attention(in.view(), b.data(), 3);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST(Msa, DenseMatchesDoubleReference) {
    for (const Case& c : mixed_cases()) {
        const uint64_t seed = fresh_seed();
        SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(c.n) + " hq " + std::to_string(c.hq));
        Inputs in = random_inputs(c.n, c.hq, c.hkv, c.d, seed, 2.0f);
        std::vector<float> out(in.q.size());
        msa::dense_attention(in.view(), out.data(), 2);
        std::vector<double> want = reference_attention(in, [](int, int, int) { return true; });
        EXPECT_LT(nmse(out, want), 1e-10);
    }
}

TEST(Msa, SparseMatchesDoubleReferenceOverSelectedKeys) {
    for (const Case& c : mixed_cases()) {
        for (int k : {1, 2, 3, 5}) {
            const uint64_t seed = fresh_seed();
            SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(c.n) + " B " +
                         std::to_string(c.block) + " k " + std::to_string(k) + " sink " + std::to_string(c.sink));
            Inputs in = random_inputs(c.n, c.hq, c.hkv, c.d, seed, 2.0f);
            msa::MsaConfig config;
            config.block = c.block;
            config.sink = c.sink;
            config.k = k;
            std::vector<float> out(in.q.size());
            msa::MsaLayerOutput result =
                msa::msa_attention(in.view(), msa::free_index_inputs(in.view()), config, out.data(), 2);
            std::vector<double> want = reference_attention(
                in, [&](int t, int g, int j) { return selected(result.selection, t, g, j / c.block); });
            EXPECT_LT(nmse(out, want), 1e-10);
        }
    }
}

TEST(Msa, SparseHandlesUnsortedRepeatedInvisibleAndEmptySelections) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    const int n = 90, block = 16;
    Inputs in = random_inputs(n, 4, 2, 64, seed);
    std::mt19937_64 rng(seed);
    msa::Selection sel;
    sel.n_tokens = n;
    sel.n_groups = 2;
    sel.slots = 4;
    sel.blocks.resize(static_cast<size_t>(n) * 2 * 4);
    std::uniform_int_distribution<int> pick(-1, in.shape.n_blocks(block) - 1);
    for (int32_t& b : sel.blocks) b = pick(rng);
    for (int i = 0; i < 4; ++i) sel.row(40, 1)[i] = -1;  // no key at all
    std::vector<float> out(in.q.size(), 7.0f);
    msa::sparse_attention(in.view(), sel, block, out.data(), 2);
    std::vector<double> want = reference_attention(in, [&](int t, int g, int j) { return selected(sel, t, g, j / block); });
    EXPECT_LT(nmse(out, want), 1e-10);
    for (int h = 2; h < 4; ++h)
        for (int c = 0; c < 64; ++c) EXPECT_EQ(out[(40 * 4 + h) * 64 + c], 0.0f);

    sel.blocks[5] = in.shape.n_blocks(block);
    EXPECT_THROW(msa::sparse_attention(in.view(), sel, block, out.data(), 1), msa::InputError);
}

TEST(Msa, ExtremeLogitsStayFinite) {
    // Logits in the thousands: a naive exp overflows, the online softmax must not.
    Inputs in = random_inputs(300, 2, 1, 64, 7, 300.0f);
    std::vector<float> out(in.q.size());
    msa::dense_attention(in.view(), out.data(), 2);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    std::vector<double> want = reference_attention(in, [](int, int, int) { return true; });
    EXPECT_LT(nmse(out, want), 1e-8);
}

// ---------------------------------------------------------------------------
// Index branch.

msa::IndexInputs random_index(int n, int groups, int key_heads, int dim, uint64_t seed) {
    msa::IndexInputs index;
    index.n_tokens = n;
    index.n_groups = groups;
    index.n_key_heads = key_heads;
    index.dim = dim;
    index.scale = 1.0f / std::sqrt(static_cast<float>(dim));
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    index.q.resize(static_cast<size_t>(n) * groups * dim);
    index.k.resize(static_cast<size_t>(n) * key_heads * dim);
    for (float& x : index.q) x = normal(rng);
    for (float& x : index.k) x = normal(rng);
    return index;
}

double reference_block_score(const msa::IndexInputs& x, msa::Scorer scorer, int block, int t, int g, int b) {
    const int kh = x.n_key_heads == 1 ? 0 : g;
    const float* q = &x.q[(static_cast<size_t>(t) * x.n_groups + g) * x.dim];
    const int j0 = b * block, j1 = std::min(t + 1, (b + 1) * block);
    auto key = [&](int j) { return &x.k[(static_cast<size_t>(j) * x.n_key_heads + kh) * x.dim]; };
    if (scorer == msa::Scorer::quest) {
        double sum = 0;
        for (int c = 0; c < x.dim; ++c) {
            double lo = INFINITY, hi = -INFINITY;
            for (int j = j0; j < j1; ++j) lo = std::min(lo, double(key(j)[c])), hi = std::max(hi, double(key(j)[c]));
            sum += std::max(q[c] * lo, q[c] * hi);
        }
        return sum * x.scale;
    }
    double best = -INFINITY, total = 0;
    for (int j = j0; j < j1; ++j) {
        double dot = 0;
        for (int c = 0; c < x.dim; ++c) dot += static_cast<double>(q[c]) * key(j)[c];
        best = std::max(best, dot * x.scale);
        total += dot * x.scale;
    }
    return scorer == msa::Scorer::max ? best : total / (j1 - j0);
}

TEST(Msa, PoolingMatchesBruteForceTokenScores) {
    struct IndexCase {
        int n, groups, key_heads, dim, block;
    };
    for (IndexCase c : {IndexCase{1, 1, 1, 64, 16}, IndexCase{100, 3, 3, 64, 16}, IndexCase{300, 2, 2, 128, 128},
                        IndexCase{261, 4, 1, 128, 64}, IndexCase{140, 3, 1, 32, 200}, IndexCase{500, 1, 1, 64, 100}}) {
        for (msa::Scorer scorer : {msa::Scorer::max, msa::Scorer::mean, msa::Scorer::quest}) {
            const uint64_t seed = fresh_seed();
            SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(c.n) + " B " + std::to_string(c.block) +
                         " scorer " + msa::to_string(scorer) + " key heads " + std::to_string(c.key_heads));
            msa::IndexInputs index = random_index(c.n, c.groups, c.key_heads, c.dim, seed);
            msa::BlockScores s = msa::score_blocks(index, c.block, scorer, 0, 2);
            ASSERT_EQ(s.n_blocks, (c.n + c.block - 1) / c.block);
            for (int t = 0; t < c.n; ++t)
                for (int g = 0; g < c.groups; ++g)
                    for (int b = 0; b < s.n_blocks; ++b) {
                        if (b > t / c.block) {
                            ASSERT_EQ(s.at(t, g, b), kNegInf);
                            continue;
                        }
                        double want = reference_block_score(index, scorer, c.block, t, g, b);
                        ASSERT_NEAR(s.at(t, g, b), want, 1e-4 * (1 + std::fabs(want))) << "t " << t << " g " << g << " b " << b;
                    }
        }
    }
}

TEST(Msa, LocalBlockIsScoredOnVisibleKeysOnly) {
    // A huge key right after the query must not leak into its local block's score.
    msa::IndexInputs index = random_index(64, 1, 1, 16, 3);
    for (int c = 0; c < 16; ++c) {
        index.q[40 * 16 + c] = index.q[39 * 16 + c];
        index.k[40 * 16 + c] = 10000.0f * (index.q[39 * 16 + c] > 0 ? 1 : -1);
    }
    for (msa::Scorer scorer : {msa::Scorer::max, msa::Scorer::mean, msa::Scorer::quest}) {
        msa::BlockScores s = msa::score_blocks(index, 64, scorer, 0, 1);
        double want = reference_block_score(index, scorer, 64, 39, 0, 0);
        EXPECT_NEAR(s.at(39, 0, 0), want, 1e-4 * (1 + std::fabs(want))) << msa::to_string(scorer);
        EXPECT_LT(s.at(39, 0, 0), 500.0f) << msa::to_string(scorer);
        EXPECT_GT(s.at(40, 0, 0), 500.0f) << msa::to_string(scorer);
    }
}

TEST(Msa, FreeIndexIsGroupMeanQueryAndKeys) {
    Inputs in = random_inputs(10, 6, 2, 8, 11);
    msa::IndexInputs index = msa::free_index_inputs(in.view());
    EXPECT_EQ(index.n_groups, 2);
    EXPECT_EQ(index.n_key_heads, 2);
    EXPECT_FLOAT_EQ(index.scale, 1.0f / std::sqrt(8.0f));
    EXPECT_EQ(index.k, in.k);
    for (int t = 0; t < 10; ++t)
        for (int g = 0; g < 2; ++g)
            for (int c = 0; c < 8; ++c) {
                double mean = 0;
                for (int h = g * 3; h < g * 3 + 3; ++h) mean += in.q[(t * 6 + h) * 8 + c] / 3.0;
                EXPECT_NEAR(index.q[(t * 2 + g) * 8 + c], mean, 1e-6);
            }
}

TEST(Msa, RandomScorerIsDeterministicInUnitIntervalAndIgnoresInputs) {
    msa::IndexInputs a = random_index(300, 2, 2, 16, 1), b = random_index(300, 2, 2, 16, 2);
    msa::BlockScores s1 = msa::score_blocks(a, 16, msa::Scorer::random, 42, 1);
    msa::BlockScores s2 = msa::score_blocks(b, 16, msa::Scorer::random, 42, 2);
    msa::BlockScores s3 = msa::score_blocks(a, 16, msa::Scorer::random, 43, 1);
    EXPECT_EQ(s1.values, s2.values);
    EXPECT_NE(s1.values, s3.values);
    std::set<float> distinct;
    for (int t = 0; t < 300; ++t)
        for (int g = 0; g < 2; ++g)
            for (int blk = 0; blk < s1.n_blocks; ++blk) {
                float v = s1.at(t, g, blk);
                if (blk > t / 16) {
                    EXPECT_EQ(v, kNegInf);
                } else {
                    EXPECT_GE(v, 0.0f);
                    EXPECT_LT(v, 1.0f);
                    distinct.insert(v);
                }
            }
    EXPECT_GT(distinct.size(), 2000u);  // a hash, not a constant
}

// ---------------------------------------------------------------------------
// Top-k.

std::vector<int> reference_topk(const float* s, int t, int k, int sink, int block) {
    const int local = t / block, visible = local + 1;
    std::vector<int> all(visible);
    std::iota(all.begin(), all.end(), 0);
    if (visible <= k) return all;
    std::vector<int> keep = {local};
    if (sink && local > 0) keep.push_back(0);
    std::vector<int> rest;
    for (int b = 0; b < visible; ++b)
        if (std::find(keep.begin(), keep.end(), b) == keep.end()) rest.push_back(b);
    auto key = [&](int b) { return std::isnan(s[b]) ? -INFINITY : s[b]; };
    std::stable_sort(rest.begin(), rest.end(), [&](int a, int b) { return key(a) > key(b); });
    const int free_slots = std::max(0, k - static_cast<int>(keep.size()));
    for (int i = 0; i < free_slots && i < static_cast<int>(rest.size()); ++i) keep.push_back(rest[i]);
    std::sort(keep.begin(), keep.end());
    return keep;
}

msa::BlockScores random_scores(int n, int groups, int block, uint64_t seed, int levels) {
    msa::BlockScores s;
    s.n_tokens = n;
    s.n_groups = groups;
    s.n_blocks = (n + block - 1) / block;
    s.values.assign(static_cast<size_t>(n) * groups * s.n_blocks, kNegInf);
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> level(0, levels - 1);
    std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
    for (int t = 0; t < n; ++t)
        for (int g = 0; g < groups; ++g)
            for (int b = 0; b <= t / block; ++b) {
                // Few levels make ties everywhere; a few NaNs and -infs must not break order.
                float v = levels > 0 ? static_cast<float>(level(rng)) : uniform(rng);
                if (rng() % 53 == 0) v = std::numeric_limits<float>::quiet_NaN();
                if (rng() % 61 == 0) v = kNegInf;
                s.values[(static_cast<size_t>(t) * groups + g) * s.n_blocks + b] = v;
            }
    return s;
}

TEST(Msa, TopKFollowsTheRules) {
    for (int block : {1, 4, 16}) {
        for (int k : {1, 2, 3, 4, 8, 16}) {
            for (int sink : {0, 1}) {
                for (int levels : {0, 3}) {
                    const uint64_t seed = fresh_seed();
                    SCOPED_TRACE("seed " + std::to_string(seed) + " B " + std::to_string(block) + " k " +
                                 std::to_string(k) + " sink " + std::to_string(sink) + " levels " +
                                 std::to_string(levels));
                    const int n = 40 * block + block / 2;
                    msa::BlockScores scores = random_scores(n, 2, block, seed, levels);
                    msa::Selection sel = msa::select_blocks(scores, k, sink, block);
                    ASSERT_EQ(sel.slots, std::max(k, sink ? 2 : 1));
                    for (int t = 0; t < n; ++t)
                        for (int g = 0; g < 2; ++g) {
                            const int local = t / block, visible = local + 1;
                            const int forced = msa::forced_block_count(local, sink);
                            const int32_t* row = sel.row(t, g);
                            std::vector<int> got;
                            for (int i = 0; i < sel.slots; ++i) {
                                if (row[i] < 0) {
                                    for (int j = i; j < sel.slots; ++j) ASSERT_EQ(row[j], -1);
                                    break;
                                }
                                got.push_back(row[i]);
                            }
                            ASSERT_TRUE(std::is_sorted(got.begin(), got.end()));
                            ASSERT_TRUE(std::adjacent_find(got.begin(), got.end()) == got.end());
                            ASSERT_EQ(static_cast<int>(got.size()), std::min(std::max(k, forced), visible));
                            ASSERT_EQ(sel.count(t, g), static_cast<int>(got.size()));
                            ASSERT_TRUE(std::binary_search(got.begin(), got.end(), local));
                            if (sink) {
                                ASSERT_EQ(got.front(), 0);
                            }
                            for (int b : got) ASSERT_LE(b, local);
                            ASSERT_EQ(got, reference_topk(scores.row(t, g), t, k, sink, block)) << "t " << t;
                        }
                }
            }
        }
    }
}

TEST(Msa, TopKTiesGoToTheLowerBlock) {
    msa::BlockScores s;
    s.n_tokens = 1;
    s.n_groups = 1;
    s.n_blocks = 8;
    s.values = {1, 5, 5, 2, 5, 5, 0, 9};  // query 7 (block 1): local = 7
    // 7 is the query position with block = 1, so all 8 blocks are visible.
    msa::BlockScores one = s;
    one.n_tokens = 8;
    one.values.assign(8 * 8, kNegInf);
    std::copy(s.values.begin(), s.values.end(), one.values.begin() + 7 * 8);
    msa::Selection sel = msa::select_blocks(one, 3, 0, 1);
    EXPECT_EQ(std::vector<int32_t>(sel.row(7, 0), sel.row(7, 0) + 3), (std::vector<int32_t>{1, 2, 7}));
    sel = msa::select_blocks(one, 4, 1, 1);
    EXPECT_EQ(std::vector<int32_t>(sel.row(7, 0), sel.row(7, 0) + 4), (std::vector<int32_t>{0, 1, 2, 7}));
    sel = msa::select_blocks(one, 5, 0, 1);
    EXPECT_EQ(std::vector<int32_t>(sel.row(7, 0), sel.row(7, 0) + 5), (std::vector<int32_t>{1, 2, 4, 5, 7}));
}

TEST(Msa, TopKBudgetAtOrBelowForcedKeepsOnlyForced) {
    msa::BlockScores scores = random_scores(200, 1, 10, 5, 0);
    msa::Selection sel = msa::select_blocks(scores, 1, 1, 10);
    EXPECT_EQ(sel.slots, 2);
    EXPECT_FALSE(msa::budget_has_free_slot({1, 10, msa::Scorer::max, 1}));
    for (int t = 0; t < 200; ++t) {
        const int local = t / 10;
        if (local == 0) {
            EXPECT_EQ(sel.row(t, 0)[0], 0);
            EXPECT_EQ(sel.row(t, 0)[1], -1);
        } else {
            EXPECT_EQ(sel.row(t, 0)[0], 0);
            EXPECT_EQ(sel.row(t, 0)[1], local);
        }
    }
    sel = msa::select_blocks(scores, 2, 1, 10);
    for (int t = 10; t < 200; ++t) EXPECT_EQ(sel.count(t, 0), 2);
    sel = msa::select_blocks(scores, 1, 0, 10);
    EXPECT_EQ(sel.slots, 1);
    for (int t = 0; t < 200; ++t) EXPECT_EQ(sel.row(t, 0)[0], t / 10);
}

// ---------------------------------------------------------------------------
// Mass and recall.

TEST(Msa, BlockMassMatchesReferenceAndSumsToOne) {
    for (const Case& c : mixed_cases()) {
        const uint64_t seed = fresh_seed();
        SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(c.n) + " B " + std::to_string(c.block));
        Inputs in = random_inputs(c.n, c.hq, c.hkv, c.d, seed, 2.0f);
        msa::BlockMass mass = msa::dense_block_mass(in.view(), c.block, 2);
        ASSERT_EQ(mass.n_blocks, in.shape.n_blocks(c.block));
        const int d = c.d, r = in.shape.group_size();
        for (int t = 0; t < c.n; t += 1 + c.n / 37)
            for (int h = 0; h < c.hq; ++h) {
                std::vector<double> logits(t + 1);
                const float* q = &in.q[(static_cast<size_t>(t) * c.hq + h) * d];
                for (int j = 0; j <= t; ++j) {
                    double dot = 0;
                    for (int x = 0; x < d; ++x) dot += double(q[x]) * in.k[(static_cast<size_t>(j) * c.hkv + h / r) * d + x];
                    logits[j] = dot / std::sqrt(double(d));
                }
                double mx = *std::max_element(logits.begin(), logits.end()), total = 0;
                for (double& x : logits) total += (x = std::exp(x - mx));
                std::vector<double> want(mass.n_blocks, 0.0);
                for (int j = 0; j <= t; ++j) want[j / c.block] += logits[j] / total;
                double sum = 0;
                for (int b = 0; b < mass.n_blocks; ++b) {
                    ASSERT_NEAR(mass.row(t, h)[b], want[b], 2e-6) << "t " << t << " h " << h << " b " << b;
                    sum += mass.row(t, h)[b];
                }
                ASSERT_NEAR(sum, 1.0, 1e-5);
            }
    }
}

TEST(Msa, FullBudgetRecallIsOneAndPartialRecallInUnitInterval) {
    for (const Case& c : mixed_cases()) {
        const uint64_t seed = fresh_seed();
        SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(c.n) + " B " + std::to_string(c.block));
        Inputs in = random_inputs(c.n, c.hq, c.hkv, c.d, seed, 2.0f);
        msa::BlockMass mass = msa::dense_block_mass(in.view(), c.block, 2);
        msa::BlockScores scores = msa::score_blocks(msa::free_index_inputs(in.view()), c.block, msa::Scorer::max, 0, 2);
        msa::Selection all = msa::select_blocks(scores, in.shape.n_blocks(c.block), c.sink, c.block);
        for (float x : msa::attention_recall(mass, all, in.shape.group_size())) ASSERT_NEAR(x, 1.0f, 1e-5);
        msa::Selection some = msa::select_blocks(scores, 2, c.sink, c.block);
        std::vector<float> recall = msa::attention_recall(mass, some, in.shape.group_size());
        ASSERT_EQ(recall.size(), static_cast<size_t>(c.n) * c.hq);
        for (int t = 0; t < c.n; ++t)
            for (int h = 0; h < c.hq; ++h) {
                float x = recall[static_cast<size_t>(t) * c.hq + h];
                ASSERT_GE(x, 0.0f);
                ASSERT_LE(x, 1.0f + 1e-5f);
                double want = 0;
                for (int b = 0; b < mass.n_blocks; ++b)
                    if (selected(some, t, h / in.shape.group_size(), b)) want += mass.row(t, h)[b];
                ASSERT_NEAR(x, want, 1e-6);
            }
    }
}

// Queries built from a few earlier keys: attention concentrates on them, and a
// max-pooling index finds their blocks. White noise has nothing to find.
double mean_recall(const Inputs& in, int k, int block) {
    msa::BlockMass mass = msa::dense_block_mass(in.view(), block, 2);
    msa::BlockScores scores = msa::score_blocks(msa::free_index_inputs(in.view()), block, msa::Scorer::max, 0, 2);
    msa::Selection sel = msa::select_blocks(scores, k, 0, block);
    std::vector<float> recall = msa::attention_recall(mass, sel, in.shape.group_size());
    // Late queries only: early ones see <= k blocks and score 1 trivially.
    const size_t from = static_cast<size_t>(in.shape.n_tokens) * 3 / 4 * in.shape.n_heads;
    return std::accumulate(recall.begin() + from, recall.end(), 0.0) / (recall.size() - from);
}

TEST(Msa, ConcentratedAttentionHasHighRecallWhiteNoiseDoesNot) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    const int n = 2048, d = 64, block = 32, k = 16;  // 64 blocks, 16 kept
    Inputs noise = random_inputs(n, 2, 1, d, seed);
    Inputs peaked = noise;
    std::mt19937_64 rng(seed ^ 0xabcdef);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int t = 0; t < n; ++t)
        for (int h = 0; h < 2; ++h) {
            float* q = &peaked.q[(static_cast<size_t>(t) * 2 + h) * d];
            for (int c = 0; c < d; ++c) q[c] = 0.3f * normal(rng);
            for (int hit = 0; hit < 3; ++hit) {
                const int j = std::uniform_int_distribution<int>(0, t)(rng);
                for (int c = 0; c < d; ++c) q[c] += 2.0f * peaked.k[static_cast<size_t>(j) * d + c];
            }
        }
    const double concentrated = mean_recall(peaked, k, block), white = mean_recall(noise, k, block);
    std::printf("mean recall at k=%d of %d blocks: concentrated %.3f, white noise %.3f\n", k, n / block,
                concentrated, white);
    EXPECT_GT(concentrated, 0.85);
    EXPECT_LT(white, 0.5);
    EXPECT_GT(concentrated - white, 0.35);
}

// ---------------------------------------------------------------------------
// Small helpers and errors.

TEST(Msa, RelativeErrorAndQuantile) {
    std::vector<float> a = {1, 2, 3}, b = {1, 2, 4}, z = {0, 0, 0};
    EXPECT_DOUBLE_EQ(msa::relative_error(a.data(), a.data(), 3), 0.0);
    EXPECT_NEAR(msa::relative_error(a.data(), b.data(), 3), 1.0 / std::sqrt(21.0), 1e-12);
    EXPECT_DOUBLE_EQ(msa::relative_error(z.data(), z.data(), 3), 0.0);
    EXPECT_TRUE(std::isinf(msa::relative_error(a.data(), z.data(), 3)));

    EXPECT_TRUE(std::isnan(msa::quantile({}, 0.5)));
    EXPECT_DOUBLE_EQ(msa::quantile({4, 1, 3, 2}, 0.0), 1.0);
    EXPECT_DOUBLE_EQ(msa::quantile({4, 1, 3, 2}, 1.0), 4.0);
    EXPECT_DOUBLE_EQ(msa::quantile({4, 1, 3, 2}, 0.5), 2.5);
    EXPECT_NEAR(msa::quantile({0, 10}, 0.05), 0.5, 1e-12);
    EXPECT_DOUBLE_EQ(msa::quantile({7}, 0.3), 7.0);
}

TEST(Msa, NamesRoundTripAndBadInputThrows) {
    for (msa::Scorer s : {msa::Scorer::max, msa::Scorer::mean, msa::Scorer::quest, msa::Scorer::random})
        EXPECT_EQ(msa::parse_scorer(msa::to_string(s)), s);
    for (msa::IndexKind k : {msa::IndexKind::free, msa::IndexKind::trained})
        EXPECT_EQ(msa::parse_index_kind(msa::to_string(k)), k);
    EXPECT_THROW(msa::parse_scorer("Max"), msa::InputError);
    EXPECT_THROW(msa::parse_index_kind(""), msa::InputError);

    Inputs in = random_inputs(64, 4, 2, 16, 1);
    std::vector<float> out(in.q.size());
    msa::IndexInputs index = msa::free_index_inputs(in.view());
    msa::MsaConfig bad_k;
    bad_k.k = 0;
    EXPECT_THROW(msa::msa_attention(in.view(), index, bad_k, out.data()), msa::InputError);
    msa::MsaConfig bad_block;
    bad_block.block = 0;
    EXPECT_THROW(msa::msa_attention(in.view(), index, bad_block, out.data()), msa::InputError);
    EXPECT_THROW(msa::score_blocks(index, 0, msa::Scorer::max, 0), msa::InputError);
    msa::BlockScores scores = msa::score_blocks(index, 16, msa::Scorer::max, 0);
    EXPECT_THROW(msa::select_blocks(scores, 0, 0, 16), msa::InputError);
    EXPECT_THROW(msa::select_blocks(scores, 4, 0, 8), msa::InputError);  // scores made for B = 16
    EXPECT_THROW(msa::dense_block_mass(in.view(), 0), msa::InputError);

    Inputs uneven = in;
    uneven.shape.n_kv_heads = 3;  // 4 heads do not split into 3 groups
    EXPECT_THROW(msa::dense_attention(uneven.view(), out.data()), msa::InputError);
    msa::IndexInputs short_index = index;
    short_index.q.pop_back();
    EXPECT_THROW(msa::score_blocks(short_index, 16, msa::Scorer::max, 0), msa::InputError);
    msa::Selection wrong = msa::select_blocks(scores, 4, 0, 16);
    wrong.n_groups = 1;
    EXPECT_THROW(msa::sparse_attention(in.view(), wrong, 16, out.data()), msa::InputError);
}

}  // namespace
