#pragma once
// Lines two runs up: config diff, metric deltas, kernel-by-kernel time diff,
// selection overlap. The CLI `compare` and the GUI compare view both print
// this JSON; its keys follow ../shared/CLI.md.
#include <nlohmann/json.hpp>

#include "core/run_result.h"

namespace msa::sessions {

// {
//   "a", "b":          {"model","model_hash","backend","device","tokens","config":{k,block,scorer,sink,index},...}
//   "config_diff":     [{"field","a","b"}]              fields that differ
//   "same_tokens":     bool                             identical token sequences
//   "metrics":         [{"name","a","b","delta","rel","better"}]
//                      delta = b - a, rel = delta / |a| (null when a is 0 or missing),
//                      better = "lower" | "higher" | "" (which direction is an improvement)
//   "kernels":         [{"name","launch","a_ms","b_ms","delta_ms","rel","layer","context","phase"}]
//                      the i-th launch of a name (and context, for a bench) in a against
//                      the i-th in b; a side
//                      with fewer launches reads null
//   "kernel_totals":   [{"name","a_ms","b_ms","delta_ms","rel","a_count","b_count"}]
//   "selection_jaccard": {"mean","unit","rows":[{"layer","group","jaccard","queries"}]}
//                      mean over queries of |A∩B| / |A∪B| of the selected block sets,
//                      for layers both runs captured; unit "blocks" when both use the
//                      same block size, else "tokens" (sets of selected visible keys).
//                      mean is null when no layer is comparable.
// }
// NaN values are written as null.
nlohmann::json compare_runs(const RunResult& a, const RunResult& b);

// Mean Jaccard over the first min(N) queries of group g (both selections must hold g).
double selection_jaccard(const Selection& a, int block_a, const Selection& b, int block_b, int group, int* queries = nullptr);

}  // namespace msa::sessions
