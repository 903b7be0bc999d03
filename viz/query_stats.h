#pragma once
// Per-query facts the hover tooltip and the query inspector show: the rank of
// a block among the query's visible blocks, whether it is selected, and the
// query's best blocks. Ranking follows top-k's order: higher score first,
// ties to the lower block id.
#include <vector>

#include "core/msa.h"

namespace msa::viz {

// Number of blocks query t can see.
inline int visible_blocks(int t, int block_size, int n_blocks) {
    return t < 0 ? 0 : (t / block_size + 1 < n_blocks ? t / block_size + 1 : n_blocks);
}

// 1-based rank of block b among the first `visible` entries of a score row; 0 when not visible.
int block_rank(const float* scores, int visible, int b);

// Block ids of the first `visible` entries in rank order (best first), at most `limit`.
std::vector<int> ranked_blocks(const float* scores, int visible, int limit);

// Whether block b is in selection row (t, g).
bool is_selected(const Selection& selection, int t, int g, int b);

}  // namespace msa::viz

namespace msa::viz {

// Mean over (query, group) rows of |A ∩ B| / |A ∪ B| of two selections of the
// same shape; NaN when the shapes differ.
double selection_jaccard(const Selection& a, const Selection& b);

}  // namespace msa::viz
