#pragma once
// MSA main branch on the GPU: exact softmax attention of every head of a GQA
// group over the keys of the group's selected blocks (token-level causal mask),
// prefill and decode. Selections come from index_topk (or the CPU).
//
// Query-centric, not key-block-outer. MiniMax's training kernel inverts the
// selection into a key-block -> queries CSR and runs KV-block-outer, which
// reuses each K/V block across every query that picked it. We go query-centric
// because (1) the group's r query heads already share the selection, so
// putting them in the MMA's M dimension gives every staged K/V chunk r rows of
// reuse for free (r = 16 on MiniMax-M3: one m16 tile) with no inversion pass,
// no atomics and no second softmax merge; (2) the output of a query is written
// once, by one CTA, in one pass (deterministic); (3) the work per CTA is
// bounded by k blocks, so there is no load imbalance from popular blocks
// (block 0 and the local block are picked by every query, which makes
// key-block-outer CSR rows badly skewed). The price: K/V of a block is fetched
// once per query token that picked it rather than once per block, which moves
// the kernel from MMA-bound towards L2-bandwidth-bound (16 FLOP per byte of
// K/V at r = 16); at r < 16 a CTA takes several tokens and visits the union of
// their selections, masking per row.
//
// That bound is what the measurements hit (NOTES_cuda.md: ~7 TB/s of L2
// traffic on random selections, 36% of the dense kernel's TFLOP/s), so long
// prefills with r >= 8 now take the block-major path (sparse_block_major.cuh),
// which pays the inversion, partials and merge the points above name in
// exchange for moving ~5x fewer bytes; token-major stays for decode, short
// prefills and small groups.
//
// Decode (one query per sequence): the same tile with split-K over the
// selected blocks, one block per CTA, then a merge of the partial softmaxes.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/mma_utils.cuh"
#include "kernels/sparse_order.h"

namespace msa::kern {

using SparseOrder = msa::SparseOrder;

struct SparseAttentionOp {
    const bf16* q = nullptr;  // [n_q, Hq, d]
    const bf16* k = nullptr;  // [n_kv, Hkv, d]
    const bf16* v = nullptr;
    bf16* out = nullptr;      // [n_q, Hq, d]
    const int32_t* sel = nullptr;  // [n_q, Hkv, slots], ascending ids, -1 padding
    int slots = 0;
    int block = 128;
    int n_q = 0;
    int q_offset = 0;         // query i sits at position q_offset + i
    int n_kv = 0;
    int n_heads = 0;
    int n_kv_heads = 0;
    int head_dim = 0;         // 64 or 128
    float scale = 0;
    SparseOrder order = SparseOrder::automatic;
    void* scratch = nullptr;  // split-K / block-major partials; see sparse_attention_scratch_bytes
    size_t scratch_bytes = 0;
};

size_t sparse_attention_scratch_bytes(const SparseAttentionOp& op);
void sparse_attention_launch(const SparseAttentionOp& op, cudaStream_t stream);

}  // namespace msa::kern
