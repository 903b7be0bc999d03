// Index scoring + block pooling + top-k (see index_topk.cuh for the design).
#include <cuda/atomic>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdlib>
#include <string>

#include "core/errors.h"
#include "kernels/cuda_check.h"
#include "kernels/index_decode.cuh"
#include "kernels/index_pipelined.cuh"
#include "kernels/index_select.cuh"
#include "kernels/index_topk.cuh"
#include "kernels/topk_prefill.cuh"

namespace msa::kern {

// MT m16 tiles per warp: each K fragment read from shared memory feeds MT MMAs,
// which is what bounds this kernel at MT = 1 (one ldmatrix.x4 per two MMAs
// saturates the SM's 128 B/clk of shared-memory bandwidth before the tensor
// cores). Measured alternatives are in tests/bench/NOTES_cuda.md.
template <int D, int WARPS, int KN, int MT, int STAGES, bool WG = false, int MIN_CTAS = 1>
__global__ void __launch_bounds__(WARPS * 32, MIN_CTAS) index_topk_kernel(const IndexParams p) {
    static_assert(STAGES >= (WG ? 3 : 2), "at least double buffering (one more stage with wgmma in flight)");
    constexpr int NT = WARPS * 32;
    constexpr int ROWS = 16 * MT * WARPS;
    constexpr int R = 2 * MT;  // rows per thread
    extern __shared__ __align__(128) unsigned char smem_raw[];
    // wgmma's swizzle atoms need 1024-byte alignment (the launcher adds the slack).
    bf16* kt = reinterpret_cast<bf16*>(WG ? (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023)
                                          : reinterpret_cast<uintptr_t>(smem_raw));  // STAGES stages of [KN][D]
    float* cand_s = reinterpret_cast<float*>(kt + STAGES * KN * D);
    int32_t* cand_i = reinterpret_cast<int32_t*>(cand_s + ROWS * p.cand_cap);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kh = blockIdx.y;
    const int gpk = p.n_groups / p.n_key_heads;
    const int rows_total = p.n_q * gpk;
    const int tile = gridDim.x - 1 - blockIdx.x;
    const int row0 = tile * ROWS;
    const int tok_hi = (min(row0 + ROWS, rows_total) - 1) / gpk;
    const int pos_hi = p.q_offset + tok_hi;
    const int pos_lo = p.q_offset + row0 / gpk;
    const long kstride = static_cast<long>(p.n_key_heads) * D;
    const bf16* kbase = p.k + static_cast<long>(kh) * D;

    // Rows of this thread: r = 2 * mt + (0: lane / 4, 1: lane / 4 + 8) of m-tile mt.
    int lrow[R], tok[R], grp[R], pos[R], loc[R], cap[R], cnt[R];
    bool valid[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        lrow[r] = warp * 16 * MT + (r / 2) * 16 + lane / 4 + (r % 2) * 8;
        const int row = row0 + lrow[r];
        valid[r] = row < rows_total;
        tok[r] = valid[r] ? row / gpk : 0;
        grp[r] = kh * gpk + (valid[r] ? row % gpk : 0);
        pos[r] = p.q_offset + tok[r];
        loc[r] = pos[r] / p.block;
        cap[r] = max(0, p.k_top - forced_count(loc[r], p.sink));
        cnt[r] = 0;
    }

    uint32_t qf[MT][D / 16][4];
    {
        const int c = (lane % 4) * 2;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            const int ra = 2 * mt, rb = 2 * mt + 1;
            const bf16* qa = p.q + (static_cast<long>(tok[ra]) * p.n_groups + grp[ra]) * D;
            const bf16* qb = p.q + (static_cast<long>(tok[rb]) * p.n_groups + grp[rb]) * D;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                qf[mt][kk][0] = valid[ra] ? load_u32(qa + kk * 16 + c) : 0u;
                qf[mt][kk][1] = valid[rb] ? load_u32(qb + kk * 16 + c) : 0u;
                qf[mt][kk][2] = valid[ra] ? load_u32(qa + kk * 16 + 8 + c) : 0u;
                qf[mt][kk][3] = valid[rb] ? load_u32(qb + kk * 16 + 8 + c) : 0u;
            }
        }
    }

    // Blocks this CTA scores (a split takes a contiguous share).
    const int b_last = min(pos_hi / p.block, p.nb - 1);
    const int per = (b_last + 1 + p.n_splits - 1) / p.n_splits;
    const int b_lo = min(b_last + 1, static_cast<int>(blockIdx.z) * per);
    const int b_hi = min(b_last + 1, b_lo + per);  // exclusive
    const int cpb = (p.block + KN - 1) / KN;
    const int n_chunks = (b_hi - b_lo) * cpb;
    const bool lead = (lane % 4) == 0;
    const float empty = p.pool == 0 ? -INFINITY : 0.f;

    auto chunk_keys = [&](int i, int& k0, int& k1) {
        int b = b_lo + i / cpb, sub = i % cpb;
        k0 = b * p.block + sub * KN;
        k1 = min(min(b * p.block + p.block, p.n_kv), k0 + KN);
    };
    // STAGES - 1 chunks in flight ahead of the one being scored. Every step
    // commits a group, empty or not, so that wait_group<STAGES - 2> always means
    // "chunk i has landed".
    auto load_chunk = [&](int i) {
        if (i < n_chunks) {
            int k0, k1;
            chunk_keys(i, k0, k1);
            load_tile_async<D, NT, KN, WG>(kt + (i % STAGES) * KN * D, kbase + max(0, min(k0, p.n_kv - 1)) * kstride,
                                           kstride, k1 - k0);
        }
        cp_async_commit();
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) load_chunk(s);
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = empty;

    // The scale is applied once per pooled score, not per token score: for
    // max-pooling scale * max(x) rounds exactly like max(scale * x) (scale > 0
    // and rounding are monotonic); for mean-pooling the difference is rounding.
    auto finish_block = [&](int b, float pooled, int r) {
        if (!valid[r] || !lead) return;
        const bool visible = b <= loc[r];
        float score = -INFINITY;
        if (visible) {
            if (p.pool == 0) {
                score = pooled * p.scale;
            } else {
                int cntk = min(min(b * p.block + p.block, p.n_kv), pos[r] + 1) - b * p.block;
                score = pooled * p.scale / static_cast<float>(max(cntk, 1));
            }
        }
        if (p.scores) p.scores[(static_cast<long>(tok[r]) * p.n_groups + grp[r]) * p.nb + b] = score;
        if (p.sel && visible && b < loc[r] && !(p.sink && b == 0) && cap[r] > 0) {
            if (cnt[r] == cap[r] && !(score > cand_s[lrow[r] * p.cand_cap + cap[r] - 1])) return;
            insert_candidate(cand_s + lrow[r] * p.cand_cap, cand_i + lrow[r] * p.cand_cap, cnt[r], cap[r], score, b);
        }
    };

    // Pools chunk i's scores s into the rows' running block values, and after a
    // block's last chunk turns them into block scores / candidates.
    auto pool_chunk = [&](int i, float (&s)[MT][KN / 8][4]) {
        int k0, k1;
        chunk_keys(i, k0, k1);
        // Only chunks reaching past the CTA's first position or short of KN keys
        // need the per-key test; elsewhere pooling is one max/add per score.
        const bool need_mask = (k1 - k0 < KN) || (k1 - 1 > pos_lo);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int j = 0; j < KN / 8; ++j) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = 2 * mt + (e >> 1);
                    float x = s[mt][j][e];
                    if (need_mask) {
                        int key = k0 + j * 8 + (lane % 4) * 2 + (e & 1);
                        bool ok = key < k1 && key <= pos[r];
                        x = ok ? x : empty;
                    }
                    acc[r] = p.pool == 0 ? fmaxf(acc[r], x) : acc[r] + x;
                }
            }
        }
        if ((i + 1) % cpb == 0) {
            const int b = b_lo + i / cpb;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                acc[r] = p.pool == 0 ? quad_max(acc[r]) : quad_sum(acc[r]);
                finish_block(b, acc[r], r);
                acc[r] = empty;
            }
        }
    };

    if constexpr (!WG) {
        for (int i = 0; i < n_chunks; ++i) {
            cp_async_wait<STAGES - 2>();
            // One barrier per chunk: chunk i is visible to all, and every warp is
            // done with chunk i - 1, whose stage the next load overwrites.
            __syncthreads();
            load_chunk(i + STAGES - 1);
            // A warp whose rows all lie past the last row (decode: one token's
            // few rows in a 64-row tile) only helps stage the keys.
            if (row0 + warp * 16 * MT >= rows_total) continue;
            const bf16* ks = kt + (i % STAGES) * KN * D;

            float s[MT][KN / 8][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int j = 0; j < KN / 8; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
                for (int np = 0; np < KN / 16; ++np) {
                    uint32_t b[4];
                    int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
                    int col = kk * 16 + ((lane >> 3) & 1) * 8;
                    ldmatrix_x4(b, smem_addr(ks + swz<D>(key, col)));
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma_16816(s[mt][2 * np], qf[mt][kk], b[0], b[1]);
                        mma_16816(s[mt][2 * np + 1], qf[mt][kk], b[2], b[3]);
                    }
                }
            }
            pool_chunk(i, s);
        }
    } else {
#if defined(MSA_HAVE_WGMMA)
        // The warpgroup's tensor cores score chunk i + 1 (asynchronously, into
        // the other accumulator set) while the warps pool chunk i: the pooling
        // and top-k bookkeeping, not the MMAs, bound the mma.sync version.
        static_assert(MT == 1 && WARPS % 4 == 0 && KN == 64, "wgmma tile: whole warpgroups, m64n64 each");
        auto issue = [&](int i, float (&s)[1][KN / 8][4]) {
            const bf16* ks = kt + (i % STAGES) * KN * D;
#pragma unroll
            for (int j = 0; j < KN / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) fence_operand(s[0][j][e]);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk)
                wgmma_m64n64k16(s[0], qf[0][kk], sw128_desc(ks + (kk / 4) * KN * 64) + 2 * (kk % 4), kk > 0);
            wgmma_commit();
        };
        // After a wgmma wait: pin the accumulators below it, then pool them.
        auto pool_landed = [&](int i, float (&cur)[1][KN / 8][4]) {
#pragma unroll
            for (int j = 0; j < KN / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) fence_operand(cur[0][j][e]);
            pool_chunk(i, cur);
        };
        // Chunk i + 1 landed: with STAGES - 1 groups in the prologue and one per
        // step, STAGES - 3 may stay pending.
        auto step = [&](int i, float (&cur)[1][KN / 8][4], float (&next)[1][KN / 8][4]) {
            cp_async_wait<STAGES - 3>();
            fence_proxy_async();
            // Everyone's copies of chunk i + 1 are in, and every thread has
            // waited for wgmma(i - 1), so chunk i - 1's stage can be refilled.
            __syncthreads();
            load_chunk(i + STAGES - 1);
            issue(i + 1, next);
            wgmma_wait<1>();
            pool_landed(i, cur);
        };
        auto last_step = [&](int i, float (&cur)[1][KN / 8][4]) {
            wgmma_wait<0>();
            pool_landed(i, cur);
        };
        float sa[1][KN / 8][4], sb[1][KN / 8][4];
        if (n_chunks > 0) {
            cp_async_wait<STAGES - 2>();
            fence_proxy_async();
            __syncthreads();
            ping_pong_chunks(n_chunks, sa, sb, issue, step, last_step);
        }
#else
        __trap();  // the launcher takes this path only where sm_90a code exists
#endif
    }
    cp_async_wait<0>();

    if (!lead) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (!valid[r]) continue;
        const long row_off = static_cast<long>(tok[r]) * p.n_groups + grp[r];
        if (p.scores && blockIdx.z == gridDim.z - 1)
            for (int b = b_hi; b < p.nb; ++b) p.scores[row_off * p.nb + b] = -INFINITY;
        if (p.sel)
            write_selection(p.sel + row_off * p.slots, p.slots, loc[r], p.k_top, p.sink,
                            cand_i + lrow[r] * p.cand_cap, cnt[r]);
    }
}

// ---- quest / random: score every (row, block) with CUDA cores ------------------

// Per (key head, block, channel) min and max of the keys of the whole block.
__global__ void key_bounds_kernel(const bf16* k, int n_kv, int n_key_heads, int dim, int block, int nb, float* kmin,
                                  float* kmax) {
    long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
    long total = static_cast<long>(n_key_heads) * nb * dim;
    if (i >= total) return;
    int c = static_cast<int>(i % dim);
    int b = static_cast<int>((i / dim) % nb);
    int kh = static_cast<int>(i / (static_cast<long>(dim) * nb));
    float lo = INFINITY, hi = -INFINITY;
    int end = min(b * block + block, n_kv);
    for (int j = b * block; j < end; ++j) {
        float x = __bfloat162float(k[(static_cast<long>(j) * n_key_heads + kh) * dim + c]);
        lo = fminf(lo, x);
        hi = fmaxf(hi, x);
    }
    kmin[i] = lo;
    kmax[i] = hi;
}

// splitmix64 finaliser; must match the CPU reference's hash (core/msa.cpp).
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
// Same as core/msa.cpp random_block_score: 24 random bits, exact in float.
__device__ __forceinline__ float random_block_score(uint64_t seed, int t, int g, int b) {
    uint64_t h = mix64(seed);
    h = mix64(h ^ static_cast<uint32_t>(t));
    h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(g)) << 32 | static_cast<uint32_t>(b)));
    return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

// One thread per (row, block). Quest: sum_c max(q_c * kmin_c, q_c * kmax_c) * scale,
// the bounds of the local block taken over its visible keys only.
__global__ void block_scores_simple_kernel(IndexTopkOp op, int nb, const float* kmin, const float* kmax) {
    long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
    long total = static_cast<long>(op.n_q) * op.n_groups * nb;
    if (i >= total) return;
    int b = static_cast<int>(i % nb);
    long row = i / nb;
    int g = static_cast<int>(row % op.n_groups);
    int t = static_cast<int>(row / op.n_groups);
    int pos = op.q_offset + t;
    int loc = pos / op.block;
    float score = -INFINITY;
    if (b <= loc) {
        if (op.pool == IndexPool::random) {
            score = random_block_score(op.seed, pos, g, b);
        } else {
            int kh = op.n_key_heads == 1 ? 0 : g;
            const bf16* q = op.q + row * op.dim;
            float acc = 0.f;
            if (b < loc) {
                const float* lo = kmin + (static_cast<long>(kh) * nb + b) * op.dim;
                const float* hi = kmax + (static_cast<long>(kh) * nb + b) * op.dim;
                for (int c = 0; c < op.dim; ++c) {
                    float x = __bfloat162float(q[c]);
                    acc += fmaxf(x * lo[c], x * hi[c]);
                }
            } else {
                for (int c = 0; c < op.dim; ++c) {
                    float lo = INFINITY, hi = -INFINITY;
                    for (int j = b * op.block; j <= pos && j < op.n_kv; ++j) {
                        float y = __bfloat162float(op.k[(static_cast<long>(j) * op.n_key_heads + kh) * op.dim + c]);
                        lo = fminf(lo, y);
                        hi = fmaxf(hi, y);
                    }
                    float x = __bfloat162float(q[c]);
                    acc += fmaxf(x * lo, x * hi);
                }
            }
            score = acc * op.scale;
        }
    }
    op.scores[i] = score;
}

__device__ __forceinline__ void warp_best(float& bs, int& bi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float os = __shfl_xor_sync(0xffffffffu, bs, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ranks_before(os, oi, bs, bi)) {
            bs = os;
            bi = oi;
        }
    }
}

// One warp picks the `cap` best entries, by (score desc, id asc), of s/id[0..n)
// in shared memory (id INT_MAX = empty) into out_s/out_i, sorted; returns how
// many. The entries are compacted in place (s/id are clobbered).
//
// Why not `cap` tournament rounds (the parts kernel below): each round is a
// chain of 5 dependent shuffles, and 2 x 15 rounds made the decode top-k one
// warp's ~3,000-instruction dependency chain (ncu: 21 us at 1M, 5.8 cycles per
// issued instruction). Here the chain is short: the cap-th best of the 32
// lanes' own bests is a threshold at or below the cap-th best entry (cap lanes
// hold an entry at least that good), the entries at or above it are the only
// candidates (a handful on real scores), and each candidate's rank is a count
// over the candidates, all lanes in parallel.
__device__ int warp_select_top(float* s, int* id, int n, int cap, float* out_s, int* out_i) {
    if (cap <= 0) return 0;
    const int lane = threadIdx.x % 32;
    float bs = 0.f;
    int bi = INT_MAX;
#pragma unroll 4
    for (int j = lane; j < n; j += 32)
        if (ranks_before(s[j], id[j], bs, bi)) {
            bs = s[j];
            bi = id[j];
        }
    int rank = 0;
#pragma unroll 8
    for (int o = 0; o < 32; ++o) rank += ranks_before(__shfl_sync(0xffffffffu, bs, o), __shfl_sync(0xffffffffu, bi, o), bs, bi);
    float ts = 0.f;
    int ti = INT_MAX;  // no threshold: fewer than cap entries, all are candidates
    if (__popc(__ballot_sync(0xffffffffu, bi != INT_MAX)) >= cap) {
        const int src = __ffs(__ballot_sync(0xffffffffu, bi != INT_MAX && rank == cap - 1)) - 1;
        ts = __shfl_sync(0xffffffffu, bs, src);
        ti = __shfl_sync(0xffffffffu, bi, src);
    }
    int n_cand = 0;
    for (int base = 0; base < n; base += 32) {
        const int j = base + lane;
        float x = 0.f;
        int xi = INT_MAX;
        if (j < n) {
            x = s[j];
            xi = id[j];
        }
        const bool keep = xi != INT_MAX && (ti == INT_MAX || !ranks_before(ts, ti, x, xi));
        const unsigned m = __ballot_sync(0xffffffffu, keep);  // every lane has read its entry
        if (keep) {
            const int at = n_cand + __popc(m & ((1u << lane) - 1u));  // at <= j: in place is safe
            s[at] = x;
            id[at] = xi;
        }
        n_cand += __popc(m);
    }
    __syncwarp();
    for (int c = lane; c < n_cand; c += 32) {
        const float x = s[c];
        const int xi = id[c];
        int r = 0;
#pragma unroll 4
        for (int d = 0; d < n_cand; ++d) r += ranks_before(s[d], id[d], x, xi);
        if (r < cap) {
            out_s[r] = x;
            out_i[r] = xi;
        }
    }
    __syncwarp();
    return min(n_cand, cap);
}

// Decode top-k, spread over the SMs: part p of a row is one warp over 256 of
// its blocks, which picks its best `cap` (warp_select_top) and writes them
// out; the row's last part to finish (an atomic count) picks the row's best
// `cap` from the parts' lists the same way and writes the selection.
// Measured on the H200 at 1M (32 parts x 4 rows): 21 us with an 8-value sort
// per lane and `cap` tournament rounds per part and again in the merge (one
// warp's dependency chain, ncu: 5.8 cycles per issued instruction); one
// 1024-thread CTA per row with warp_select_top took twice that (4 SMs do all
// the work). This version (CUPTI): 4.4 / 5.0 / 10.0 / 15.6 us at 8K / 32K /
// 128K / 1M, against 17 / - / 19 / 21 for the tournament (NOTES_cuda.md,
// steps 30-32, 37-38); a row of one part (up to 32K tokens) skips the merge.
// Rows of more than one part now go to topk_decode_bests_kernel below where
// the decode scorer ran; this kernel keeps the one-part rows and the
// MSA_INDEX_DECODE=tile path.
constexpr int kTopkPartBlocks = 256;
constexpr int kTopkMaxParts = 64;  // the merge stages n_parts * k entries in shared memory

__global__ void __launch_bounds__(32) topk_decode_parts_kernel(const float* scores, int nb, int q_offset, int n_groups,
                                                              int k_top, int sink, int block, int slots, int32_t* sel,
                                                              float* part_s, int* part_i, int* part_n,
                                                              unsigned* done) {
    extern __shared__ unsigned char topk_smem[];
    wait_on_prior_grid();  // the scores and the zeroed counters
    allow_dependent_launch();
    const int cap_max = max(k_top, 1);
    const int n_parts = gridDim.x, part = blockIdx.x, lane = threadIdx.x;
    // With at least `cap` parts the merge stores entry e of part p at
    // e * lanes + p, so that each lane holds whole lists and its best is a list
    // head: the threshold is the cap-th best head and few entries pass it
    // (part-major, a lane would hold the e-th entries of many lists and the
    // threshold would let hundreds by: 1M top-k 38 us vs 21). With fewer parts
    // there would be fewer than `cap` heads, no threshold and every entry a
    // candidate, so the lists stay part-major (128K step 0.041 vs 0.050 ms).
    const int lanes = (n_parts + 31) / 32 * 32;
    const int n_entries = max(kTopkPartBlocks, lanes * cap_max);
    float* es = reinterpret_cast<float*>(topk_smem);  // the part's blocks, then the parts' lists
    int* ei = reinterpret_cast<int*>(es + n_entries);
    float* pick_s = reinterpret_cast<float*>(ei + n_entries);  // [cap_max]
    int* pick_i = reinterpret_cast<int*>(pick_s + cap_max);  // then the parts' list lengths
    const long row = blockIdx.y;
    const int t = static_cast<int>(row / n_groups);
    const int loc = (q_offset + t) / block;
    const int cap = max(0, k_top - forced_count(loc, sink));
    if (loc + 1 <= k_top) {  // every visible block is taken: no ranking
        if (part == 0) warp_write_selection(sel + row * slots, slots, loc, k_top, sink, pick_i, 0);
        return;
    }
    for (int j = lane; j < kTopkPartBlocks; j += 32) {
        const int b = part * kTopkPartBlocks + j;
        const bool ok = b < loc && !(sink && b == 0);
        es[j] = ok ? scores[row * nb + b] : 0.f;
        ei[j] = ok ? b : INT_MAX;
    }
    __syncwarp();
    if (n_parts == 1) {  // the part's pick is the row's (contexts up to 32K at B = 128): no lists, count or merge
        const int n = warp_select_top(es, ei, kTopkPartBlocks, cap, pick_s, pick_i);
        warp_write_selection(sel + row * slots, slots, loc, k_top, sink, pick_i, n);
        return;
    }
    const long mine = row * n_parts + part;
    const int n = warp_select_top(es, ei, kTopkPartBlocks, cap, part_s + mine * cap_max, part_i + mine * cap_max);
    if (lane == 0) part_n[mine] = n;
    // Count this part with one acquire-release atomic; the last part merges.
    // The warp barrier orders every lane's list stores before lane 0's
    // release, and lane 0's acquire before every lane's loads of the other
    // parts' lists. __threadfence() on both sides compiled to two MEMBAR.SC.GPU
    // (sequentially consistent, the most expensive fence) in the chain.
    __syncwarp();
    unsigned prev = 0;
    if (lane == 0)
        prev = cuda::atomic_ref<unsigned, cuda::thread_scope_device>(done[row]).fetch_add(1u, cuda::memory_order_acq_rel);
    prev = __shfl_sync(0xffffffffu, prev, 0);
    if (prev != static_cast<unsigned>(n_parts - 1)) return;
    __syncwarp();
    // L2 reads (__ldcg): the other parts wrote from other SMs.
    const bool by_lane = n_parts >= cap;
    const int n_merge = (by_lane ? lanes : n_parts) * cap_max;
    // The list lengths first, then every entry load unconditional (in bounds,
    // masked after): a load behind its list's length was two dependent L2
    // round trips per entry.
    int* lengths = pick_i + cap_max;  // [n_parts]
    for (int q = lane; q < n_parts; q += 32) lengths[q] = __ldcg(part_n + row * n_parts + q);
    __syncwarp();
#pragma unroll 8
    for (int x = lane; x < n_merge; x += 32) {
        const int p = by_lane ? x % lanes : x / cap_max, e = by_lane ? x / lanes : x % cap_max;
        const long from = (row * n_parts + min(p, n_parts - 1)) * cap_max + e;
        const float v = __ldcg(part_s + from);
        const int vi = __ldcg(part_i + from);
        const bool ok = p < n_parts && e < lengths[min(p, n_parts - 1)];
        es[x] = ok ? v : 0.f;
        ei[x] = ok ? vi : INT_MAX;
    }
    __syncwarp();
    const int n_pick = warp_select_top(es, ei, n_merge, cap, pick_s, pick_i);
    warp_write_selection(sel + row * slots, slots, loc, k_top, sink, pick_i, n_pick);
}

// Decode top-k from the scoring warps' bests (index_decode.cuh), one warp per
// row. The cap best of the warp bests (score desc, id asc) bound the answer: at
// least cap blocks rank at or above the cap-th of them, so each of the row's
// top cap blocks does too, and lies in one of those cap warps (a warp whose
// best ranks below it has no block ranking above it; ids are distinct, so
// exactly cap warps qualify even when every score ties). The row's pick is
// then made among those warps' blocks: two warp_select_top calls, no parts,
// lists, atomics or merge. The parts kernel above took 16.4 us at 1M (CUPTI,
// H200), 11 of them in its last part's merge (ncu: 33K cycles elapsed, 10K
// active per SM); this one 11.7 us at 1M and 9 at 128K, still one warp's
// dependent chain of two selections (NOTES_cuda.md step 45).
__global__ void __launch_bounds__(32) topk_decode_bests_kernel(const float* scores, int nb, int q_offset, int n_groups,
                                                              int k_top, int sink, int block, int slots, int32_t* sel,
                                                              const DecodeBests bests, int blocks_per_warp,
                                                              int n_warps) {
    extern __shared__ unsigned char topk_smem[];
    wait_on_prior_grid();  // the scores and the bests
    const int cap_max = max(k_top, 1), lane = threadIdx.x;
    const int n_entries = max(n_warps, cap_max * blocks_per_warp);
    float* es = reinterpret_cast<float*>(topk_smem);
    int* ei = reinterpret_cast<int*>(es + n_entries);
    float* pick_s = reinterpret_cast<float*>(ei + n_entries);  // [cap_max]
    int* pick_i = reinterpret_cast<int*>(pick_s + cap_max);    // [cap_max]
    const long row = blockIdx.x;
    const int t = static_cast<int>(row / n_groups);
    const int loc = (q_offset + t) / block;
    const int cap = max(0, k_top - forced_count(loc, sink));
    if (loc + 1 <= k_top) {  // every visible block is taken: no ranking
        warp_write_selection(sel + row * slots, slots, loc, k_top, sink, pick_i, 0);
        return;
    }
    // Unrolled so that a lane's loads are in flight together: one at a time
    // they were 16 + 8 dependent L2 round trips, most of the kernel's 27K
    // cycles at 1M (ncu: 820 cycles active per SM over 132 SMs for 4 CTAs).
#pragma unroll 16
    for (int j = lane; j < n_warps; j += 32) {
        es[j] = bests.score[row * bests.stride + j];
        ei[j] = bests.block[row * bests.stride + j];
    }
    __syncwarp();
    const int n_warp_picks = warp_select_top(es, ei, n_warps, cap, pick_s, pick_i);
    const int n_cand = n_warp_picks * blocks_per_warp;
    const int end = min(loc, nb);  // eligible blocks lie before the row's own
    // In batches whose loads all issue before the first store uses one.
    constexpr int kBatch = 8;
    for (int x0 = 0; x0 < n_cand; x0 += 32 * kBatch) {
        float v[kBatch];
        int vb[kBatch];
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
            const int x = x0 + u * 32 + lane;
            const int b = x < n_cand
                              ? (pick_i[x / blocks_per_warp] / blocks_per_warp) * blocks_per_warp + x % blocks_per_warp
                              : 0;
            const bool ok = x < n_cand && b < end && !(sink && b == 0);
            v[u] = ok ? scores[row * nb + b] : 0.f;
            vb[u] = ok ? b : INT_MAX;
        }
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
            const int x = x0 + u * 32 + lane;
            if (x < n_cand) {
                es[x] = v[u];
                ei[x] = vb[u];
            }
        }
    }
    __syncwarp();
    const int n_pick = warp_select_top(es, ei, n_cand, cap, pick_s, pick_i);
    warp_write_selection(sel + row * slots, slots, loc, k_top, sink, pick_i, n_pick);
}

// WPR warps per (query, group) row: forced blocks + the best k - forced others,
// ordered by (score desc, id asc), picked one round at a time. WPR = 1 with many
// rows per CTA for prefill; WPR = 32 (one 1024-thread CTA per row) for decode,
// where a handful of rows each scan up to N / B blocks k times: one warp per
// row took ~0.15 ms at 1M tokens, more than scoring the blocks.
template <int WPR>
__global__ void topk_from_scores_kernel(const float* scores, int nb, int n_q, int q_offset, int n_groups, int k_top,
                                        int sink, int block, int slots, int32_t* sel) {
    extern __shared__ int32_t picks[];  // [rows of the CTA][k_top]
    __shared__ float part_s[WPR], best_s;
    __shared__ int part_i[WPR], best_i;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row_in_cta = warp / WPR, wr = warp % WPR;
    long row = blockIdx.x * static_cast<long>(blockDim.x / 32 / WPR) + row_in_cta;
    if (WPR == 1 && row >= static_cast<long>(n_q) * n_groups) return;  // WPR > 1: grid = rows exactly
    int t = static_cast<int>(row / n_groups);
    int loc = (q_offset + t) / block;
    int cap = max(0, k_top - forced_count(loc, sink));
    int32_t* mine = picks + row_in_cta * max(k_top, 1);
    const float* s = scores + row * nb;
    int n_pick = 0;
    if (loc + 1 > k_top) {
        float ps = INFINITY;
        int pi = -1;
        for (; n_pick < cap; ++n_pick) {
            float bs = 0.f;
            int bi = INT_MAX;
            for (int b = wr * 32 + lane; b < loc; b += 32 * WPR) {
                if (sink && b == 0) continue;
                float x = s[b];
                bool after = x < ps || (x == ps && b > pi);
                if (after && ranks_before(x, b, bs, bi)) {
                    bs = x;
                    bi = b;
                }
            }
            warp_best(bs, bi);
            if constexpr (WPR > 1) {
                if (lane == 0) {
                    part_s[wr] = bs;
                    part_i[wr] = bi;
                }
                __syncthreads();
                if (warp == 0) {
                    bs = lane < WPR ? part_s[lane] : 0.f;
                    bi = lane < WPR ? part_i[lane] : INT_MAX;
                    warp_best(bs, bi);
                    if (lane == 0) {
                        best_s = bs;
                        best_i = bi;
                    }
                }
                __syncthreads();
                bs = best_s;
                bi = best_i;
            }
            if (bi == INT_MAX) break;
            if (threadIdx.x % (32 * WPR) == 0) mine[n_pick] = bi;
            ps = bs;
            pi = bi;
        }
    }
    if constexpr (WPR > 1) __syncthreads();
    else __syncwarp();
    if (threadIdx.x % (32 * WPR) == 0) write_selection(sel + row * slots, slots, loc, k_top, sink, mine, n_pick);
}

// ---- launch ------------------------------------------------------------------

namespace {
constexpr int kKN = 64;
int n_blocks_of(const IndexTopkOp& op) { return (op.n_kv + op.block - 1) / op.block; }
// One query (decode) or a handful: split the key blocks over CTAs instead of rows.
bool use_decode_path(const IndexTopkOp& op) { return op.n_q * (op.n_groups / op.n_key_heads) <= 16; }
// MSA_INDEX_DECODE=tile: decode on the prefill tile split over key blocks (the
// path before index_decode.cu; kept to measure against).
bool decode_on_prefill_tile() {
    static const bool v = [] {
        const char* e = std::getenv("MSA_INDEX_DECODE");
        return e && std::string(e) == "tile";
    }();
    return v;
}
bool needs_score_buffer(const IndexTopkOp& op) {
    return op.pool == IndexPool::quest || op.pool == IndexPool::random || use_decode_path(op);
}

template <int D, int WARPS, int KN, int MT, int STAGES, bool WG = false, int MIN_CTAS = 1>
void launch_fused_tile(const IndexParams& p, int rows, int n_key_heads, int n_splits, cudaStream_t stream) {
    constexpr int ROWS = 16 * MT * WARPS;
    size_t smem = STAGES * KN * D * sizeof(bf16) + static_cast<size_t>(ROWS) * p.cand_cap * 8 + (WG ? 1024 : 0);
    constexpr auto kernel = index_topk_kernel<D, WARPS, KN, MT, STAGES, WG, MIN_CTAS>;
    ensure_dynamic_smem<kernel>(smem);
    dim3 grid((rows + ROWS - 1) / ROWS, n_key_heads, n_splits);
    kernel<<<grid, WARPS * 32, smem, stream>>>(p);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// wgmma needs sm_90a code in the binary and a compute capability 9.0 device.
bool wgmma_available() {
#if defined(MSASCOPE_CUDA_SM90A)
    static const bool ok = [] {
        int dev = 0, major = 0, minor = 0;
        MSA_CUDA_CHECK(cudaGetDevice(&dev));
        MSA_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        MSA_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
        return major == 9 && minor == 0;
    }();
    return ok;
#else
    return false;
#endif
}

namespace {

// Tile variants (warps x m16 tiles per warp, key chunk, cp.async stages).
// Default: wgmma (two warpgroups, m64n64 each, 3 stages, registers capped for
// 2 CTAs per SM) where available, else 4
// warps x 1 mma.sync tile, 64-key chunks, 3 stages. Measured on the H100 at
// 128K (NOTES_cuda.md): for mma.sync, 2 m-tiles per warp, which halves the
// shared-memory reads per MMA, gains nothing (43.4 vs 43.6 ms), 2 or 4 stages
// lose (48.2, 50.0 ms), 8 warps or 128-key chunks gain 3-4%: the pooling and
// top-k bookkeeping on the ALU pipe, not the MMAs, bound it (ncu: ALU the
// busiest pipe, 54% issue-slot use). MSA_INDEX_TILE=wg4 | wg4stage | mma | mt2 | kn128 | w8
// selects the alternatives. wgmma at 128K: 40.5 ms vs 41.2 (mma.sync), at 1M
// 2.16 s vs 2.56 s; two warpgroups sharing each key chunk (8 warps) lost (52.0
// ms: one CTA per SM at 155 registers). ncu on the wgmma kernel: ALU still the
// busiest pipe (46%), stalls mostly fixed-latency waits and the per-chunk
// barrier, 19% achieved occupancy; capping registers at 128 for 4 CTAs per SM
// (3 stages; `wg4stage` is the uncapped 4-stage one) gained 2-3%: 128K 39.8
// vs 40.7 ms, 1M 2.05 vs 2.12 s. Default since session 3 (H200): two warpgroups
// (128 rows) sharing each staged chunk with registers capped for 2 CTAs per SM
// (the earlier 8-warp try ran uncapped at 155 registers, one CTA per SM): 128K
// 40.6 -> 34.0 ms, 32K 3.09 -> 2.58 ms; half the key bytes staged per score.
// `wg4` selects the one-warpgroup kernel. Since session 4 the default where a
// block is whole 64-key chunks is the pipelined tile (index_pipelined.cuh:
// bulk copies on mbarriers instead of cp.async and a barrier per chunk);
// `wg8` selects the two-warpgroup cp.async tile it replaced, `pipe5` the
// pipelined tile with 5 stages. Decode has its own kernel (index_decode.cu).
enum class IndexTile { pipelined, pipelined_5stage, wgmma, wgmma_4stage, wgmma_2wg, wgmma_2wg_4stage, w4k64, mt2, kn128, w8 };
IndexTile index_tile(bool decode) {
    static const IndexTile forced = [] {
        const char* e = std::getenv("MSA_INDEX_TILE");
        const std::string v = e ? e : "";
        if (v == "wg8") return IndexTile::wgmma_2wg;
        if (v == "pipe5") return IndexTile::pipelined_5stage;
        if (v == "mma") return IndexTile::w4k64;
        if (v == "wg4stage") return IndexTile::wgmma_4stage;
        if (v == "wg4") return IndexTile::wgmma;
        if (v == "wg8s4") return IndexTile::wgmma_2wg_4stage;
        if (v == "mt2") return IndexTile::mt2;
        if (v == "kn128") return IndexTile::kn128;
        if (v == "w8") return IndexTile::w8;
        return IndexTile::pipelined;
    }();
    if (decode) return IndexTile::w4k64;
    const bool wgmma = forced != IndexTile::w4k64 && forced != IndexTile::mt2 && forced != IndexTile::kn128 &&
                       forced != IndexTile::w8;
    return wgmma && !wgmma_available() ? IndexTile::w4k64 : forced;
}

// The pipelined tile takes prefill with max/mean pooling where a block is whole
// 64-key chunks; other blocks fall back to the two-warpgroup cp.async tile.
bool use_pipelined(const IndexTopkOp& op) {
    if (op.pool != IndexPool::max && op.pool != IndexPool::mean) return false;
    if (use_decode_path(op) || op.block % kIndexChunkKeys != 0) return false;
    const IndexTile t = index_tile(false);
    return t == IndexTile::pipelined || t == IndexTile::pipelined_5stage;
}
// The swizzled copy of k_idx the pipelined tile streams from: whole blocks of chunks.
size_t swizzled_keys_bytes(const IndexTopkOp& op) {
    if (!use_pipelined(op)) return 0;
    const size_t chunks = static_cast<size_t>(n_blocks_of(op)) * (op.block / kIndexChunkKeys);
    return static_cast<size_t>(op.n_key_heads) * chunks * kIndexChunkKeys * op.dim * sizeof(bf16) + 1024;
}

// Prefill top-k as a pass of its own after the pipelined tile's scores
// (topk_prefill.cuh); MSA_INDEX_TOPK=fused keeps the tile's streaming
// candidate lists instead (the path before NOTES_cuda.md step 66, to measure).
bool topk_after_scoring(const IndexTopkOp& op) {
    static const bool fused = [] {
        const char* e = std::getenv("MSA_INDEX_TOPK");
        return e && std::string(e) == "fused";
    }();
    return !fused && op.sel && use_pipelined(op);
}
// Tokens scored per slice when the scores go to scratch: the buffer is at most
// 2 GiB (one slice at 128K with 4 groups; at 1M, 16K-token slices of 512
// CTAs). MSA_INDEX_SLICE_TOKENS overrides it, read on every call (the GPU tests
// force several slices).
int score_slice_tokens(const IndexTopkOp& op) {
    const size_t row_bytes = static_cast<size_t>(op.n_groups) * n_blocks_of(op) * sizeof(float);
    size_t tokens = (size_t(2) << 30) / row_bytes;
    if (const char* e = std::getenv("MSA_INDEX_SLICE_TOKENS")) tokens = std::strtoul(e, nullptr, 10);
    return static_cast<int>(std::clamp<size_t>(tokens, 1, std::max(op.n_q, 1)));
}
size_t topk_score_bytes(const IndexTopkOp& op) {
    if (!topk_after_scoring(op) || op.scores) return 0;
    return static_cast<size_t>(score_slice_tokens(op)) * op.n_groups * n_blocks_of(op) * sizeof(float);
}

#if defined(MSASCOPE_CUDA_SM90A)
template <int D, int STAGES, bool MEAN, bool SELECT>
void launch_pipelined_tile(const IndexParams& p, const bf16* kswz, int n_chunks, cudaStream_t stream) {
    constexpr auto kernel = index_topk_pipelined_kernel<D, STAGES, MEAN, SELECT>;
    const size_t smem = IndexPipelinedSmem<D, STAGES>::bytes(p.cand_cap);
    ensure_dynamic_smem<kernel>(smem);
    const int rows = p.n_q * (p.n_groups / p.n_key_heads);
    dim3 grid((rows + 127) / 128, p.n_key_heads, 1);
    kernel<<<grid, 256, smem, stream>>>(p, kswz, n_chunks);
    MSA_CUDA_CHECK(cudaGetLastError());
}
#endif

// The swizzled keys, then either the tile with its streaming top-k (p.sel set)
// or, with topk_after_scoring, per slice of tokens the scores into `scores`
// and topk_prefill_kernel over them.
template <int D, int STAGES, bool MEAN>
void launch_pipelined(const IndexParams& p, const IndexTopkOp& op, void* scratch, cudaStream_t stream) {
#if defined(MSASCOPE_CUDA_SM90A)
    bf16* kswz = reinterpret_cast<bf16*>((reinterpret_cast<uintptr_t>(scratch) + 1023) & ~uintptr_t(1023));
    const int n_chunks = p.nb * (p.block / kIndexChunkKeys);
    const long pieces = static_cast<long>(op.n_key_heads) * n_chunks * kIndexChunkKeys * (D / 8);
    index_swizzle_keys_kernel<<<static_cast<unsigned>((pieces + 255) / 256), 256, 0, stream>>>(
        op.k, op.n_kv, op.n_key_heads, D, n_chunks, kswz);
    MSA_CUDA_CHECK(cudaGetLastError());
    if (!topk_after_scoring(op)) {
        if (p.sel) return launch_pipelined_tile<D, STAGES, MEAN, true>(p, kswz, n_chunks, stream);
        return launch_pipelined_tile<D, STAGES, MEAN, false>(p, kswz, n_chunks, stream);
    }
    float* scores = op.scores ? op.scores
                              : reinterpret_cast<float*>(reinterpret_cast<char*>(scratch) + swizzled_keys_bytes(op));
    const int slice = op.scores ? op.n_q : score_slice_tokens(op);
    for (int t0 = 0; t0 < op.n_q; t0 += slice) {
        const int n_q = std::min(slice, op.n_q - t0);
        const long row0 = static_cast<long>(t0) * op.n_groups;
        IndexParams ps = p;
        ps.q = p.q + row0 * op.dim;
        ps.n_q = n_q;
        ps.q_offset = p.q_offset + t0;
        ps.sel = nullptr;
        ps.cand_cap = 0;
        ps.scores = scores;  // the caller's whole buffer is one slice (t0 = 0)
        ps.fill_invisible = op.scores != nullptr;  // the caller reads whole rows; the top-k does not
        launch_pipelined_tile<D, STAGES, MEAN, false>(ps, kswz, n_chunks, stream);
        const long rows = static_cast<long>(n_q) * op.n_groups;
        topk_prefill_kernel<<<static_cast<unsigned>((rows + kTopkPrefillWarps - 1) / kTopkPrefillWarps),
                              kTopkPrefillWarps * 32, 0, stream>>>(ps.scores, p.nb, rows, op.n_groups, ps.q_offset,
                                                                   op.block, op.k_top, op.sink, op.slots,
                                                                   op.sel + row0 * op.slots);
        MSA_CUDA_CHECK(cudaGetLastError());
    }
#else
    (void)p, (void)op, (void)scratch, (void)stream;
    throw InputError("cuda index: the pipelined tile needs sm_90a code");
#endif
}

template <int D>
void dispatch_fused(const IndexParams& p, int rows, int n_key_heads, int n_splits, bool decode,
                    cudaStream_t stream) {
    switch (index_tile(decode)) {
        case IndexTile::wgmma:  // 4 CTAs per SM: 128 registers (a few spilled), 3 stages
            return launch_fused_tile<D, 4, kKN, 1, 3, true, 4>(p, rows, n_key_heads, n_splits, stream);
        case IndexTile::wgmma_2wg:  // two warpgroups (128 rows) share each staged chunk, 2 CTAs per SM
            return launch_fused_tile<D, 8, kKN, 1, 3, true, 2>(p, rows, n_key_heads, n_splits, stream);
        case IndexTile::wgmma_2wg_4stage:
            return launch_fused_tile<D, 8, kKN, 1, 4, true, 2>(p, rows, n_key_heads, n_splits, stream);
        case IndexTile::wgmma_4stage:
            return launch_fused_tile<D, 4, kKN, 1, 4, true>(p, rows, n_key_heads, n_splits, stream);
        case IndexTile::mt2: return launch_fused_tile<D, 4, kKN, 2, 3>(p, rows, n_key_heads, n_splits, stream);
        case IndexTile::kn128: return launch_fused_tile<D, 4, 128, 1, 2>(p, rows, n_key_heads, n_splits, stream);
        case IndexTile::w8: return launch_fused_tile<D, 8, kKN, 1, 3>(p, rows, n_key_heads, n_splits, stream);
        default: return launch_fused_tile<D, 4, kKN, 1, 3>(p, rows, n_key_heads, n_splits, stream);
    }
}

template <int D>
void launch_fused(const IndexTopkOp& op, float* scores, int32_t* sel, int n_splits, bool decode, void* scratch,
                  cudaStream_t stream) {
    IndexParams p{};
    p.q = op.q;
    p.k = op.k;
    p.n_q = op.n_q;
    p.q_offset = op.q_offset;
    p.n_kv = op.n_kv;
    p.n_groups = op.n_groups;
    p.n_key_heads = op.n_key_heads;
    p.scale = op.scale;
    p.block = op.block;
    p.pool = op.pool == IndexPool::mean ? 1 : 0;
    p.k_top = op.k_top;
    p.sink = op.sink;
    p.slots = op.slots;
    p.nb = n_blocks_of(op);
    p.sel = sel;
    p.scores = scores;
    p.n_splits = n_splits;
    p.cand_cap = sel ? std::max(0, op.k_top - 1) : 0;
    p.fill_invisible = 1;
    if (!decode && use_pipelined(op)) {
        if (p.pool == 1) return launch_pipelined<D, 4, true>(p, op, scratch, stream);
        if (index_tile(false) == IndexTile::pipelined_5stage)
            return launch_pipelined<D, 5, false>(p, op, scratch, stream);
        return launch_pipelined<D, 4, false>(p, op, scratch, stream);
    }
    dispatch_fused<D>(p, op.n_q * (op.n_groups / op.n_key_heads), op.n_key_heads, n_splits, decode, stream);
}

// The parts' candidate lists and the per-row counters of topk_decode_parts_kernel.
bool decode_topk_on_parts(const IndexTopkOp& op) {
    const long rows = static_cast<long>(op.n_q) * op.n_groups;
    return op.sel && needs_score_buffer(op) && rows < 2L * sm_count() &&
           n_blocks_of(op) <= kTopkMaxParts * kTopkPartBlocks;
}
// The decode scorer's per-warp bests and topk_decode_bests_kernel, where the
// decode scorer runs (MSA_DECODE_TOPK=parts keeps the parts kernel, to measure).
bool decode_topk_on_bests(const IndexTopkOp& op) {
    static const bool parts = [] {
        const char* e = std::getenv("MSA_DECODE_TOPK");
        return e && std::string(e) == "parts";
    }();
    // A row of one part (<= 256 blocks) is faster on the parts kernel, which
    // then picks it directly (CUPTI at 8K: 4.4 us vs 7.0 here).
    return !parts && op.sel && use_decode_path(op) && !decode_on_prefill_tile() &&
           (op.pool == IndexPool::max || op.pool == IndexPool::mean) && n_blocks_of(op) > kTopkPartBlocks;
}
size_t decode_bests_bytes(const IndexTopkOp& op) {
    if (!decode_topk_on_bests(op)) return 0;
    const size_t rows = static_cast<size_t>(op.n_q) * op.n_groups;
    return rows * static_cast<size_t>(index_decode_split(op).warps) * 8 + 256;
}
size_t decode_topk_scratch_bytes(const IndexTopkOp& op) {
    if (decode_topk_on_bests(op)) return decode_bests_bytes(op);
    if (!decode_topk_on_parts(op)) return 0;
    const size_t rows = static_cast<size_t>(op.n_q) * op.n_groups;
    const size_t parts = (n_blocks_of(op) + kTopkPartBlocks - 1) / kTopkPartBlocks;
    return (rows * parts * (2 * static_cast<size_t>(std::max(op.k_top, 1)) + 1) + rows) * sizeof(int32_t) + 256;
}
}  // namespace

size_t index_topk_scratch_bytes(const IndexTopkOp& op) {
    size_t nb = n_blocks_of(op);
    size_t bytes = 0;
    if (needs_score_buffer(op) && !op.scores) bytes += static_cast<size_t>(op.n_q) * op.n_groups * nb * sizeof(float);
    if (op.pool == IndexPool::quest) bytes += 2 * static_cast<size_t>(op.n_key_heads) * nb * op.dim * sizeof(float) + 256;
    bytes += decode_topk_scratch_bytes(op);
    bytes += swizzled_keys_bytes(op);
    bytes += topk_score_bytes(op);
    return bytes;
}

void index_topk_launch(const IndexTopkOp& op, cudaStream_t stream) {
    if (op.dim != 64 && op.dim != 128)
        throw InputError("cuda index: dim " + std::to_string(op.dim) + " not supported (64 or 128)");
    if (op.n_groups <= 0 || op.n_key_heads <= 0 || op.n_groups % op.n_key_heads != 0)
        throw InputError("cuda index: groups must be a multiple of key heads");
    if (op.block <= 0 || op.k_top <= 0) throw InputError("cuda index: block and k must be positive");
    if (!(op.scale > 0.f)) throw InputError("cuda index: scale must be positive (pooling scales after the max)");
    if (op.n_q <= 0 || op.n_kv <= 0) return;
    if (op.sel && op.slots < std::max(op.k_top, op.sink ? 2 : 1))
        throw InputError("cuda index: selection row narrower than max(k, forced)");
    if (index_topk_scratch_bytes(op) > op.scratch_bytes) throw InputError("cuda index: scratch buffer too small");
    const int nb = n_blocks_of(op);
    char* scratch = static_cast<char*>(op.scratch);
    float* scores = op.scores;
    if (needs_score_buffer(op) && !scores) {
        scores = reinterpret_cast<float*>(scratch);
        scratch += static_cast<size_t>(op.n_q) * op.n_groups * nb * sizeof(float);
    }
    // The decode top-k's scratch, after whatever the scorer took: the parts'
    // lists and the per-row counters.
    const long rows = static_cast<long>(op.n_q) * op.n_groups;
    const int parts = (nb + kTopkPartBlocks - 1) / kTopkPartBlocks;
    const int cap_max = std::max(op.k_top, 1);
    auto part_s = [&] { return reinterpret_cast<float*>(scratch); };
    auto part_i = [&] { return reinterpret_cast<int*>(part_s() + rows * parts * cap_max); };
    auto part_n = [&] { return part_i() + rows * parts * cap_max; };
    auto done = [&] { return reinterpret_cast<unsigned*>(part_n() + rows * parts); };
    bool counters_zeroed = false;
    if (op.pool == IndexPool::max || op.pool == IndexPool::mean) {
        bool decode = use_decode_path(op);
        if (decode && decode_topk_on_bests(op)) {
            const DecodeSplit split = index_decode_split(op);
            DecodeBests bests;
            bests.score = reinterpret_cast<float*>(scratch);
            bests.block = reinterpret_cast<int32_t*>(bests.score + rows * split.warps);
            bests.stride = split.warps;
            index_decode_scores_launch(op, scores, stream, nullptr, 0, bests);
            const size_t smem =
                (2 * static_cast<size_t>(std::max(split.warps, cap_max * split.blocks_per_warp)) + 2 * cap_max) * 4;
            ensure_dynamic_smem<topk_decode_bests_kernel>(smem);
            launch_dependent(topk_decode_bests_kernel, dim3(static_cast<unsigned>(rows)), dim3(32), smem, stream,
                             static_cast<const float*>(scores), nb, op.q_offset, op.n_groups, op.k_top, op.sink,
                             op.block, op.slots, op.sel, bests, split.blocks_per_warp, split.warps);
            MSA_CUDA_CHECK(cudaGetLastError());
            return;
        }
        if (decode && !decode_on_prefill_tile()) {
            counters_zeroed = decode_topk_on_parts(op);
            index_decode_scores_launch(op, scores, stream, counters_zeroed ? done() : nullptr,
                                       counters_zeroed ? static_cast<int>(rows) : 0);
        } else {
            int splits = 1;
            if (decode) {
                // ~4 CTAs per SM over the key blocks: decode scoring streams k_idx once and
                // wants many loads in flight.
                splits = std::max(1, std::min(nb, 4 * sm_count() / op.n_key_heads));
            }
            int32_t* sel = decode ? nullptr : op.sel;
            if (op.dim == 128)
                launch_fused<128>(op, scores, sel, splits, decode, scratch, stream);
            else
                launch_fused<64>(op, scores, sel, splits, decode, scratch, stream);
        }
        if (!decode || !op.sel) return;
    } else {
        float* kmin = nullptr;
        float* kmax = nullptr;
        if (op.pool == IndexPool::quest) {
            size_t off = reinterpret_cast<uintptr_t>(scratch) % 256;
            if (off) scratch += 256 - off;
            kmin = reinterpret_cast<float*>(scratch);
            kmax = kmin + static_cast<size_t>(op.n_key_heads) * nb * op.dim;
            scratch = reinterpret_cast<char*>(kmax + static_cast<size_t>(op.n_key_heads) * nb * op.dim);
            long total = static_cast<long>(op.n_key_heads) * nb * op.dim;
            key_bounds_kernel<<<(total + 255) / 256, 256, 0, stream>>>(op.k, op.n_kv, op.n_key_heads, op.dim,
                                                                       op.block, nb, kmin, kmax);
            MSA_CUDA_CHECK(cudaGetLastError());
        }
        IndexTopkOp o2 = op;
        o2.scores = scores;
        long total = static_cast<long>(op.n_q) * op.n_groups * nb;
        block_scores_simple_kernel<<<(total + 255) / 256, 256, 0, stream>>>(o2, nb, kmin, kmax);
        MSA_CUDA_CHECK(cudaGetLastError());
        if (!op.sel) return;
    }
    if (decode_topk_on_parts(op)) {
        if (!counters_zeroed)
            MSA_CUDA_CHECK(cudaMemsetAsync(done(), 0, static_cast<size_t>(rows) * sizeof(unsigned), stream));
        const size_t lanes = (parts + 31) / 32 * 32;
        const size_t smem = (2 * std::max<size_t>(kTopkPartBlocks, lanes * cap_max) + 2 * cap_max + kTopkMaxParts) * 4;
        ensure_dynamic_smem<topk_decode_parts_kernel>(smem);
        launch_dependent(topk_decode_parts_kernel, dim3(parts, static_cast<unsigned>(rows)), dim3(32), smem, stream,
                         static_cast<const float*>(scores), nb, op.q_offset, op.n_groups, op.k_top, op.sink, op.block,
                         op.slots, op.sel, part_s(), part_i(), part_n(), done());
    } else if (rows < 2L * sm_count()) {
        constexpr int kWpr = 32;
        const size_t smem = static_cast<size_t>(std::max(op.k_top, 1)) * sizeof(int32_t);
        topk_from_scores_kernel<kWpr><<<static_cast<unsigned>(rows), kWpr * 32, smem, stream>>>(
            scores, nb, op.n_q, op.q_offset, op.n_groups, op.k_top, op.sink, op.block, op.slots, op.sel);
    } else {
        const int warps = 8;
        const size_t smem = static_cast<size_t>(warps) * std::max(op.k_top, 1) * sizeof(int32_t);
        ensure_dynamic_smem<topk_from_scores_kernel<1>>(smem);
        topk_from_scores_kernel<1><<<static_cast<unsigned>((rows + warps - 1) / warps), warps * 32, smem, stream>>>(
            scores, nb, op.n_q, op.q_offset, op.n_groups, op.k_top, op.sink, op.block, op.slots, op.sel);
    }
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
