#pragma once
// Index branch on the GPU: token scores q_idx . k_idx * scale with the causal
// mask, pooled per key block, and top-k with the forced local (+ sink) blocks.
// Nothing of size N x N is materialised; the N x G x nb block scores are, on
// the sm_90a prefill path, in slices of at most 2 GiB (see Top-k below).
//
// Rows. The tensor-core tile's M dimension holds (token, group) rows that share
// one index key head: with MiniMax's single shared key head a 128-row CTA (the
// sm_90a tiles; 64 rows with mma.sync) is 32 tokens x 4 groups, so each staged
// key chunk feeds all groups at once; with the training-free index (one key
// head per group) the rows are tokens of one group. Causal cost grows with the
// position, so the latest tiles launch first. Tiles: index_pipelined.cuh (the
// sm_90a default), index_topk.cu (cp.async tiles, measured alternatives).
//
// Top-k. On the sm_90a pipelined tile (prefill, max/mean pooling, blocks of
// whole 64-key chunks) the tile writes each row's block scores and
// topk_prefill.cuh picks from them, in slices of tokens whose scores fit 2 GiB
// of scratch (one slice at 128K with 4 groups, 64 at 1M): keeping candidate
// lists while streaming was ~100 of the tile's 228 instructions per chunk
// (NOTES_cuda.md step 66; MSA_INDEX_TOPK=fused keeps that form). The other
// tiles still do it: after a block's last chunk one lane per row inserts its
// pooled score into the row's sorted candidate list in shared memory (length
// k - forced) with a strict '>' test, which is exactly "ties to the lower
// block id".
//
// Other paths (same op, different scorers): quest and random score every
// (row, block) with CUDA cores into a score buffer and a warp-per-row top-k
// picks from it; decode (a handful of rows) scores every block with
// index_decode.cu and picks with the decode top-k spread over the SMs
// (topk_decode_parts_kernel).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/mma_utils.cuh"

namespace msa::kern {

enum class IndexPool : int { max = 0, mean = 1, quest = 2, random = 3 };

struct IndexTopkOp {
    const bf16* q = nullptr;  // [n_q, G, dim]
    const bf16* k = nullptr;  // [n_kv, n_key_heads, dim]
    int n_q = 0;
    int q_offset = 0;         // position of query 0
    int n_kv = 0;
    int n_groups = 0;
    int n_key_heads = 0;      // 1 or n_groups
    int dim = 0;              // 64 or 128
    float scale = 1.f;
    int block = 128;
    IndexPool pool = IndexPool::max;
    uint64_t seed = 0;        // random
    int k_top = 16;
    int sink = 0;
    int slots = 0;            // selection row width, max(k, forced)
    int32_t* sel = nullptr;   // [n_q, G, slots] out (may be null: scores only)
    float* scores = nullptr;  // [n_q, G, nb] out (may be null unless the path needs it)
    // Scratch the launcher may need (quest bounds, decode scores): see index_topk_scratch_bytes.
    void* scratch = nullptr;
    size_t scratch_bytes = 0;
};

// Bytes of scratch the op needs for this configuration.
size_t index_topk_scratch_bytes(const IndexTopkOp& op);
void index_topk_launch(const IndexTopkOp& op, cudaStream_t stream);

}  // namespace msa::kern
