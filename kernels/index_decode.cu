// Decode index scoring: one warp per key block, keys streamed into mma.sync
// fragments (see index_decode.cuh for the layout).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "kernels/cuda_check.h"
#include "kernels/index_decode.cuh"
#include "kernels/index_select.cuh"

namespace msa::kern {

namespace {

constexpr int kWarps = 4;

__device__ __forceinline__ uint4 load_stream16(const bf16* p) {
    // Read once: keep it out of L1 and first in line for L2 eviction.
    return __ldcs(reinterpret_cast<const uint4*>(p));
}

// One n-tile's m16n8 scores (rows m, m + 8; keys 2c, 2c + 1) from this lane's
// J 16-byte pieces of its key, in the dimension permutation of index_decode.cuh.
template <int J>
__device__ __forceinline__ void ntile_scores(float (&d)[4], const uint4 (&qa)[J], const uint4 (&qb)[J],
                                             const uint4 (&kv)[J]) {
    d[0] = d[1] = d[2] = d[3] = 0.f;
#pragma unroll
    for (int j = 0; j < J; ++j) {
        const uint32_t lo[4] = {qa[j].x, qb[j].x, qa[j].y, qb[j].y};
        const uint32_t hi[4] = {qa[j].z, qb[j].z, qa[j].w, qb[j].w};
        mma_16816(d, lo, kv[j].x, kv[j].y);
        mma_16816(d, hi, kv[j].z, kv[j].w);
    }
}

// Pools an n-tile's scores into rows a and b; with need_mask, keys at or past
// k1 or after a row's position count as empty. key = the lane's first key.
__device__ __forceinline__ void pool_ntile(float& acc_a, float& acc_b, const float (&d)[4], bool need_mask, int key,
                                           int k1, int pos_a, int pos_b, bool max_pool, float empty) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        float xa = d[e], xb = d[2 + e];
        if (need_mask) {
            xa = key + e < k1 && key + e <= pos_a ? xa : empty;
            xb = key + e < k1 && key + e <= pos_b ? xb : empty;
        }
        acc_a = max_pool ? fmaxf(acc_a, xa) : acc_a + xa;
        acc_b = max_pool ? fmaxf(acc_b, xb) : acc_b + xb;
    }
}

// A row's best eligible block so far (score desc, id asc).
struct RowBest {
    float score = 0.f;
    int block = INT_MAX;
};

// Block b's pooled scores of rows a and b (quad-reduced here) into scores[],
// and into the rows' bests where b is eligible (before the row's own block,
// not the forced sink).
template <bool HI>
__device__ __forceinline__ void write_block_scores(const IndexTopkOp& op, float* scores, int nb, int b, int k0, int k1,
                                                   int m, bool va, bool vb, int pos_a, int pos_b, float acc_a,
                                                   float acc_b, RowBest& best_a, RowBest& best_b) {
    const int kh = blockIdx.y, gpk = op.n_groups / op.n_key_heads;
    const bool max_pool = op.pool == IndexPool::max;
    acc_a = max_pool ? quad_max(acc_a) : quad_sum(acc_a);
    if (HI) acc_b = max_pool ? quad_max(acc_b) : quad_sum(acc_b);
    if (threadIdx.x % 4 != 0) return;
    auto finish = [&](int row, int pos, float pooled, RowBest& best) {
        float score = -INFINITY;
        if (b <= pos / op.block) {
            score = pooled * op.scale;
            if (!max_pool) score /= static_cast<float>(max(1, min(k1, pos + 1) - k0));
        }
        const int t = row / gpk, g = kh * gpk + row % gpk;
        scores[(static_cast<long>(t) * op.n_groups + g) * nb + b] = score;
        if (b < pos / op.block && !(op.sink && b == 0) && ranks_before(score, b, best.score, best.block)) {
            best.score = score;
            best.block = b;
        }
    };
    if (va) finish(m, pos_a, acc_a, best_a);
    if (vb) finish(m + 8, pos_b, acc_b, best_b);
}

// This warp's bests of rows m and m + 8 into bests (lanes c == 0).
__device__ __forceinline__ void write_warp_bests(const IndexTopkOp& op, const DecodeBests& bests, int warp, int m,
                                                 bool va, bool vb, const RowBest& best_a, const RowBest& best_b) {
    if (!bests.score || threadIdx.x % 4 != 0) return;
    const int kh = blockIdx.y, gpk = op.n_groups / op.n_key_heads;
    auto put = [&](int row, const RowBest& best) {
        const long at = (static_cast<long>(row / gpk) * op.n_groups + kh * gpk + row % gpk) * bests.stride + warp;
        bests.score[at] = best.score;
        bests.block[at] = best.block;
    };
    if (va) put(m, best_a);
    if (vb) put(m + 8, best_b);
}

// This lane's two rows of the m16 tile, m and m + 8, and their q pieces:
// (token, group) = (row / gpk, kh * gpk + row % gpk) for key head kh = blockIdx.y.
template <int J>
struct DecodeRows {
    bool va = false, vb = false;
    int pos_a = 0, pos_b = 0;
    uint4 qa[J], qb[J];
    template <int D, bool HI>
    __device__ __forceinline__ void load(const IndexTopkOp& op, int m, int c) {
        const int kh = blockIdx.y, gpk = op.n_groups / op.n_key_heads, rows = op.n_q * gpk;
        auto row_ptr = [&](int row) {
            const int t = row / gpk, g = kh * gpk + row % gpk;
            return op.q + (static_cast<long>(t) * op.n_groups + g) * D + 8 * c;
        };
        va = m < rows;
        vb = HI && m + 8 < rows;
        pos_a = op.q_offset + (va ? m / gpk : 0);
        pos_b = op.q_offset + (vb ? (m + 8) / gpk : 0);
#pragma unroll
        for (int j = 0; j < J; ++j) {
            qa[j] = va ? *reinterpret_cast<const uint4*>(row_ptr(m) + 32 * j) : make_uint4(0, 0, 0, 0);
            qb[j] = vb ? *reinterpret_cast<const uint4*>(row_ptr(m + 8) + 32 * j) : make_uint4(0, 0, 0, 0);
        }
    }
};

// STEP n-tiles (8 keys each) loaded before the first MMA: STEP * D / 32
// 16-byte loads in flight per lane. HI: rows 8..15 exist (more than 8 rows).
template <int D, int STEP, bool HI>
__global__ void __launch_bounds__(kWarps * 32) index_decode_kernel(const IndexTopkOp op, float* scores, int nb,
                                                                 int blocks_per_warp, unsigned* counters,
                                                                 int n_counters, const DecodeBests bests) {
    allow_dependent_launch();  // the top-k waits for this grid's completion anyway
    if (blockIdx.x == 0 && blockIdx.y == 0)
        for (int i = threadIdx.x; i < n_counters; i += blockDim.x) counters[i] = 0;
    constexpr int J = D / 32;  // 16-byte loads per lane per key
    const int lane = threadIdx.x % 32, c = lane % 4, m = lane / 4;
    const int kh = blockIdx.y;
    const long kstride = static_cast<long>(op.n_key_heads) * D;
    const bf16* kbase = op.k + static_cast<long>(kh) * D + 8 * c;
    DecodeRows<J> rows;
    rows.template load<D, HI>(op, m, c);
    const bool va = rows.va, vb = rows.vb;
    const int pos_a = rows.pos_a, pos_b = rows.pos_b;
    const uint4(&qa)[J] = rows.qa;
    const uint4(&qb)[J] = rows.qb;
    const float empty = op.pool == IndexPool::max ? -INFINITY : 0.f;
    const int pos_first = op.q_offset;  // the earliest row's position

    const int warp = blockIdx.x * kWarps + threadIdx.x / 32;
    const int b_begin = warp * blocks_per_warp, b_end = min(nb, b_begin + blocks_per_warp);
    RowBest best_a, best_b;
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
                float d[4];
                ntile_scores<J>(d, qa, qb, kv[s]);
                pool_ntile(acc_a, acc_b, d, need_mask, k0 + (nt0 + s) * 8 + 2 * c, k1, pos_a, pos_b,
                           op.pool == IndexPool::max, empty);
            }
        }
        write_block_scores<HI>(op, scores, nb, b, k0, k1, m, va, vb, pos_a, pos_b, acc_a, acc_b, best_a, best_b);
    }
    if (b_begin < b_end) write_warp_bests(op, bests, warp, m, va, vb, best_a, best_b);
}

// The same scores with the keys streamed through shared memory by bulk copies
// (sm_90a): each warp owns a ring of kBulkStages stages of 64 keys, its lane
// 0 arms a stage's mbarrier and starts its copy, and the warp refills a stage
// as soon as it has read it (no other warp touches the ring, so __syncwarp is
// the release). Why: the register-streaming kernel above holds at most STEP
// n-tiles per warp in flight and none while it computes, and ran at 3.4-3.6
// TB/s at 1M (CUPTI 72-81 us for 256 MiB, DRAM floor 62 us at 4.3 TB/s);
// here 3 x 16 KiB per warp stay in flight through the MMAs. Measured (H200,
// 1M): 71.3-73.1 us vs 76.4-76.8 for the register kernel in the same calls,
// 3.7 TB/s; with 24 MiB in flight, bytes in flight are no longer the bound
// (NOTES_cuda.md step 42). Needs one key head (a chunk of keys is then
// contiguous) and block % 64 == 0.
constexpr int kBulkKeys = 64, kBulkStages = 3;
template <int D>
constexpr size_t bulk_smem_bytes() {
    return static_cast<size_t>(kWarps) * kBulkStages * (kBulkKeys * D * sizeof(bf16) + sizeof(uint64_t));
}

template <int D, bool HI>
__global__ void __launch_bounds__(kWarps * 32, 1) index_decode_bulk_kernel(const IndexTopkOp op, float* scores, int nb,
                                                                          int blocks_per_warp, unsigned* counters,
                                                                          int n_counters, const DecodeBests bests) {
#if defined(MSA_HAVE_WGMMA)
    allow_dependent_launch();
    if (blockIdx.x == 0 && blockIdx.y == 0)
        for (int i = threadIdx.x; i < n_counters; i += blockDim.x) counters[i] = 0;
    constexpr int J = D / 32, STAGE = kBulkKeys * D;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x % 32, c = lane % 4, m = lane / 4, wib = threadIdx.x / 32;
    bf16* ring = reinterpret_cast<bf16*>(smem_raw) + wib * kBulkStages * STAGE;
    uint64_t* full = reinterpret_cast<uint64_t*>(reinterpret_cast<bf16*>(smem_raw) + kWarps * kBulkStages * STAGE) +
                     wib * kBulkStages;
    DecodeRows<J> rows;
    rows.template load<D, HI>(op, m, c);
    const float empty = op.pool == IndexPool::max ? -INFINITY : 0.f;
    const bool max_pool = op.pool == IndexPool::max;

    const int warp = blockIdx.x * kWarps + wib;
    const int b_begin = warp * blocks_per_warp, b_end = min(nb, b_begin + blocks_per_warp);
    const int key_lo = b_begin * op.block, key_hi = min(b_end * op.block, op.n_kv);
    const int n_chunks = b_begin < b_end ? (key_hi - key_lo + kBulkKeys - 1) / kBulkKeys : 0;
    const int cpb = op.block / kBulkKeys;
    if (lane == 0) {
        for (int s = 0; s < kBulkStages; ++s) mbar_init(full + s, 1);
        fence_mbarrier_init();
    }
    __syncwarp();
    auto issue = [&](int i) {
        const int k0 = key_lo + i * kBulkKeys;
        const unsigned bytes = static_cast<unsigned>(min(kBulkKeys, key_hi - k0)) * D * sizeof(bf16);
        bulk_load_if(lane == 0 && i < n_chunks, full + i % kBulkStages, ring + (i % kBulkStages) * STAGE,
                     op.k + static_cast<long>(k0) * D, bytes);
    };
#pragma unroll
    for (int i = 0; i < kBulkStages; ++i) issue(i);
    float acc_a = empty, acc_b = empty;
    RowBest best_a, best_b;
    for (int i = 0; i < n_chunks; ++i) {
        const int k0 = key_lo + i * kBulkKeys, k1 = min(k0 + kBulkKeys, key_hi);
        const int b = k0 / op.block;
        // A chunk past the earliest row's position or short of 64 keys needs
        // the per-key test (its rows past k1 hold stale bytes: masked, never
        // multiplied into a kept score).
        const bool need_mask = k1 - 1 > op.q_offset || k1 - k0 < kBulkKeys;
        mbar_wait(full + i % kBulkStages, (i / kBulkStages) & 1);
        const bf16* st = ring + (i % kBulkStages) * STAGE + m * D + 8 * c;
#pragma unroll
        for (int nt = 0; nt < kBulkKeys / 8; ++nt) {
            uint4 kv[J];
#pragma unroll
            for (int j = 0; j < J; ++j) kv[j] = *reinterpret_cast<const uint4*>(st + nt * 8 * D + 32 * j);
            float d[4];
            ntile_scores<J>(d, rows.qa, rows.qb, kv);
            pool_ntile(acc_a, acc_b, d, need_mask, k0 + nt * 8 + 2 * c, k1, rows.pos_a, rows.pos_b, max_pool, empty);
        }
        __syncwarp();  // every lane has read the stage
        issue(i + kBulkStages);
        if ((i + 1) % cpb == 0 || i + 1 == n_chunks) {
            write_block_scores<HI>(op, scores, nb, b, b * op.block, min(b * op.block + op.block, op.n_kv), m, rows.va,
                                   rows.vb, rows.pos_a, rows.pos_b, acc_a, acc_b, best_a, best_b);
            acc_a = acc_b = empty;
        }
    }
    if (n_chunks > 0) write_warp_bests(op, bests, warp, m, rows.va, rows.vb, best_a, best_b);
#else
    __trap();  // the launcher takes this path only where sm_90a code exists
#endif
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

// MSA_INDEX_DECODE=registers: the register-streaming kernel where the bulk one
// would run (to measure against).
bool bulk_allowed(const IndexTopkOp& op) {
    static const bool on = [] {
        const char* e = std::getenv("MSA_INDEX_DECODE");
        return !(e && std::string(e) == "registers") && wgmma_available();
    }();
    return on && op.n_key_heads == 1 && op.block % kBulkKeys == 0;
}

using DecodeKernel = void (*)(IndexTopkOp, float*, int, int, unsigned*, int, DecodeBests);
struct DecodeChoice {
    DecodeKernel kernel;
    size_t smem;
};
template <int D>
DecodeChoice choose(const IndexTopkOp& op) {
    const bool hi = op.n_q * (op.n_groups / op.n_key_heads) > 8;
    if (bulk_allowed(op))
        return {hi ? index_decode_bulk_kernel<D, true> : index_decode_bulk_kernel<D, false>, bulk_smem_bytes<D>()};
    if (hi) return {index_decode_kernel<D, 4, true>, 0};
    return {deep_step() ? index_decode_kernel<D, 8, false> : index_decode_kernel<D, 4, false>, 0};
}
DecodeChoice choose_for(const IndexTopkOp& op) {
    if (op.dim == 128) return choose<128>(op);
    if (op.dim == 64) return choose<64>(op);
    throw InputError("cuda decode index: dim " + std::to_string(op.dim) + " not supported (64 or 128)");
}

// Resident CTAs per SM of each kernel, asked once (a host call of a few
// microseconds that decode steps would otherwise pay every token).
int resident_ctas(const DecodeChoice& c) {
    static std::mutex mutex;
    static std::vector<std::pair<DecodeKernel, int>> known;
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& k : known)
        if (k.first == c.kernel) return k.second;
    if (c.smem > 48 * 1024)
        MSA_CUDA_CHECK(cudaFuncSetAttribute(c.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(c.smem)));
    int n = 0;
    MSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, c.kernel, kWarps * 32, c.smem));
    known.emplace_back(c.kernel, std::max(1, n));
    return known.back().second;
}

// As many blocks per warp as one resident wave needs, then as few warps as
// that takes: every warp gets the same count (no tail of half-idle SMs).
DecodeSplit split_for(const IndexTopkOp& op, const DecodeChoice& c) {
    const int nb = (op.n_kv + op.block - 1) / op.block;
    const long resident_warps = std::max(1L, static_cast<long>(resident_ctas(c)) * sm_count() * kWarps / op.n_key_heads);
    DecodeSplit s;
    s.blocks_per_warp = static_cast<int>(std::max<long>(1, (nb + resident_warps - 1) / resident_warps));
    s.warps = (nb + s.blocks_per_warp - 1) / s.blocks_per_warp;
    return s;
}

}  // namespace

DecodeSplit index_decode_split(const IndexTopkOp& op) { return split_for(op, choose_for(op)); }

void index_decode_scores_launch(const IndexTopkOp& op, float* scores, cudaStream_t stream, unsigned* counters,
                                int n_counters, DecodeBests bests) {
    const int rows = op.n_q * (op.n_groups / op.n_key_heads);
    if (rows > kIndexDecodeRows) throw InputError("cuda decode index: more than 16 rows per key head");
    if (op.pool != IndexPool::max && op.pool != IndexPool::mean)
        throw InputError("cuda decode index: max or mean pooling only");
    const int nb = (op.n_kv + op.block - 1) / op.block;
    const DecodeChoice c = choose_for(op);
    const DecodeSplit s = split_for(op, c);
    const dim3 grid((s.warps + kWarps - 1) / kWarps, op.n_key_heads);
    c.kernel<<<grid, kWarps * 32, c.smem, stream>>>(op, scores, nb, s.blocks_per_warp, counters, n_counters, bests);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
