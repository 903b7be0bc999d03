#pragma once
// Index branch on the GPU: token scores q_idx . k_idx * scale with the causal
// mask, pooled per key block, and top-k with the forced local (+ sink) blocks,
// in one streaming pass (nothing of size N x N or N x nb is materialised
// unless the caller asks for the block scores).
//
// Rows. The tensor-core tile's M dimension holds (token, group) rows that share
// one index key head: with MiniMax's single shared key head a 128-row CTA (the
// sm_90a tiles; 64 rows with mma.sync) is 32 tokens x 4 groups, so each staged
// key chunk feeds all groups at once; with the training-free index (one key
// head per group) the rows are tokens of one group. Causal cost grows with the
// position, so the latest tiles launch first. Tiles: index_pipelined.cuh (the
// sm_90a default), index_topk.cu (cp.async tiles, measured alternatives).
//
// Top-k while streaming. Blocks arrive in ascending id; after a block's last
// chunk, one lane per row inserts its pooled score into that row's sorted
// candidate list in shared memory (length k - forced) with a strict '>' test,
// which is exactly "ties to the lower block id". Insertions are rare once the
// list is full, so the cost is noise next to the MMA work. Measured
// alternative not taken: writing all N x G x nb scores and sorting afterwards
// costs 2 GiB at 128K tokens and 128 GiB at 1M.
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

// Bytes of scratch the op needs for this configuration (0 for the fused prefill path).
size_t index_topk_scratch_bytes(const IndexTopkOp& op);
void index_topk_launch(const IndexTopkOp& op, cudaStream_t stream);

}  // namespace msa::kern
