// Decode index scoring: one warp per key block, keys streamed into mma.sync
// fragments (see index_decode.cuh for the layout).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/errors.h"
#include "kernels/cuda_check.h"
#include "kernels/index_decode.cuh"

namespace msa::kern {

namespace {

constexpr int kWarps = 4;

__device__ __forceinline__ uint4 load_stream16(const bf16* p) {
    // Read once: keep it out of L1 and first in line for L2 eviction.
    return __ldcs(reinterpret_cast<const uint4*>(p));
}

// STEP n-tiles (8 keys each) loaded before the first MMA: STEP * D / 32
// 16-byte loads in flight per lane. HI: rows 8..15 exist (more than 8 rows).
template <int D, int STEP, bool HI>
__global__ void __launch_bounds__(kWarps * 32) index_decode_kernel(const IndexTopkOp op, float* scores, int nb,
                                                                 int blocks_per_warp, unsigned* counters,
                                                                 int n_counters) {
    allow_dependent_launch();  // the top-k waits for this grid's completion anyway
    if (blockIdx.x == 0 && blockIdx.y == 0)
        for (int i = threadIdx.x; i < n_counters; i += blockDim.x) counters[i] = 0;
    constexpr int J = D / 32;  // 16-byte loads per lane per key
    const int lane = threadIdx.x % 32, c = lane % 4, m = lane / 4;
    const int kh = blockIdx.y;
    const int gpk = op.n_groups / op.n_key_heads;
    const int rows = op.n_q * gpk;
    const long kstride = static_cast<long>(op.n_key_heads) * D;
    const bf16* kbase = op.k + static_cast<long>(kh) * D + 8 * c;

    // Rows m and m + 8 of the m16 tile: (token, group) = (row / gpk, kh * gpk + row % gpk).
    auto row_ptr = [&](int row) {
        const int t = row / gpk, g = kh * gpk + row % gpk;
        return op.q + (static_cast<long>(t) * op.n_groups + g) * D + 8 * c;
    };
    const bool va = m < rows, vb = HI && m + 8 < rows;
    const int pos_a = op.q_offset + (va ? m / gpk : 0);
    const int pos_b = op.q_offset + (vb ? (m + 8) / gpk : 0);
    uint4 qa[J], qb[J];
#pragma unroll
    for (int j = 0; j < J; ++j) {
        qa[j] = va ? *reinterpret_cast<const uint4*>(row_ptr(m) + 32 * j) : make_uint4(0, 0, 0, 0);
        qb[j] = vb ? *reinterpret_cast<const uint4*>(row_ptr(m + 8) + 32 * j) : make_uint4(0, 0, 0, 0);
    }
    const float empty = op.pool == IndexPool::max ? -INFINITY : 0.f;
    const int pos_first = op.q_offset;  // the earliest row's position

    const int warp = blockIdx.x * kWarps + threadIdx.x / 32;
    const int b_begin = warp * blocks_per_warp, b_end = min(nb, b_begin + blocks_per_warp);
    for (int b = b_begin; b < b_end; ++b) {
        const int k0 = b * op.block, k1 = min(k0 + op.block, op.n_kv);
        const int n_tiles = (k1 - k0 + 7) / 8;
        // Only a block reaching past the earliest row's position, or ending
        // inside an n-tile, needs the per-key test.
        const bool need_mask = k1 - 1 > pos_first || (k1 - k0) % 8 != 0;
        float acc_a = empty, acc_b = empty;
        for (int nt0 = 0; nt0 < n_tiles; nt0 += STEP) {
            uint4 kv[STEP][J];
#pragma unroll
            for (int s = 0; s < STEP; ++s) {
                // Past the block's end: re-read its last key (masked below) rather than branch.
                const int key = min(k0 + (nt0 + s) * 8 + m, k1 - 1);
#pragma unroll
                for (int j = 0; j < J; ++j) kv[s][j] = load_stream16(kbase + key * kstride + 32 * j);
            }
#pragma unroll
            for (int s = 0; s < STEP; ++s) {
                float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int j = 0; j < J; ++j) {
                    const uint32_t lo[4] = {qa[j].x, qb[j].x, qa[j].y, qb[j].y};
                    const uint32_t hi[4] = {qa[j].z, qb[j].z, qa[j].w, qb[j].w};
                    mma_16816(d, lo, kv[s][j].x, kv[s][j].y);
                    mma_16816(d, hi, kv[s][j].z, kv[s][j].w);
                }
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float xa = d[e], xb = d[2 + e];
                    if (need_mask) {
                        const int key = k0 + (nt0 + s) * 8 + 2 * c + e;
                        xa = key < k1 && key <= pos_a ? xa : empty;
                        xb = key < k1 && key <= pos_b ? xb : empty;
                    }
                    if (op.pool == IndexPool::max) {
                        acc_a = fmaxf(acc_a, xa);
                        acc_b = fmaxf(acc_b, xb);
                    } else {
                        acc_a += xa;
                        acc_b += xb;
                    }
                }
            }
        }
        if (op.pool == IndexPool::max) {
            acc_a = quad_max(acc_a);
            if (HI) acc_b = quad_max(acc_b);
        } else {
            acc_a = quad_sum(acc_a);
            if (HI) acc_b = quad_sum(acc_b);
        }
        if (c != 0) continue;
        auto finish = [&](int row, int pos, float pooled) {
            float score = -INFINITY;
            if (b <= pos / op.block) {
                score = pooled * op.scale;
                if (op.pool == IndexPool::mean) score /= static_cast<float>(max(1, min(k1, pos + 1) - k0));
            }
            const int t = row / gpk, g = kh * gpk + row % gpk;
            scores[(static_cast<long>(t) * op.n_groups + g) * nb + b] = score;
        };
        if (va) finish(m, pos_a, acc_a);
        if (vb) finish(m + 8, pos_b, acc_b);
    }
}

template <int D, int STEP, bool HI>
void launch(const IndexTopkOp& op, float* scores, int nb, cudaStream_t stream, unsigned* counters, int n_counters) {
    constexpr auto kernel = index_decode_kernel<D, STEP, HI>;
    static const int ctas_per_sm = [] {
        int n = 0;
        MSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kWarps * 32, 0));
        return std::max(1, n);
    }();
    // As many blocks per warp as one resident wave needs, then as few warps as
    // that takes: every warp gets the same count (no tail of half-idle SMs).
    const long resident_warps = static_cast<long>(ctas_per_sm) * sm_count() * kWarps / op.n_key_heads;
    const int per_warp = static_cast<int>(std::max<long>(1, (nb + resident_warps - 1) / std::max(1L, resident_warps)));
    const int warps = (nb + per_warp - 1) / per_warp;
    dim3 grid((warps + kWarps - 1) / kWarps, op.n_key_heads);
    kernel<<<grid, kWarps * 32, 0, stream>>>(op, scores, nb, per_warp, counters, n_counters);
    MSA_CUDA_CHECK(cudaGetLastError());
}

// MSA_INDEX_DECODE_STEP=8: twice the loads in flight per warp (at about twice
// the registers, so fewer warps per SM), to measure against the default 4.
bool deep_step() {
    static const bool v = [] {
        const char* e = std::getenv("MSA_INDEX_DECODE_STEP");
        return e && std::string(e) == "8";
    }();
    return v;
}

template <int D>
void dispatch(const IndexTopkOp& op, float* scores, int nb, cudaStream_t stream, unsigned* counters, int n_counters) {
    const int rows = op.n_q * (op.n_groups / op.n_key_heads);
    if (rows > 8)
        launch<D, 4, true>(op, scores, nb, stream, counters, n_counters);
    else if (deep_step())
        launch<D, 8, false>(op, scores, nb, stream, counters, n_counters);
    else
        launch<D, 4, false>(op, scores, nb, stream, counters, n_counters);
}

}  // namespace

void index_decode_scores_launch(const IndexTopkOp& op, float* scores, cudaStream_t stream, unsigned* counters,
                                int n_counters) {
    const int rows = op.n_q * (op.n_groups / op.n_key_heads);
    if (rows > kIndexDecodeRows) throw InputError("cuda decode index: more than 16 rows per key head");
    if (op.pool != IndexPool::max && op.pool != IndexPool::mean)
        throw InputError("cuda decode index: max or mean pooling only");
    const int nb = (op.n_kv + op.block - 1) / op.block;
    if (op.dim == 128)
        dispatch<128>(op, scores, nb, stream, counters, n_counters);
    else if (op.dim == 64)
        dispatch<64>(op, scores, nb, stream, counters, n_counters);
    else
        throw InputError("cuda decode index: dim " + std::to_string(op.dim) + " not supported (64 or 128)");
}

}  // namespace msa::kern
