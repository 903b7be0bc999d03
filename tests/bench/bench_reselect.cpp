// Re-selection latency: what the GUI does when the user moves the k or sink
// control: top-k from cached block scores plus recall from the cached dense
// block mass, for one layer (viz::reselect). Target: under 100 ms at 8K tokens.
// Inputs are a synthetic-attention layer (viz::synthetic_run) at the shape of
// SmolLM2-135M (9 query heads, 3 KV heads) unless flags say otherwise.
// Then what a scorer or block-size change costs: re-pooling the layer from its
// Q/K/V (viz::repool, all threads; a scorer change reuses the dense mass), and
// a scorer change once the GUI's background warm-up has cached the other
// scorers' block scores (viz::rescore_from_cache + viz::reselect, what
// App::update_selection runs on the UI thread). Target for both: under 100 ms.
//
//   bench_reselect [--tokens 8192] [--heads 9] [--kv-heads 3] [--block 128] [--repeats 20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "viz/live_selection.h"
#include "viz/scores_cache.h"
#include "viz/synthetic_attention.h"

int main(int argc, char** argv) {
    msa::viz::SyntheticOptions options;
    options.n_tokens = 8192;
    options.n_layers = 1;
    options.n_heads = 9;
    options.n_kv_heads = 3;
    options.head_dim = 64;
    options.keep_qkv = true;  // for the re-pooling rows
    int repeats = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        int value = std::atoi(argv[i + 1]);
        if (flag == "--tokens") options.n_tokens = value;
        else if (flag == "--heads") options.n_heads = value;
        else if (flag == "--kv-heads") options.n_kv_heads = value;
        else if (flag == "--block") options.config.block = value;
        else if (flag == "--repeats") repeats = std::max(1, value);
        else {
            std::fprintf(stderr, "unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    options.threads = msa::default_threads();
    std::fprintf(stderr, "building one synthetic layer: %d tokens, %d/%d heads, B=%d ...\n", options.n_tokens,
                 options.n_heads, options.n_kv_heads, options.config.block);
    msa::RunResult run = msa::viz::synthetic_run(options);
    const msa::LayerCapture& capture = run.captures.at(0);

    std::printf("re-selection at %d tokens (%d blocks, %d groups, %d heads), single thread\n", options.n_tokens,
                capture.scores.n_blocks, capture.scores.n_groups, capture.mass.n_heads);
    std::printf("%6s %5s %10s %10s %10s %8s\n", "k", "sink", "median_ms", "min_ms", "max_ms", "recall");
    for (int sink : {0, 1})
        for (int k : {4, 8, 16, 32}) {
            std::vector<double> ms;
            double recall = 0;
            for (int r = 0; r < repeats; ++r) {
                msa::viz::LayerSelectionStats stats = msa::viz::reselect(capture, k, sink, options.config.block);
                ms.push_back(stats.elapsed_ms);
                recall = stats.recall_mean;
            }
            std::sort(ms.begin(), ms.end());
            std::printf("%6d %5d %10.2f %10.2f %10.2f %8.3f\n", k, sink, ms[ms.size() / 2], ms.front(), ms.back(), recall);
        }

    std::printf("\nre-pooling from Q/K/V (k=16, sink=0), %d threads\n", options.threads);
    std::printf("%8s %6s %10s %8s\n", "scorer", "block", "ms", "recall");
    for (msa::Scorer scorer : {msa::Scorer::max, msa::Scorer::mean, msa::Scorer::quest, msa::Scorer::random})
        for (int block : {64, 128, 256}) {
            msa::MsaConfig config = options.config;
            config.scorer = scorer;
            config.block = block;
            auto start = std::chrono::steady_clock::now();
            msa::LayerCapture repooled = msa::viz::repool(capture, options.config.block, config, options.threads);
            const double ms =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
            msa::viz::LayerSelectionStats stats;
            msa::viz::summarize_recall(repooled.recall, capture.qkv_shape.n_heads, capture.qkv_shape.group_size(), stats);
            std::printf("%8s %6d %10.1f %8.3f%s\n", msa::to_string(scorer), block, ms, stats.recall_mean,
                        block == options.config.block ? "   (dense mass reused)" : "");
        }

    // The warm-up's own cost: it runs on a worker thread, the UI does not wait for it.
    msa::viz::BlockScoresCache cache;
    const uint64_t generation = cache.generation();
    const int block = options.config.block;
    auto warm_start = std::chrono::steady_clock::now();
    msa::viz::warm_scores_cache(cache, generation, capture, block, options.config.seed,
                                {std::begin(msa::viz::kAllScorers), std::end(msa::viz::kAllScorers)}, options.threads);
    const double warm_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - warm_start).count();
    std::printf("\nscorer change with a warm cache (k=16, sink=0, B=%d), single thread on the UI side;\n"
                "background warm-up of all %zu scorers: %.0f ms on %d threads, %.1f MB cached\n",
                block, std::size(msa::viz::kAllScorers), warm_ms, options.threads, cache.bytes() / 1e6);
    std::printf("%8s %10s %10s %10s %8s\n", "scorer", "median_ms", "min_ms", "max_ms", "recall");
    for (msa::Scorer scorer : msa::viz::kAllScorers) {
        msa::MsaConfig config = options.config;
        config.scorer = scorer;
        std::vector<double> ms;
        double recall = 0;
        for (int r = 0; r < repeats; ++r) {
            auto start = std::chrono::steady_clock::now();
            std::optional<msa::LayerCapture> rescored = msa::viz::rescore_from_cache(cache, capture, config);
            msa::viz::LayerSelectionStats stats = msa::viz::reselect(*rescored, config.k, config.sink, block);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
            recall = stats.recall_mean;
        }
        std::sort(ms.begin(), ms.end());
        std::printf("%8s %10.2f %10.2f %10.2f %8.3f\n", msa::to_string(scorer), ms[ms.size() / 2], ms.front(),
                    ms.back(), recall);
    }
    return 0;
}
