#include "viz/scores_cache.h"

#include <stdexcept>
#include <string>

#include "viz/live_selection.h"

namespace msa::viz {

size_t block_scores_bytes(int n_tokens, int n_groups, int block) {
    const size_t n_blocks = block > 0 ? (static_cast<size_t>(n_tokens) + block - 1) / block : 0;
    return static_cast<size_t>(n_tokens) * n_groups * n_blocks * sizeof(float);
}

std::shared_ptr<const BlockScores> BlockScoresCache::find(const ScoresKey& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->key == key) {
            entries_.splice(entries_.begin(), entries_, it);
            return entries_.front().scores;
        }
    return nullptr;
}

bool BlockScoresCache::contains(const ScoresKey& key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& e : entries_)
        if (e.key == key) return true;
    return false;
}

void BlockScoresCache::insert(uint64_t generation, const ScoresKey& key, BlockScores scores) {
    const size_t bytes = scores.values.size() * sizeof(float);
    // Built outside the lock: the UI thread may be waiting on it.
    auto shared = std::make_shared<const BlockScores>(std::move(scores));
    std::lock_guard<std::mutex> lock(mutex_);
    if (generation != generation_ || bytes > max_bytes_) return;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->key == key) {
            bytes_ -= it->bytes;
            entries_.erase(it);
            break;
        }
    while (!entries_.empty() && bytes_ + bytes > max_bytes_) {
        bytes_ -= entries_.back().bytes;
        entries_.pop_back();
    }
    entries_.push_front({key, std::move(shared), bytes});
    bytes_ += bytes;
}

uint64_t BlockScoresCache::clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.clear();
    bytes_ = 0;
    return ++generation_;
}

uint64_t BlockScoresCache::generation() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return generation_;
}

size_t BlockScoresCache::bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
}

std::vector<Scorer> scorers_to_warm(const BlockScoresCache& cache, int layer, int block, uint64_t seed,
                                    std::optional<Scorer> already_shown) {
    std::vector<Scorer> missing;
    for (Scorer scorer : kAllScorers)
        if (scorer != already_shown && !cache.contains({layer, block, scorer, seed})) missing.push_back(scorer);
    return missing;
}

void warm_scores_cache(BlockScoresCache& cache, uint64_t generation, const LayerCapture& capture, int block,
                       uint64_t seed, const std::vector<Scorer>& scorers, int threads, const ProgressFn& progress) {
    for (size_t i = 0; i < scorers.size(); ++i) {
        const std::string stage = std::string("block scores (") + to_string(scorers[i]) + ", B = " +
                                  std::to_string(block) + ")";
        if (progress && !progress(static_cast<double>(i) / scorers.size(), stage)) return;
        cache.insert(generation, {capture.layer, block, scorers[i], seed},
                     pool_block_scores(capture, block, scorers[i], seed, threads));
    }
    if (progress) progress(1.0, "done");
}

std::optional<LayerCapture> rescore_from_cache(BlockScoresCache& cache, const LayerCapture& mass_source,
                                               const MsaConfig& config) {
    if (mass_source.mass.values.empty() ||
        mass_source.mass.n_blocks != (mass_source.mass.n_tokens + config.block - 1) / config.block)
        throw std::invalid_argument("layer " + std::to_string(mass_source.layer) +
                                    ": its dense block mass is not at B = " + std::to_string(config.block));
    std::shared_ptr<const BlockScores> scores =
        cache.find({mass_source.layer, config.block, config.scorer, config.seed});
    if (!scores) return std::nullopt;
    LayerCapture out;
    out.layer = mass_source.layer;
    out.scores = *scores;
    out.mass = mass_source.mass;
    return out;
}

}  // namespace msa::viz
