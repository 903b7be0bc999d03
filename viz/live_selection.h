#pragma once
// Re-selection of a captured layer at another budget: what the GUI's k / sink
// controls run on every change. It reuses the cached block scores and the dense
// block mass, so it costs one top-k pass and one recall pass (no attention).
// Changing the scorer or the block size needs the layer's Q/K/V instead
// (repool()), which is only possible when the capture kept them.
#include <string>
#include <vector>

#include "core/forward.h"
#include "core/msa.h"
#include "core/run_result.h"

namespace msa::viz {

struct LayerSelectionStats {
    Selection selection;
    std::vector<float> recall;           // [N, Hq]
    double recall_mean = 0, recall_p5 = 0, recall_p50 = 0;
    std::vector<double> group_recall_mean;  // [G]
    std::vector<double> head_recall_mean;   // [Hq]
    double elapsed_ms = 0;               // wall time of the re-selection
};

// Summary statistics of a [N, Hq] recall array.
void summarize_recall(const std::vector<float>& recall, int n_heads, int group_size, LayerSelectionStats& stats);

// k / sink changed: top-k from capture.scores, recall from capture.mass.
// Requires both in the capture; throws std::invalid_argument otherwise.
LayerSelectionStats reselect(const LayerCapture& capture, int k, int sink, int block);

// Whether a capture can be re-pooled (scorer / block size change).
bool can_repool(const LayerCapture& capture);

// One scorer's block scores of a capture at `block`, pooled from its Q/K/V
// (training-free index): the index pass of repool(), and what the GUI's
// background scorer cache runs for the scorers not shown. Throws
// std::invalid_argument when the capture has no Q/K/V.
BlockScores pool_block_scores(const LayerCapture& capture, int block, Scorer scorer, uint64_t seed, int threads);

// Scorer / block changed: rebuilds the capture's scores, mass, selection and
// recall from its Q/K/V (training-free index) at config's block, scorer, k and
// sink. The dense block mass does not depend on the scorer: when config.block
// equals `capture_block` (the block size of capture.mass) it is reused, so a
// scorer change costs only the index pass. The result leaves Q/K/V out (the
// caller keeps the source). Seconds at 8K tokens: run it off the UI thread.
// `progress` gets the fraction done and the stage; false cancels (throws).
LayerCapture repool(const LayerCapture& capture, int capture_block, const MsaConfig& config, int threads,
                    const ProgressFn& progress = {});

}  // namespace msa::viz
