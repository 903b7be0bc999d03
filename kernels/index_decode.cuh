#pragma once
// Index scoring for decode (a handful of (token, group) rows per key head):
// every key block's pooled score, one warp per block, the keys streamed from
// device memory straight into mma.sync B fragments (no shared memory, no
// barriers). Top-k runs afterwards on the scores (index_topk.cu).
//
// Why not the prefill tile: its 64-row tile leaves 60 of 64 rows empty at
// decode, and its per-chunk barrier and 3-stage cp.async ring limit the bytes
// in flight per SM; decode is a pure stream over k_idx (256 MiB at 1M tokens),
// so what matters is 16-byte loads with many in flight and nothing between a
// load and its use but the MMA.
//
// The dimension permutation. A lane of mma.sync m16n8k16 holds, per 16-dim
// slab, the B values of k-slots {2c, 2c+1} and {2c+8, 2c+9} (c = lane % 4) of
// key lane / 4. A dot product does not care which physical dimension sits in
// which k-slot as long as q and k agree, so lane (key, c) loads the 16
// contiguous bytes 32j + 8c .. 32j + 8c + 7 of its key and uses them as slabs
// 2j and 2j + 1; q is loaded with the same map. Four lanes then cover 64
// contiguous bytes of a key per load: every sector fetched is used.
#include <cuda_runtime.h>

#include "kernels/index_topk.cuh"

namespace msa::kern {

// Rows of one key head the decode kernel takes (one m16 tile).
constexpr int kIndexDecodeRows = 16;

// Writes scores[(t * n_groups + g) * nb + b] for every row and block: the
// pooled score (max or mean, scaled), -inf for blocks after the row's own.
// Needs op.n_q * (op.n_groups / op.n_key_heads) <= kIndexDecodeRows and
// op.pool max or mean.
// counters[0 .. n_counters) are zeroed on the way (the decode top-k's
// per-row part counts: one memset node fewer in a decode step's graph).
//
// With bests.score set, each scoring warp also writes, per row, its best
// eligible block (before the row's own, not the sink block when it is forced;
// score desc, id asc; id INT_MAX if it has none) at bests[row * bests.stride +
// warp], where warp w scores blocks [w * bpw, min(nb, (w + 1) * bpw)) of each
// key head (index_decode_split). The decode top-k ranks these first.
struct DecodeBests {
    float* score = nullptr;
    int32_t* block = nullptr;
    int stride = 0;
};
struct DecodeSplit {
    int blocks_per_warp = 1, warps = 0;  // per key head
};
DecodeSplit index_decode_split(const IndexTopkOp& op);
void index_decode_scores_launch(const IndexTopkOp& op, float* scores, cudaStream_t stream,
                                unsigned* counters = nullptr, int n_counters = 0, DecodeBests bests = {});

}  // namespace msa::kern
