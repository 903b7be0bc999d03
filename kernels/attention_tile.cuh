#pragma once
// The flash-attention tile shared by the dense baseline, the sparse prefill and
// the sparse/dense decode (device code only; launch choices live in
// dense_attention.cu and sparse_attention.cu).
//
// Rows. A CTA owns 16*WARPS "rows" of one GQA group g; row rho = token * r + h
// (token-major, the group's r heads minor), so Q[t, g*r .. g*r+r-1, :] is one
// contiguous run and one selection (per token and group) covers r consecutive
// rows. With MiniMax-M3's r = 16 one m16 MMA tile is exactly one token's
// heads: K/V of a selected block are staged once and used by all 16 heads.
//
// Keys. The CTA walks a list of key chunks of KN keys, staged in shared memory
// with cp.async (K and V in separate buffers, FlashAttention-2's overlap: V[i]
// streams in while S = Q K[i]^T is computed, K[i+1] while O += P V[i]).
//   dense : chunks cover [0, last visible key of the CTA]
//   sparse: chunks cover the union of the selections of the CTA's tokens (at
//           most 32 tokens), ascending block id; a row whose token did not
//           select a block masks it to -inf, so correctness never depends on
//           how much the tokens' selections overlap, only the wasted work does.
// The token-level causal mask (key <= position) applies everywhere, which is
// what keeps the local block exact.
//
// Split-K (decode). blockIdx.z = split: the chunk list is cut into n_splits
// contiguous pieces and each writes unnormalised (O, m, l) partials that
// attn_combine_kernel merges; n_splits = 1 writes bf16 O directly.
#include <cfloat>
#include <climits>

#include "kernels/mma_utils.cuh"

namespace msa::kern {

struct AttnParams {
    const bf16* q = nullptr;  // [n_q, Hq, D]
    const bf16* k = nullptr;  // [n_kv, Hkv, D]
    const bf16* v = nullptr;  // [n_kv, Hkv, D]
    bf16* out = nullptr;      // [n_q, Hq, D] (n_splits == 1)
    float* part_o = nullptr;  // [n_splits, n_q * Hq, D]  (n_splits > 1)
    float* part_ml = nullptr; // [n_splits, n_q * Hq, 2]
    int n_q = 0;
    int q_offset = 0;         // position of query 0 (prefill 0, decode n_kv - 1)
    int n_kv = 0;
    int n_heads = 0;
    int n_kv_heads = 0;
    int group = 0;            // r
    float scale_log2 = 0;     // softmax scale * log2(e)
    const int32_t* sel = nullptr;  // [n_q, G, slots]; null = dense
    int slots = 0;
    int block = 128;          // B (sparse)
    int n_splits = 1;
    int max_union = 0;        // capacity of the union list in shared memory
};

// MT m16 tiles per warp. MT = 1 keeps the warp's Q fragments in registers (the
// sparse tile: one token's 16 heads). MT = 2 is FlashAttention-2's 128-row dense
// tile: every K/V fragment read from shared memory feeds two MMAs instead of
// one, which is what bounds the MT = 1 tile (shared-memory bandwidth, not the
// tensor cores); the extra accumulators leave no room for Q in registers, so Q
// is staged in shared memory once and re-read with ldmatrix per chunk.
template <int D, int WARPS, int KN, int MT>
struct AttnSmem {
    static constexpr int kTile = KN * D;                       // bf16 elements
    static constexpr int kQTile = MT > 1 ? 16 * MT * WARPS * D : 0;
    static size_t bytes(int max_union) {
        return (2 * kTile + kQTile) * sizeof(bf16) + static_cast<size_t>(max_union) * 8 + 16;
    }
};

template <int D, int WARPS, int KN, int MT>
__global__ void __launch_bounds__(WARPS * 32) attn_fwd_kernel(const AttnParams p) {
    constexpr int NT = WARPS * 32;
    constexpr int ROWS = 16 * MT * WARPS;
    constexpr int R = 2 * MT;  // rows per thread
    constexpr bool kQInSmem = MT > 1;
    static_assert(KN % 16 == 0 && D % 16 == 0, "tile shape");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    wait_on_prior_grid();  // decode launches this programmatically after the top-k
    allow_dependent_launch();
    bf16* ks = reinterpret_cast<bf16*>(smem_raw);
    bf16* vs = ks + KN * D;
    bf16* qs = vs + KN * D;  // [ROWS][D] when kQInSmem
    int32_t* u_blk = reinterpret_cast<int32_t*>(qs + AttnSmem<D, WARPS, KN, MT>::kQTile);
    uint32_t* u_mask = reinterpret_cast<uint32_t*>(u_blk + p.max_union);
    __shared__ int s_count;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = blockIdx.y;
    const int r = p.group;
    const int rows_total = p.n_q * r;
    // Heaviest (latest) tiles first: causal work grows with the position.
    const int tile = gridDim.x - 1 - blockIdx.x;
    const int row0 = tile * ROWS;
    const int tok_lo = row0 / r;
    const int tok_hi = (min(row0 + ROWS, rows_total) - 1) / r;
    const int pos_lo = p.q_offset + tok_lo, pos_hi = p.q_offset + tok_hi;
    const long kv_stride = static_cast<long>(p.n_kv_heads) * D;
    const bf16* kbase = p.k + static_cast<long>(g) * D;
    const bf16* vbase = p.v + static_cast<long>(g) * D;
    const int G = p.n_kv_heads;

    // ---- the chunk list ---------------------------------------------------
    const bool sparse = p.sel != nullptr;
    const int cpb = (p.block + KN - 1) / KN;  // chunks per selected block
    int n_items;                               // dense: chunks; sparse: union entries
    if (!sparse) {
        int kv_end = min(pos_hi + 1, p.n_kv);
        n_items = (kv_end + KN - 1) / KN;
    } else {
        // Merge the ascending selections of the CTA's tokens (lane i follows token
        // tok_lo + i); the ballot records which tokens chose each block.
        const int n_tok = tok_hi - tok_lo + 1;
        if (n_tok == 1 && p.slots <= 32) {
            // One token (decode; prefill with r = 16 and one warp): its ascending,
            // -1-padded selection row is the list; no merge rounds.
            if (warp == 0) {
                const int32_t* row = p.sel + (static_cast<long>(tok_lo) * G + g) * p.slots;
                const int b = lane < p.slots ? row[lane] : -1;
                const unsigned have = __ballot_sync(0xffffffffu, b >= 0);
                const int at = __popc(have & ((1u << lane) - 1u));  // padding anywhere is skipped
                if (b >= 0 && at < p.max_union) {
                    u_blk[at] = b;
                    u_mask[at] = 1u;
                }
                if (lane == 0) s_count = min(__popc(have), p.max_union);
            }
        } else if (warp == 0) {
            const int32_t* row = p.sel + (static_cast<long>(tok_lo + lane) * G + g) * p.slots;
            int ptr = 0;
            int cur = INT_MAX;
            if (lane < n_tok && p.slots > 0) {
                cur = row[0];
                if (cur < 0) cur = INT_MAX;
            }
            int n = 0;
            while (true) {
                int m = cur;
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) m = min(m, __shfl_xor_sync(0xffffffffu, m, o));
                if (m == INT_MAX) break;
                unsigned mask = __ballot_sync(0xffffffffu, cur == m);
                if (lane == 0 && n < p.max_union) {
                    u_blk[n] = m;
                    u_mask[n] = mask;
                }
                ++n;
                if (cur == m) {
                    ++ptr;
                    cur = ptr < p.slots ? row[ptr] : INT_MAX;
                    if (cur < 0) cur = INT_MAX;
                }
            }
            if (lane == 0) s_count = min(n, p.max_union);
        }
        __syncthreads();
        n_items = s_count;
    }
    // Splits cut the chunk list (not the block list): decode spreads one
    // token's few selected blocks over more CTAs than there are blocks.
    const int total_chunks = sparse ? n_items * cpb : n_items;
    const int per_split = (total_chunks + p.n_splits - 1) / p.n_splits;
    const int chunk_lo = min(total_chunks, static_cast<int>(blockIdx.z) * per_split);
    const int n_chunks = min(total_chunks, chunk_lo + per_split) - chunk_lo;

    // ---- this thread's rows: i = 2 * mt + (0: lane / 4, 1: lane / 4 + 8) ----
    // Only the positions live across the key loop; the rest is recomputed where
    // used, which keeps the 128-row dense tile (MT = 2) within 255 registers.
    struct RowInfo {
        bool valid;
        int tok, head;
    };
    auto row_info = [&](int i) {
        const int rho = row0 + warp * 16 * MT + (i / 2) * 16 + lane / 4 + (i % 2) * 8;
        const bool ok = rho < rows_total;
        return RowInfo{ok, ok ? rho / r : tok_lo, g * r + (ok ? rho % r : 0)};
    };
    int pos[R];
#pragma unroll
    for (int i = 0; i < R; ++i) pos[i] = p.q_offset + row_info(i).tok;

    // Q: fragments straight from global (MT = 1) or the CTA's rows staged once.
    uint32_t qf[kQInSmem ? 1 : MT][D / 16][4];
    if constexpr (kQInSmem) {
        constexpr int CH = D / 8;
        for (int c = threadIdx.x; c < ROWS * CH; c += NT) {
            const int lr = c / CH, ch = c % CH, rho = row0 + lr;
            const bool ok = rho < rows_total;
            const bf16* src = p.q + (ok ? (static_cast<long>(rho / r) * p.n_heads + g * r + rho % r) * D + ch * 8 : 0);
            cp_async16(smem_addr(qs + swz<D>(lr, ch * 8)), src, ok);
        }
        cp_async_commit();
    } else {
        const int c = (lane % 4) * 2;
#pragma unroll
        for (int mt = 0; mt < (kQInSmem ? 1 : MT); ++mt) {
            const RowInfo ia = row_info(2 * mt), ib = row_info(2 * mt + 1);
            const bf16* qa = p.q + (static_cast<long>(ia.tok) * p.n_heads + ia.head) * D;
            const bf16* qb = p.q + (static_cast<long>(ib.tok) * p.n_heads + ib.head) * D;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                qf[mt][kk][0] = ia.valid ? load_u32(qa + kk * 16 + c) : 0u;
                qf[mt][kk][1] = ib.valid ? load_u32(qb + kk * 16 + c) : 0u;
                qf[mt][kk][2] = ia.valid ? load_u32(qa + kk * 16 + 8 + c) : 0u;
                qf[mt][kk][3] = ib.valid ? load_u32(qb + kk * 16 + 8 + c) : 0u;
            }
        }
    }

    float o[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
    float m_run[R], l_run[R];
#pragma unroll
    for (int i = 0; i < R; ++i) {
        m_run[i] = -INFINITY;
        l_run[i] = 0.f;
    }

    auto chunk_range = [&](int i, int& k0, int& k1, uint32_t& mask) {
        if (!sparse) {
            k0 = (chunk_lo + i) * KN;
            k1 = min(k0 + KN, p.n_kv);
            mask = 0xffffffffu;
        } else {
            int u = (chunk_lo + i) / cpb, sub = (chunk_lo + i) % cpb;
            int b = u_blk[u];
            k0 = b * p.block + sub * KN;
            k1 = min(min(b * p.block + p.block, p.n_kv), k0 + KN);
            mask = u_mask[u];
        }
    };

    if (n_chunks > 0) {
        int k0, k1;
        uint32_t mask;
        chunk_range(0, k0, k1, mask);
        load_tile_async<D, NT, KN>(ks, kbase + min(k0, p.n_kv - 1) * kv_stride, kv_stride, k1 - k0);
        cp_async_commit();
    }
    const int n_tok_cta = tok_hi - tok_lo + 1;
    const uint32_t full_mask = (!sparse || n_tok_cta >= 32) ? 0xffffffffu : ((1u << n_tok_cta) - 1u);

    for (int i = 0; i < n_chunks; ++i) {
        int k0, k1;
        uint32_t mask;
        chunk_range(i, k0, k1, mask);
        cp_async_wait<0>();
        __syncthreads();
        load_tile_async<D, NT, KN>(vs, vbase + min(k0, p.n_kv - 1) * kv_stride, kv_stride, k1 - k0);
        cp_async_commit();

        float s[MT][KN / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < KN / 8; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            uint32_t qa[MT][4];
            if constexpr (kQInSmem) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
                    ldmatrix_x4(qa[mt], smem_addr(qs + swz<D>(warp * 16 * MT + mt * 16 + (lane & 15),
                                                              kk * 16 + (lane >> 4) * 8)));
            }
#pragma unroll
            for (int np = 0; np < KN / 16; ++np) {
                uint32_t b[4];
                int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
                int col = kk * 16 + ((lane >> 3) & 1) * 8;
                ldmatrix_x4(b, smem_addr(ks + swz<D>(key, col)));
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    const uint32_t(&a)[4] = kQInSmem ? qa[mt] : qf[kQInSmem ? 0 : mt][kk];
                    mma_16816(s[mt][2 * np], a, b[0], b[1]);
                    mma_16816(s[mt][2 * np + 1], a, b[2], b[3]);
                }
            }
        }

        // Masks: chunk tail, token-level causal, selection membership.
        const bool need_mask = (k0 + KN > k1) || (k1 - 1 > pos_lo) || ((mask & full_mask) != full_mask);
        // Dense CTAs may span 64 tokens: membership bits exist only in sparse mode
        // (<= 32 tokens), and a shift by >= 32 would read as "not selected".
        float corr[R];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            const int ia = 2 * mt, ib = 2 * mt + 1;
            const bool in_a = !sparse || ((mask >> (pos[ia] - pos_lo)) & 1u);
            const bool in_b = !sparse || ((mask >> (pos[ib] - pos_lo)) & 1u);
            float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
            for (int j = 0; j < KN / 8; ++j) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float x = s[mt][j][e];  // raw q.k: the scale is folded into exp2's FMA below
                    if (need_mask) {
                        int key = k0 + j * 8 + (lane % 4) * 2 + (e & 1);
                        bool ok = key < k1 && (e < 2 ? (in_a && key <= pos[ia]) : (in_b && key <= pos[ib]));
                        x = ok ? x : -INFINITY;
                    }
                    s[mt][j][e] = x;
                }
                mx_a = fmaxf(mx_a, fmaxf(s[mt][j][0], s[mt][j][1]));
                mx_b = fmaxf(mx_b, fmaxf(s[mt][j][2], s[mt][j][3]));
            }
            // scale_log2 > 0 (checked at launch), so max(x) * scale = max(x * scale).
            mx_a = quad_max(mx_a) * p.scale_log2;
            mx_b = quad_max(mx_b) * p.scale_log2;
            const float mn_a = fmaxf(m_run[ia], mx_a), mn_b = fmaxf(m_run[ib], mx_b);
            // A row with nothing visible yet keeps m = -inf; use 0 as the reference so
            // exp2(-inf - ref) = 0 instead of NaN.
            const float ref_a = mn_a == -INFINITY ? 0.f : mn_a, ref_b = mn_b == -INFINITY ? 0.f : mn_b;
            corr[ia] = fast_exp2(m_run[ia] - ref_a);
            corr[ib] = fast_exp2(m_run[ib] - ref_b);
            m_run[ia] = mn_a;
            m_run[ib] = mn_b;
            float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
            for (int j = 0; j < KN / 8; ++j) {
                s[mt][j][0] = fast_exp2(fmaf(s[mt][j][0], p.scale_log2, -ref_a));
                s[mt][j][1] = fast_exp2(fmaf(s[mt][j][1], p.scale_log2, -ref_a));
                s[mt][j][2] = fast_exp2(fmaf(s[mt][j][2], p.scale_log2, -ref_b));
                s[mt][j][3] = fast_exp2(fmaf(s[mt][j][3], p.scale_log2, -ref_b));
                sum_a += s[mt][j][0] + s[mt][j][1];
                sum_b += s[mt][j][2] + s[mt][j][3];
            }
            l_run[ia] = l_run[ia] * corr[ia] + sum_a;
            l_run[ib] = l_run[ib] * corr[ib] + sum_b;
            // Once a row's max has settled (most chunks at long context) the
            // correction is exactly 1: skip the D / 2 multiplies when the whole
            // warp agrees (a warp-uniform branch).
            if (__any_sync(0xffffffffu, corr[ia] != 1.f || corr[ib] != 1.f)) {
#pragma unroll
                for (int j = 0; j < D / 8; ++j) {
                    o[mt][j][0] *= corr[ia];
                    o[mt][j][1] *= corr[ia];
                    o[mt][j][2] *= corr[ib];
                    o[mt][j][3] *= corr[ib];
                }
            }
        }

        cp_async_wait<0>();
        __syncthreads();
        if (i + 1 < n_chunks) {
            int n0, n1;
            uint32_t nm;
            chunk_range(i + 1, n0, n1, nm);
            load_tile_async<D, NT, KN>(ks, kbase + min(n0, p.n_kv - 1) * kv_stride, kv_stride, n1 - n0);
            cp_async_commit();
        }

#pragma unroll
        for (int kk = 0; kk < KN / 16; ++kk) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                a[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                a[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                a[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                a[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                uint32_t b[4];
                int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                int col = dp * 16 + (lane >> 4) * 8;
                ldmatrix_x4_trans(b, smem_addr(vs + swz<D>(key, col)));
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma_16816(o[mt][2 * dp], a[mt], b[0], b[1]);
                    mma_16816(o[mt][2 * dp + 1], a[mt], b[2], b[3]);
                }
            }
        }
    }

    // ---- epilogue ------------------------------------------------------------
    const int c = (lane % 4) * 2;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int ri = 2 * mt + half;
            const float l = quad_sum(l_run[ri]);  // all 32 lanes shuffle: before any skip
            const RowInfo info = row_info(ri);
            if (!info.valid) continue;
            const long grow = static_cast<long>(info.tok) * p.n_heads + info.head;
            if (p.n_splits == 1) {
                const float inv = l > 0.f ? 1.f / l : 0.f;
                bf16* orow = p.out + grow * D;
#pragma unroll
                for (int j = 0; j < D / 8; ++j)
                    *reinterpret_cast<uint32_t*>(orow + j * 8 + c) =
                        pack_bf16(o[mt][j][2 * half] * inv, o[mt][j][2 * half + 1] * inv);
            } else {
                const long nrows = static_cast<long>(p.n_q) * p.n_heads;
                float* po = p.part_o + blockIdx.z * nrows * D;
                float* pml = p.part_ml + blockIdx.z * nrows * 2;
#pragma unroll
                for (int j = 0; j < D / 8; ++j)
                    *reinterpret_cast<float2*>(po + grow * D + j * 8 + c) =
                        make_float2(o[mt][j][2 * half], o[mt][j][2 * half + 1]);
                if (lane % 4 == 0) *reinterpret_cast<float2*>(pml + grow * 2) = make_float2(m_run[ri], l);
            }
        }
    }
}

// Merges split-K partials: one thread per (row, channel).
template <int D>
__global__ void attn_combine_kernel(const float* part_o, const float* part_ml, bf16* out, long nrows, int n_splits) {
    wait_on_prior_grid();
    long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
    if (i >= nrows * D) return;
    long row = i / D;
    int d = static_cast<int>(i % D);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; ++s) M = fmaxf(M, part_ml[(s * nrows + row) * 2]);
    float L = 0.f, acc = 0.f;
    if (M != -INFINITY) {
        for (int s = 0; s < n_splits; ++s) {
            float m = part_ml[(s * nrows + row) * 2], l = part_ml[(s * nrows + row) * 2 + 1];
            if (m == -INFINITY) continue;
            float w = exp2f(m - M);
            L += l * w;
            acc += part_o[(s * nrows + row) * D + d] * w;
        }
    }
    out[i] = __float2bfloat16(L > 0.f ? acc / L : 0.f);
}

}  // namespace msa::kern

// ---- launch template (host) ---------------------------------------------------
#include <cuda_runtime.h>

#include "kernels/cuda_check.h"

namespace msa::kern {

// The fields every attention launcher copies from its op (dense, sparse) into
// its kernel's parameters (AttnParams, BlockMajorParams).
template <class Op, class Params>
void copy_attention_shape(const Op& op, Params& p) {
    p.q = op.q;
    p.k = op.k;
    p.v = op.v;
    p.out = op.out;
    p.n_q = op.n_q;
    p.q_offset = op.q_offset;
    p.n_kv = op.n_kv;
    p.n_heads = op.n_heads;
    p.n_kv_heads = op.n_kv_heads;
    p.group = op.n_heads / op.n_kv_heads;
    p.scale_log2 = op.scale * 1.4426950408889634f;  // softmax in exp2: scale * log2(e)
}

// Launches attn_fwd_kernel<D, WARPS, KN, MT> over (row tiles, groups, splits) and,
// with splits, the combine. part buffers must hold n_splits * n_q * Hq * (D + 2) floats.
template <int D, int WARPS, int KN, int MT = 1>
void launch_attention_tile(AttnParams p, cudaStream_t stream) {
    constexpr int ROWS = 16 * MT * WARPS;
    size_t smem = AttnSmem<D, WARPS, KN, MT>::bytes(p.max_union);
    constexpr auto kernel = attn_fwd_kernel<D, WARPS, KN, MT>;
    ensure_dynamic_smem<kernel>(smem);
    long rows = static_cast<long>(p.n_q) * p.group;
    dim3 grid(static_cast<unsigned>((rows + ROWS - 1) / ROWS), p.n_kv_heads, p.n_splits);
    if (p.n_splits == 1) {
        kernel<<<grid, WARPS * 32, smem, stream>>>(p);
        MSA_CUDA_CHECK(cudaGetLastError());
        return;
    }
    // Split-K is the decode path: the split and the combine are launched
    // programmatically (they wait for their predecessor's memory in-kernel).
    launch_dependent(kernel, grid, dim3(WARPS * 32), smem, stream, p);
    const long nrows = static_cast<long>(p.n_q) * p.n_heads;
    launch_dependent(attn_combine_kernel<D>, dim3(static_cast<unsigned>((nrows * D + 255) / 256)), dim3(256), 0,
                     stream, static_cast<const float*>(p.part_o), static_cast<const float*>(p.part_ml), p.out, nrows,
                     p.n_splits);
}

// Tokens one CTA of `rows` rows can touch when each token owns r rows (the
// union list is merged by one warp, one lane per token: at most 32).
inline int tokens_per_tile(int rows, int r) { return rows / r + 2; }

}  // namespace msa::kern
