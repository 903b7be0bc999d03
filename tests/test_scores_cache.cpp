// viz/scores_cache: the GUI's cache of other scorers' block scores. A scorer
// change served from it must show exactly what a fresh re-pool shows, and a
// block-size change must never be served scores pooled at another block size.
#include <gtest/gtest.h>

#include <iterator>
#include <stdexcept>

#include "viz/live_selection.h"
#include "viz/scores_cache.h"
#include "viz/synthetic_attention.h"

using namespace msa;
using namespace msa::viz;

namespace {

// One synthetic layer with Q/K/V, 12 blocks of 128 (24 of 64): enough blocks
// that k = 4 leaves the scorers room to disagree.
const RunResult& layer_run() {
    static const RunResult run = [] {
        SyntheticOptions options;
        options.n_tokens = 1500;
        options.n_layers = 1;
        options.n_heads = 4;
        options.n_kv_heads = 2;
        options.head_dim = 32;
        options.threads = 2;
        options.keep_qkv = true;
        return synthetic_run(options);
    }();
    return run;
}

std::vector<Scorer> all_scorers() { return {std::begin(kAllScorers), std::end(kAllScorers)}; }

// The shown selection and recall after a scorer change served from the cache
// must equal those of viz::repool for the same config, scorer by scorer.
void expect_cached_matches_repool(BlockScoresCache& cache, const LayerCapture& mass_source,
                                  const LayerCapture& qkv_source, int source_block, MsaConfig config) {
    for (Scorer scorer : kAllScorers) {
        config.scorer = scorer;
        SCOPED_TRACE(std::string(to_string(scorer)) + ", B = " + std::to_string(config.block));
        std::optional<LayerCapture> cached = rescore_from_cache(cache, mass_source, config);
        ASSERT_TRUE(cached.has_value()) << "the warm-up left this scorer out";
        const LayerCapture fresh = repool(qkv_source, source_block, config, 2);
        EXPECT_EQ(cached->scores.values, fresh.scores.values);
        EXPECT_EQ(cached->mass.values, fresh.mass.values);
        const LayerSelectionStats shown = reselect(*cached, config.k, config.sink, config.block);
        EXPECT_EQ(shown.selection.blocks, fresh.selection.blocks);
        EXPECT_EQ(shown.selection.slots, fresh.selection.slots);
        EXPECT_EQ(shown.recall, fresh.recall);
    }
}

}  // namespace

TEST(ScoresCache, CachedScorerChangeShowsWhatAFreshRepoolShows) {
    const LayerCapture& capture = layer_run().captures.at(0);
    const MsaConfig run_config = layer_run().config;
    ASSERT_TRUE(can_repool(capture));
    BlockScoresCache cache;
    warm_scores_cache(cache, cache.generation(), capture, run_config.block, run_config.seed, all_scorers(), 2);
    for (int sink : {0, 1}) {
        MsaConfig config = run_config;
        config.k = 4;
        config.sink = sink;
        expect_cached_matches_repool(cache, capture, capture, run_config.block, config);
    }
    // Not vacuous: the scorers select differently here, so serving the wrong one would show.
    MsaConfig config = run_config;
    config.k = 4;
    config.scorer = Scorer::max;
    const Selection by_max = reselect(*rescore_from_cache(cache, capture, config), 4, 0, config.block).selection;
    config.scorer = Scorer::random;
    const Selection by_random = reselect(*rescore_from_cache(cache, capture, config), 4, 0, config.block).selection;
    EXPECT_NE(by_max.blocks, by_random.blocks);
}

TEST(ScoresCache, BlockSizeChangeIsNotServedScoresOfAnotherBlockSize) {
    const LayerCapture& capture = layer_run().captures.at(0);
    const MsaConfig run_config = layer_run().config;
    ASSERT_EQ(run_config.block, 128);
    BlockScoresCache cache;
    warm_scores_cache(cache, cache.generation(), capture, 128, run_config.seed, all_scorers(), 2);

    // What the GUI has after a block-size change: the layer re-pooled at B = 64, dense mass included.
    MsaConfig at64 = run_config;
    at64.block = 64;
    at64.k = 6;
    const LayerCapture repooled64 = repool(capture, 128, at64, 2);
    for (Scorer scorer : kAllScorers) {
        at64.scorer = scorer;
        EXPECT_FALSE(rescore_from_cache(cache, repooled64, at64).has_value())
            << to_string(scorer) << ": served scores pooled at B = 128 for B = 64";
    }
    // Scores pooled at 64 never pair with mass at 128 either.
    warm_scores_cache(cache, cache.generation(), capture, 64, run_config.seed, all_scorers(), 2);
    EXPECT_THROW(rescore_from_cache(cache, capture, at64), std::invalid_argument);
    // Once warmed at 64, a scorer change at 64 shows what a fresh re-pool at 64 shows.
    expect_cached_matches_repool(cache, repooled64, capture, 128, at64);
    // And B = 128 still gets its own scores back.
    expect_cached_matches_repool(cache, capture, capture, 128, run_config);
}

TEST(ScoresCache, WarmsOnlyWhatIsMissingAndInsertsEachScorerWhenDone) {
    const LayerCapture& capture = layer_run().captures.at(0);
    const uint64_t seed = layer_run().config.seed;
    BlockScoresCache cache;
    EXPECT_EQ(scorers_to_warm(cache, capture.layer, 128, seed, Scorer::max),
              (std::vector<Scorer>{Scorer::mean, Scorer::quest, Scorer::random}));
    // Stopped after the first scorer: that one is usable already.
    int calls = 0;
    warm_scores_cache(cache, cache.generation(), capture, 128, seed, {Scorer::mean, Scorer::quest}, 1,
                      [&calls](double, const std::string&) { return ++calls < 2; });
    EXPECT_TRUE(cache.contains({capture.layer, 128, Scorer::mean, seed}));
    EXPECT_FALSE(cache.contains({capture.layer, 128, Scorer::quest, seed}));
    EXPECT_EQ(scorers_to_warm(cache, capture.layer, 128, seed, Scorer::max),
              (std::vector<Scorer>{Scorer::quest, Scorer::random}));
    // Another layer, block size or seed is another entry.
    EXPECT_EQ(scorers_to_warm(cache, capture.layer, 64, seed, Scorer::max).size(), 3u);
    EXPECT_EQ(scorers_to_warm(cache, capture.layer + 1, 128, seed, std::nullopt).size(), 4u);
    EXPECT_EQ(scorers_to_warm(cache, capture.layer, 128, seed + 1, Scorer::max).size(), 3u);
}

TEST(ScoresCache, StaysWithinItsBoundAndDropsALastRunsLateInserts) {
    auto scores_of = [](size_t floats) {
        BlockScores s;
        s.values.assign(floats, 1.0f);
        return s;
    };
    BlockScoresCache cache(1000 * sizeof(float));
    const uint64_t g = cache.generation();
    cache.insert(g, {0, 128, Scorer::max, 0}, scores_of(400));
    cache.insert(g, {0, 128, Scorer::mean, 0}, scores_of(400));
    ASSERT_TRUE(cache.find({0, 128, Scorer::max, 0}));  // now the most recently used
    cache.insert(g, {0, 128, Scorer::quest, 0}, scores_of(400));
    EXPECT_LE(cache.bytes(), cache.max_bytes());
    EXPECT_TRUE(cache.contains({0, 128, Scorer::max, 0}));
    EXPECT_FALSE(cache.contains({0, 128, Scorer::mean, 0})) << "evicted the recently used entry instead";
    EXPECT_TRUE(cache.contains({0, 128, Scorer::quest, 0}));
    cache.insert(g, {0, 128, Scorer::random, 0}, scores_of(1001));  // larger than the whole bound
    EXPECT_FALSE(cache.contains({0, 128, Scorer::random, 0}));
    EXPECT_TRUE(cache.contains({0, 128, Scorer::quest, 0}));

    const uint64_t next = cache.clear();
    EXPECT_EQ(cache.bytes(), 0u);
    cache.insert(g, {0, 128, Scorer::max, 0}, scores_of(10));  // a worker of the last run, finishing late
    EXPECT_FALSE(cache.contains({0, 128, Scorer::max, 0}));
    cache.insert(next, {0, 128, Scorer::max, 0}, scores_of(10));
    EXPECT_TRUE(cache.contains({0, 128, Scorer::max, 0}));
    EXPECT_EQ(block_scores_bytes(8192, 3, 128), size_t{8192} * 3 * 64 * 4);
}
