#pragma once
// Block scores of the other scorers, computed ahead of time so that a scorer
// change in the GUI costs what a k change costs (one top-k and one recall
// pass) instead of an index pass over the layer's Q/K/V. A worker thread fills
// the cache (warm_scores_cache) while the UI thread reads it (rescore_from_cache),
// so every method takes the cache's lock.
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/forward.h"
#include "core/msa.h"
#include "core/run_result.h"

namespace msa::viz {

inline constexpr Scorer kAllScorers[] = {Scorer::max, Scorer::mean, Scorer::quest, Scorer::random};

// What a layer's block scores depend on besides its Q/K/V.
struct ScoresKey {
    int layer = 0;
    int block = 0;
    Scorer scorer = Scorer::max;
    uint64_t seed = 0;  // only Scorer::random reads it; kept in the key so no entry is ever misread
    bool operator==(const ScoresKey& o) const {
        return layer == o.layer && block == o.block && scorer == o.scorer && seed == o.seed;
    }
};

// Bytes of one layer's block scores at `block` (float [N, G, nb]).
size_t block_scores_bytes(int n_tokens, int n_groups, int block);

// Least-recently-used cache of block scores, bounded in bytes. Entries belong
// to one run: clear() when another is shown. A worker that started before a
// clear() passes the generation it started under, and its late inserts are
// dropped, so one run's scores never show up in another's layers.
class BlockScoresCache {
public:
    // The default holds two 8K-token layers' four scorers (6.3 MB each at
    // SmolLM2's 3 groups and B = 128).
    static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
    explicit BlockScoresCache(size_t max_bytes = kDefaultMaxBytes) : max_bytes_(max_bytes) {}

    std::shared_ptr<const BlockScores> find(const ScoresKey& key);  // marks it recently used
    bool contains(const ScoresKey& key) const;
    // Drops it when `generation` is stale or it alone is larger than the bound;
    // evicts the least recently used entries until it fits.
    void insert(uint64_t generation, const ScoresKey& key, BlockScores scores);
    // Forgets every entry; returns the new generation.
    uint64_t clear();
    uint64_t generation() const;
    size_t bytes() const;
    size_t max_bytes() const { return max_bytes_; }

private:
    struct Entry {
        ScoresKey key;
        std::shared_ptr<const BlockScores> scores;
        size_t bytes = 0;
    };
    mutable std::mutex mutex_;
    std::list<Entry> entries_;  // most recently used first
    size_t bytes_ = 0;
    size_t max_bytes_;
    uint64_t generation_ = 0;
};

// The scorers whose block scores for (layer, block, seed) are neither in the
// cache nor `already_shown` (the scorer the shown capture holds at that block).
std::vector<Scorer> scorers_to_warm(const BlockScoresCache& cache, int layer, int block, uint64_t seed,
                                    std::optional<Scorer> already_shown);

// Worker-thread body: pools `capture`'s Q/K/V (viz::can_repool must hold) for
// each of `scorers` at `block` and inserts each as soon as it is done, so a
// scorer change can use the first before the last is ready. `progress` gets the
// fraction done and the scorer; false stops it between scorers.
void warm_scores_cache(BlockScoresCache& cache, uint64_t generation, const LayerCapture& capture, int block,
                       uint64_t seed, const std::vector<Scorer>& scorers, int threads, const ProgressFn& progress = {});

// The scorer change from the cache: config.scorer's scores for mass_source's
// layer at config.block, with mass_source's dense mass (which must be at
// config.block; it does not depend on the scorer). Selection and recall are
// left to reselect(), which the GUI runs at the current k / sink anyway.
// nullopt when the cache does not hold the scores.
std::optional<LayerCapture> rescore_from_cache(BlockScoresCache& cache, const LayerCapture& mass_source,
                                               const MsaConfig& config);

}  // namespace msa::viz
