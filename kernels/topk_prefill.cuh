#pragma once
// Prefill top-k from the pipelined tile's block scores (device code only;
// index_topk.cu launches it after each slice of rows is scored).
//
// Why a pass of its own. The tile used to keep each row's candidate list while
// streaming: ~100 of its 228 warp instructions per 64-key chunk at 128K (ncu
// source counters, session 8), and the warps that searched their list made the
// rest of their warpgroup wait at the next wgmma (15% of the stall samples).
// Written out, the scores cost one 4-byte store per row and block there; this
// kernel reads them back once or twice, against the ~N x G x nb / 2 scores the
// tile computed anyway (NOTES_cuda.md step 66).
//
// How, one warp per (token, group) row, exact, ties to the lower block id (the
// CPU's order): a candidate is a block before the row's own, block 0 excluded
// with the sink; cap = k - forced of them are kept.
//  1. t0 = the cap-th largest of the 32 lanes' maxima. At least cap candidates
//     (from distinct lanes) score >= t0, so the cap-th best score T is >= t0.
//     For random scores ~cap + 5 candidates pass (expected count of a quantile
//     of lane maxima), whatever the row's length.
//  2. Those are compacted, in ascending id, into the warp's shared memory.
//  3. T, bit by bit on order-preserving keys: the largest x with at least cap
//     keys >= x, starting below the bits that t0 and the row's best share.
//  4. Every key > T, then the lowest ids with key == T up to cap, written in
//     ascending id.
// A row whose survivors overflow shared memory (many ties at t0) runs steps 3
// and 4 over its scores in global memory instead: slower, same answer.
#include <cstdint>

#include "kernels/index_select.cuh"

namespace msa::kern {

constexpr int kTopkPrefillWarps = 8;
constexpr int kTopkPrefillKeep = 128;  // survivors per row held in shared memory (4 per lane)

// Larger float -> larger key; -0 maps as +0 (equal scores are a tie to the CPU).
__device__ __forceinline__ uint32_t order_key(float x) {
    uint32_t u = __float_as_uint(x);
    if ((u << 1) == 0) u = 0;
    return (u >> 31) ? ~u : u | 0x80000000u;
}

__global__ void __launch_bounds__(kTopkPrefillWarps * 32)
    topk_prefill_kernel(const float* scores, int nb, long n_rows, int n_groups, int q_offset, int block, int k_top,
                        int sink, int slots, int32_t* sel) {
    constexpr int KEEP = kTopkPrefillKeep, PER_LANE = KEEP / 32;
    __shared__ uint32_t keep_key[kTopkPrefillWarps][KEEP];
    __shared__ int32_t keep_id[kTopkPrefillWarps][KEEP];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const unsigned below = (1u << lane) - 1u;
    const long row = static_cast<long>(blockIdx.x) * kTopkPrefillWarps + warp;
    if (row >= n_rows) return;
    const int local = (q_offset + static_cast<int>(row / n_groups)) / block;
    int32_t* out = sel + row * slots;
    if (local + 1 <= k_top) return warp_write_visible(out, slots, local);
    // k = 1 with the sink still keeps both forced blocks (slots >= 2), so cap >= 0.
    const int head = (sink && local > 0) ? 1 : 0, cap = max(0, k_top - 1 - head);
    const float* s = scores + row * nb;
    uint32_t* my_key = keep_key[warp];
    int32_t* my_id = keep_id[warp];
    int n = 0;
    uint32_t t0 = 0, best = 0;
    if (cap > 0) {
        uint32_t m = 0;  // 0: no candidate (no real score maps to 0)
        for (int b = head + lane; b < local; b += 32) m = max(m, order_key(s[b]));
        best = __reduce_max_sync(0xffffffffu, m);
        if (cap <= 32) {
            int at_least = 0;
#pragma unroll 8
            for (int o = 0; o < 32; ++o) at_least += __shfl_sync(0xffffffffu, m, o) >= m;
            t0 = __reduce_max_sync(0xffffffffu, at_least >= cap ? m : 0u);
        }
        for (int base = head; base < local; base += 32) {
            const int b = base + lane;
            const uint32_t key = b < local ? order_key(s[b]) : 0u;
            const bool keep = b < local && key >= t0;
            const unsigned mask = __ballot_sync(0xffffffffu, keep);
            const int at = n + __popc(mask & below);
            if (keep && at < KEEP) {
                my_key[at] = key;
                my_id[at] = b;
            }
            n += __popc(mask);
        }
        __syncwarp();
    }
    const bool in_smem = n <= KEEP;
    uint32_t held[PER_LANE];  // this lane's survivors (0: none, below every x tested)
#pragma unroll
    for (int j = 0; j < PER_LANE; ++j) held[j] = in_smem && lane + 32 * j < n ? my_key[lane + 32 * j] : 0u;
    auto count_at_least = [&](uint32_t x) {
        int c = 0;
        if (in_smem) {
#pragma unroll
            for (int j = 0; j < PER_LANE; ++j) c += held[j] >= x;
        } else {
            for (int b = head + lane; b < local; b += 32) c += order_key(s[b]) >= x;
        }
        return static_cast<int>(__reduce_add_sync(0xffffffffu, static_cast<unsigned>(c)));
    };
    // T lies in [t0, best]: their common leading bits are T's.
    uint32_t T = t0;
    if (cap > 0 && t0 != best) {
        const int shared_bits = __clz(t0 ^ best);
        T = t0 & ~(0xffffffffu >> shared_bits);
        for (int bit = 31 - shared_bits; bit >= 0; --bit)
            if (count_at_least(T | (1u << bit)) >= cap) T |= 1u << bit;
    }
    if (cap > 0) {
        const int need_equal = cap - count_at_least(T + 1);  // T < the largest key: no wrap
        int written = 0, equal_seen = 0;
        auto emit = [&](bool valid, int b, uint32_t key) {
            const bool equal = valid && key == T;
            const unsigned equal_mask = __ballot_sync(0xffffffffu, equal);
            const bool take = valid && (key > T || (equal && equal_seen + __popc(equal_mask & below) < need_equal));
            const unsigned take_mask = __ballot_sync(0xffffffffu, take);
            if (take) out[head + written + __popc(take_mask & below)] = b;
            written += __popc(take_mask);
            equal_seen += __popc(equal_mask);
        };
        if (in_smem) {
            for (int base = 0; base < n; base += 32) {
                const int i = base + lane;
                emit(i < n, i < n ? my_id[i] : 0, i < n ? my_key[i] : 0u);
            }
        } else {
            for (int base = head; base < local; base += 32) {
                const int b = base + lane;
                emit(b < local, b, b < local ? order_key(s[b]) : 0u);
            }
        }
    }
    warp_write_forced(out, slots, local, head, cap);
}

}  // namespace msa::kern
