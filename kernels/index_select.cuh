#pragma once
// Device pieces every index kernel shares: the launch parameters, the forced
// blocks, the sorted candidate list and the selection row it becomes.
#include <climits>
#include <cstdint>

#include "kernels/mma_utils.cuh"

namespace msa::kern {

struct IndexParams {
    const bf16* q;
    const bf16* k;
    int n_q, q_offset, n_kv, n_groups, n_key_heads;
    float scale;
    int block, pool, k_top, sink, slots, nb;
    int32_t* sel;
    float* scores;
    int n_splits;
    int cand_cap;
    int fill_invisible;  // pipelined tile: write -inf past the CTA's last block (else left unwritten)
};

// (score desc, id asc): is candidate (s, i) ahead of the current best (bs, bi)?
__device__ __forceinline__ bool ranks_before(float s, int i, float bs, int bi) {
    return i != INT_MAX && (bi == INT_MAX || s > bs || (s == bs && i < bi));
}

// Forced blocks of a query at position pos: the local block, plus block 0 with sink.
__device__ __forceinline__ int forced_count(int local, int sink) { return (sink && local > 0) ? 2 : 1; }

// Writes one selection row: sink block (if forced), the candidates ascending, the
// local block; or every visible block when the query sees <= k of them.
__device__ inline void write_selection(int32_t* out, int slots, int local, int k_top, int sink, int32_t* cand_id, int n_cand) {
    int n = 0;
    if (local + 1 <= k_top) {
        for (int b = 0; b <= local && n < slots; ++b) out[n++] = b;
    } else {
        for (int i = 1; i < n_cand; ++i) {  // insertion sort, n_cand <= k - 1
            int x = cand_id[i], j = i - 1;
            while (j >= 0 && cand_id[j] > x) {
                cand_id[j + 1] = cand_id[j];
                --j;
            }
            cand_id[j + 1] = x;
        }
        if (sink && local > 0) out[n++] = 0;
        for (int i = 0; i < n_cand; ++i) out[n++] = cand_id[i];
        out[n++] = local;
    }
    for (; n < slots; ++n) out[n] = -1;
}

// A selection row written by a whole warp, in its two parts: a row that sees
// at most k blocks takes every visible one; otherwise its forced blocks go
// around the n_cand candidates the caller wrote at out[head ..): the sink
// block first, the local block after them. -1 pads the rest.
__device__ inline void warp_write_visible(int32_t* out, int slots, int local) {
    for (int n = threadIdx.x % 32; n < slots; n += 32) out[n] = n <= local ? n : -1;
}
__device__ inline void warp_write_forced(int32_t* out, int slots, int local, int head, int n_cand) {
    const int lane = threadIdx.x % 32;
    if (lane == 0) {
        if (head) out[0] = 0;
        out[head + n_cand] = local;
    }
    for (int n = head + n_cand + 1 + lane; n < slots; n += 32) out[n] = -1;
}

// write_selection by a whole warp (the decode top-k, where one row's selection
// is the kernel's last step): each candidate's place is its rank by id, counted
// with shuffles, instead of lane 0's insertion sort (a chain of ~k^2/4
// dependent shared-memory steps, ~2 us of the 7 us one-part top-k at 8K).
// cand_id[0 .. n_cand) distinct, in shared memory; same row as write_selection.
__device__ inline void warp_write_selection(int32_t* out, int slots, int local, int k_top, int sink,
                                            const int32_t* cand_id, int n_cand) {
    const int lane = threadIdx.x % 32;
    if (local + 1 <= k_top) return warp_write_visible(out, slots, local);
    const int head = (sink && local > 0) ? 1 : 0;
    for (int cb = 0; cb < n_cand; cb += 32) {
        const int x = cb + lane < n_cand ? cand_id[cb + lane] : INT_MAX;
        int at = 0;
        for (int db = 0; db < n_cand; db += 32) {
            const int y = db + lane < n_cand ? cand_id[db + lane] : INT_MAX;
#pragma unroll 8
            for (int o = 0; o < 32; ++o) at += __shfl_sync(0xffffffffu, y, o) < x;
        }
        if (cb + lane < n_cand) out[head + at] = x;
    }
    warp_write_forced(out, slots, local, head, n_cand);
}

// Inserts (score, b) into a row's candidate list, sorted by score descending,
// ties kept in arrival order (ascending block id: strict '<' when shifting).
// When the list is full the caller has checked score > cs[cap - 1]; the last
// entry drops out.
__device__ __forceinline__ void insert_candidate(float* cs, int32_t* ci, int& cnt, int cap, float score, int b) {
    int at = cnt < cap ? cnt++ : cap - 1;
    while (at > 0 && cs[at - 1] < score) {
        cs[at] = cs[at - 1];
        ci[at] = ci[at - 1];
        --at;
    }
    cs[at] = score;
    ci[at] = b;
}

}  // namespace msa::kern
