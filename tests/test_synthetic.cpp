// Synthetic attention inputs: concentrated attention keeps most of its mass
// at a small block budget, white noise does not (the selector only beats a
// uniform pick by a little), recall grows with k, and the full budget is
// exactly dense.
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.h"
#include "core/msa.h"
#include "core/synthetic.h"

namespace {

using namespace msa;

// 2048 tokens in 64 blocks of 32: k = 16 and 32 are a quarter and a half of the keys.
SyntheticOptions options_for(SyntheticKind kind, uint64_t seed = 1) {
    SyntheticOptions o;
    o.kind = kind;
    o.shape = AttentionShape{2048, 4, 2, 64};
    o.seed = seed;
    return o;
}

MsaConfig config_for(int k, int sink = 0) {
    MsaConfig c;
    c.k = k;
    c.block = 32;
    c.sink = sink;
    return c;
}

TEST(Synthetic, DeterministicFromTheSeed) {
    for (SyntheticKind kind : {SyntheticKind::concentrated, SyntheticKind::noise}) {
        SyntheticAttention a = make_synthetic_attention(options_for(kind, 9));
        SyntheticAttention b = make_synthetic_attention(options_for(kind, 9));
        SyntheticAttention c = make_synthetic_attention(options_for(kind, 10));
        EXPECT_EQ(a.q, b.q);
        EXPECT_EQ(a.k, b.k);
        EXPECT_EQ(a.v, b.v);
        EXPECT_NE(a.q, c.q);
        EXPECT_EQ(a.q.size(), 2048u * 4 * 64);
        EXPECT_EQ(a.k.size(), 2048u * 2 * 64);
        for (float x : a.q) ASSERT_TRUE(std::isfinite(x));
        for (float x : a.k) ASSERT_TRUE(std::isfinite(x));
    }
}

TEST(Synthetic, ConcentrationIsWhatMakesTopKWork) {
    SyntheticAttention concentrated = make_synthetic_attention(options_for(SyntheticKind::concentrated));
    SyntheticAttention noise = make_synthetic_attention(options_for(SyntheticKind::noise));
    SyntheticMeasure c16 = measure_synthetic(concentrated, config_for(16), 2);
    SyntheticMeasure c32 = measure_synthetic(concentrated, config_for(32), 2);
    SyntheticMeasure n16 = measure_synthetic(noise, config_for(16), 2);
    SyntheticMeasure n32 = measure_synthetic(noise, config_for(32), 2);
    ::testing::Test::RecordProperty("concentrated_k16", std::to_string(c16.recall_mean));
    ::testing::Test::RecordProperty("concentrated_k32", std::to_string(c32.recall_mean));
    ::testing::Test::RecordProperty("noise_k16", std::to_string(n16.recall_mean));
    ::testing::Test::RecordProperty("noise_k32", std::to_string(n32.recall_mean));

    // Concentrated: most of the mass at k = 16, nearly all at k = 32.
    EXPECT_GT(c16.recall_mean, 0.9);
    EXPECT_GT(c32.recall_mean, 0.97);
    // White noise: far lower at the same budget...
    EXPECT_GT(c16.recall_mean, n16.recall_mean + 0.25);
    EXPECT_GT(c32.recall_mean, n32.recall_mean + 0.08);
    // ...and close to a uniform pick, which the selector still beats.
    EXPECT_GT(n16.recall_mean, n16.uniform_recall);
    EXPECT_LT(n16.recall_mean, n16.uniform_recall + 0.1);
    EXPECT_GT(c16.recall_mean, c16.uniform_recall + 0.3);
    // Both grow with k, and so does the error shrink.
    EXPECT_GT(c32.recall_mean, c16.recall_mean);
    EXPECT_GT(n32.recall_mean, n16.recall_mean);
    EXPECT_LT(c32.output_rel_error, c16.output_rel_error);
    EXPECT_LT(n32.output_rel_error, n16.output_rel_error);
    // The error follows the recall: concentrated inputs lose far less output.
    EXPECT_LT(c16.output_rel_error, n16.output_rel_error / 2);
}

TEST(Synthetic, RecallNeverFallsAsTheBudgetGrows) {
    for (SyntheticKind kind : {SyntheticKind::concentrated, SyntheticKind::noise}) {
        SyntheticAttention input = make_synthetic_attention(options_for(kind, 4));
        double previous = 0;
        for (int k : {1, 2, 4, 8, 16, 32, 48}) {
            SyntheticMeasure m = measure_synthetic(input, config_for(k), 2);
            EXPECT_GE(m.recall_mean, previous - 1e-9) << to_string(kind) << " k " << k;
            EXPECT_GE(m.recall_mean, 0.0);
            EXPECT_LE(m.recall_mean, 1.0 + 1e-6);
            EXPECT_LE(m.recall_p5, m.recall_mean + 1e-9);
            previous = m.recall_mean;
        }
    }
}

TEST(Synthetic, FullBudgetIsExactlyDense) {
    for (SyntheticKind kind : {SyntheticKind::concentrated, SyntheticKind::noise}) {
        SyntheticAttention input = make_synthetic_attention(options_for(kind, 2));
        for (int sink : {0, 1}) {
            SyntheticMeasure m = measure_synthetic(input, config_for(64, sink), 2);  // 64 blocks: all of them
            EXPECT_NEAR(m.recall_mean, 1.0, 1e-5) << to_string(kind);
            EXPECT_NEAR(m.recall_p5, 1.0, 1e-5);
            EXPECT_EQ(m.output_rel_error, 0.0) << to_string(kind) << ": the full budget must reproduce dense bit for bit";
            EXPECT_NEAR(m.uniform_recall, 1.0, 1e-5);
        }
    }
}

TEST(Synthetic, KnobsMoveConcentrationTheWayTheySay) {
    SyntheticOptions sharp = options_for(SyntheticKind::concentrated, 3);
    SyntheticOptions diffuse = sharp;
    diffuse.background_std = 3.0;  // a heavier tail of weak keys
    diffuse.strength = 4.0;        // weaker targets
    const MsaConfig c = config_for(8);
    const double sharp_recall = measure_synthetic(make_synthetic_attention(sharp), c, 2).recall_mean;
    const double diffuse_recall = measure_synthetic(make_synthetic_attention(diffuse), c, 2).recall_mean;
    EXPECT_GT(sharp_recall, diffuse_recall + 0.1);
}

TEST(Synthetic, RejectsBadInput) {
    EXPECT_EQ(parse_synthetic_kind("concentrated"), SyntheticKind::concentrated);
    EXPECT_EQ(parse_synthetic_kind("noise"), SyntheticKind::noise);
    EXPECT_THROW(parse_synthetic_kind("gaussian"), InputError);
    SyntheticOptions o = options_for(SyntheticKind::noise);
    o.shape.n_heads = 3;  // not a multiple of 2 kv heads
    EXPECT_THROW(make_synthetic_attention(o), InputError);
    o = options_for(SyntheticKind::concentrated);
    o.shape.n_tokens = 0;
    EXPECT_THROW(make_synthetic_attention(o), InputError);
    o = options_for(SyntheticKind::concentrated);
    o.targets_per_query = 0;
    EXPECT_THROW(make_synthetic_attention(o), InputError);
    o = options_for(SyntheticKind::concentrated);
    o.strong_fraction = 0;
    EXPECT_THROW(make_synthetic_attention(o), InputError);
    SyntheticAttention input = make_synthetic_attention(options_for(SyntheticKind::noise));
    EXPECT_THROW(measure_synthetic(input, config_for(0)), InputError);
    EXPECT_THROW(measure_synthetic(input, config_for(4, 2)), InputError);
}

}  // namespace
