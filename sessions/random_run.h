#pragma once
// A RunResult with the shape of a real one and random content: what the
// session benchmark, the session tests and the kill-test writer store. The
// selections come from core's own top-k over random block scores, so they
// obey every Selection invariant (ascending ids, forced local block, -1 pad).
#include <cstdint>
#include <vector>

#include "core/run_result.h"

namespace msa::sessions {

struct RandomRunShape {
    int n_tokens = 1024;
    int n_layers = 4;
    int n_heads = 9;      // Hq
    int n_kv_heads = 3;   // groups
    int block = 128;
    int k = 16;
    int sink = 0;
    int kernels_per_layer = 6;
    bool selections = true;          // selection capture for every layer
    std::vector<int> full_layers;    // + scores, mass and recall for these layers
};

RunResult random_run(const RandomRunShape& shape, uint64_t seed);

// One layer's capture as random_run makes it (full = with scores/mass/recall).
LayerCapture random_capture(const RandomRunShape& shape, int layer, bool full, uint64_t seed);

// The kernels random_run records for one layer, starting at start_ns.
std::vector<KernelRecord> random_kernels(const RandomRunShape& shape, int layer, uint64_t start_ns, uint64_t seed);

}  // namespace msa::sessions
