#pragma once
// Sparse decode attention (one query token) in one kernel: every CTA of a
// thread-block cluster attends over one 128-key piece of one of its group's
// selected blocks, and the cluster merges the pieces' softmax partials through
// distributed shared memory. Device code and its launch template; the dispatch
// choice lives in sparse_attention.cu.
//
// Why. The split-K path (attention_tile.cuh) ran the prefill tile with one
// block per CTA, wrote fp32 partials to global memory and merged them in a
// second kernel: CUPTI on the H200 at 1M tokens, split 10.3 us + combine 5.5
// us for 4 MiB of K/V, both set by dependent round trips (the union-list
// prologue, the partials through L2, a second launch) and not by work. Here a
// cluster is one group: its CTAs' partials stay in shared memory and are read
// by their peers after one cluster barrier, in rank order (deterministic), and
// the output is written by the same kernel. Measured: 7.9-8.4 us at 1M, twice
// the ~4 us predicted; ncu puts it at 12.7K active cycles per CTA, not yet
// decomposed. Staging K and V by bulk copies instead of cp.async changed
// nothing (8.4 vs 7.9 us; NOTES_cuda.md steps 40, 46, 47).
//
// Layout. CTA rank c of group g's cluster takes pieces c, c + C, ... of the
// group's slots x pieces-per-block list (C = the cluster size, at most 16), each
// piece K and V staged by cp.async; warp w scores keys 32w .. 32w + 31 of the
// piece for the r <= 16 heads (one m16 tile, rows r..15 zero) and keeps an
// online softmax over its pieces; the four warps merge in shared memory into
// the CTA's partial (max, sum, unnormalised O); after the cluster barrier the
// cluster's threads each merge a slice of the group's outputs over the C
// partials.
#include <cooperative_groups.h>

#include "kernels/mma_utils.cuh"

namespace msa::kern {

constexpr int kDecodeAttendThreads = 128;  // 4 warps x 32 keys
constexpr int kDecodePieceKeys = 128;
constexpr int kDecodeMaxCluster = 16;  // cudaFuncAttributeNonPortableClusterSizeAllowed above 8

struct DecodeAttendParams {
    const bf16* q = nullptr;       // [Hq, D]: the token's rows
    const bf16* k = nullptr;       // [n_kv, G, D]
    const bf16* v = nullptr;
    bf16* out = nullptr;           // [Hq, D]
    const int32_t* sel = nullptr;  // [G, slots]: the token's selection
    int slots = 0, block = 0, pieces = 0;  // pieces = ceil(block / 128)
    int q_offset = 0, n_kv = 0, n_heads = 0, n_kv_heads = 0, group = 0;  // q_offset: the token's position
    float scale_log2 = 0;
    int n_q = 0;  // 1; filled by copy_attention_shape with the rest
};

template <int D>
struct DecodeAttendSmem {
    static constexpr int kTile = kDecodePieceKeys * D;  // bf16 per K or V tile
    // K, V, Q (16 rows); the CTA's partial O (16 x D fp32) and (max, sum);
    // each warp's (max, sum). The warps' O (4 x 16 x D fp32) reuses K's bytes.
    static constexpr size_t bytes() { return (2 * kTile + 16 * D) * sizeof(bf16) + 16 * D * 4 + 16 * 8 + 4 * 16 * 8; }
    static_assert(4 * 16 * D * 4 == kTile * 2, "the warps' partials fill K's tile exactly");
};

template <int D>
__global__ void __launch_bounds__(kDecodeAttendThreads) sparse_decode_attend_kernel(const DecodeAttendParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    constexpr int TILE = DecodeAttendSmem<D>::kTile;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* ks = reinterpret_cast<bf16*>(smem_raw);
    bf16* vs = ks + TILE;
    bf16* qs = vs + TILE;
    float* cta_o = reinterpret_cast<float*>(qs + 16 * D);  // [16][D]
    float2* cta_ml = reinterpret_cast<float2*>(cta_o + 16 * D);  // [16]
    float2* warp_ml = cta_ml + 16;  // [4][16]
    float* warp_o = reinterpret_cast<float*>(ks);  // [4][16][D], after the last piece

    wait_on_prior_grid();  // the selection
    cg::cluster_group cluster = cg::this_cluster();
    const int rank = static_cast<int>(cluster.block_rank()), n_ranks = static_cast<int>(cluster.num_blocks());
    const int g = blockIdx.y, r = p.group;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = (lane % 4) * 2;
    const long kv_stride = static_cast<long>(p.n_kv_heads) * D;
    load_tile_async<D, kDecodeAttendThreads, 16>(qs, p.q + static_cast<long>(g) * r * D, D, r);  // rows r..15 zero
    cp_async_commit();

    // This lane's rows a = lane / 4 and b = lane / 4 + 8: running max (log2
    // units), sum and O over the CTA's pieces.
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    const int32_t* row = p.sel + static_cast<long>(g) * p.slots;
    const int n_pieces = p.slots * p.pieces;
    bool staged = false;
    for (int piece = rank; piece < n_pieces; piece += n_ranks) {
        const int slot = piece / p.pieces;
        const int b = row[slot];
        // -1 is padding; a repeated id (the contract says ascending) counts once.
        if (b < 0 || (slot > 0 && row[slot - 1] == b)) continue;
        const int key0 = b * p.block + (piece % p.pieces) * kDecodePieceKeys;
        const int kvalid = min(min(kDecodePieceKeys, (b + 1) * p.block - key0), p.n_kv - key0);
        if (kvalid <= 0) continue;  // uniform over the CTA: every value above is
        if (staged) __syncthreads();  // every warp is done with the previous piece's K and V
        staged = true;
        // K and V in two groups: the scores start while V is in flight.
        load_tile_async<D, kDecodeAttendThreads, kDecodePieceKeys>(ks, p.k + key0 * kv_stride + g * D, kv_stride, kvalid);
        cp_async_commit();
        load_tile_async<D, kDecodeAttendThreads, kDecodePieceKeys>(vs, p.v + key0 * kv_stride + g * D, kv_stride, kvalid);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const int wk = warp * 32;  // this warp's first key of the piece
        if (wk >= kvalid) {
            cp_async_wait<0>();
            __syncthreads();  // V's barrier, which the other warps wait at
            continue;
        }
        float s[4][4];
        mma_scores_tile<D, 32>(s, qs, ks, wk);
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const int key = wk + j * 8 + c + (x & 1);
                if (!(key < kvalid && key0 + key <= p.q_offset)) s[j][x] = -INFINITY;
                if (x < 2) mx_a = fmaxf(mx_a, s[j][x]);
                else mx_b = fmaxf(mx_b, s[j][x]);
            }
        // scale_log2 > 0, so max(x) * scale = max(x * scale).
        const float new_a = fmaxf(m_a, quad_max(mx_a) * p.scale_log2);
        const float new_b = fmaxf(m_b, quad_max(mx_b) * p.scale_log2);
        const float ref_a = new_a == -INFINITY ? 0.f : new_a, ref_b = new_b == -INFINITY ? 0.f : new_b;
        const float keep_a = fast_exp2(m_a - ref_a), keep_b = fast_exp2(m_b - ref_b);  // 0 while m is -inf
        m_a = new_a;
        m_b = new_b;
        float sum_a, sum_b;
        exp_scores_tile<32>(s, p.scale_log2, ref_a, ref_b, sum_a, sum_b);
        cp_async_wait<0>();
        __syncthreads();  // V
        l_a = l_a * keep_a + quad_sum(sum_a);
        l_b = l_b * keep_b + quad_sum(sum_b);
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
            o[j][0] *= keep_a;
            o[j][1] *= keep_a;
            o[j][2] *= keep_b;
            o[j][3] *= keep_b;
        }
        mma_pv_tile<D, 32>(o, s, vs, wk);
    }
    cp_async_wait<0>();  // Q, where this CTA had no piece
    __syncthreads();     // K's bytes become the warps' partials

    // The four warps into the CTA's partial, relative to the CTA's max.
    const int ra = lane / 4, rb = lane / 4 + 8;
    if (lane % 4 == 0) {
        warp_ml[warp * 16 + ra] = make_float2(m_a, l_a);
        warp_ml[warp * 16 + rb] = make_float2(m_b, l_b);
    }
    __syncthreads();
    auto cta_max = [&](int rr) {
        float m = -INFINITY;
#pragma unroll
        for (int w = 0; w < 4; ++w) m = fmaxf(m, warp_ml[w * 16 + rr].x);
        return m;
    };
    const float ma = cta_max(ra), mb = cta_max(rb);
    const float wa = m_a == -INFINITY ? 0.f : fast_exp2(m_a - ma), wb = m_b == -INFINITY ? 0.f : fast_exp2(m_b - mb);
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
        *reinterpret_cast<float2*>(warp_o + (warp * 16 + ra) * D + j * 8 + c) = make_float2(o[j][0] * wa, o[j][1] * wa);
        *reinterpret_cast<float2*>(warp_o + (warp * 16 + rb) * D + j * 8 + c) = make_float2(o[j][2] * wb, o[j][3] * wb);
    }
    if (threadIdx.x < 16) {
        const float m = cta_max(threadIdx.x);
        float l = 0.f;
#pragma unroll
        for (int w = 0; w < 4; ++w) {
            const float2 x = warp_ml[w * 16 + threadIdx.x];
            if (x.x != -INFINITY) l += x.y * fast_exp2(x.x - m);
        }
        cta_ml[threadIdx.x] = make_float2(m, l);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 16 * D / 4; i += kDecodeAttendThreads) {
        float4 t = reinterpret_cast<const float4*>(warp_o)[i];
#pragma unroll
        for (int w = 1; w < 4; ++w) {
            const float4 x = reinterpret_cast<const float4*>(warp_o + w * 16 * D)[i];
            t.x += x.x;
            t.y += x.y;
            t.z += x.z;
            t.w += x.w;
        }
        reinterpret_cast<float4*>(cta_o)[i] = t;
    }

    // The cluster's partials: thread i of rank q takes 4 channels of the
    // group's outputs, merging the ranks in order.
    cluster.sync();
    // Every rank's (max, sum), then every rank's O, each as one batch of
    // independent remote loads (a loop over n_ranks with each load behind the
    // last would be 2 x 16 dependent DSMEM round trips).
    for (int i = rank * kDecodeAttendThreads + threadIdx.x; i < r * D / 4; i += n_ranks * kDecodeAttendThreads) {
        const int rr = i / (D / 4);
        float2 ml[kDecodeMaxCluster];
#pragma unroll
        for (int q = 0; q < kDecodeMaxCluster; ++q)
            ml[q] = q < n_ranks ? cluster.map_shared_rank(cta_ml, q)[rr] : make_float2(-INFINITY, 0.f);
        float M = -INFINITY;
#pragma unroll
        for (int q = 0; q < kDecodeMaxCluster; ++q) M = fmaxf(M, ml[q].x);
        float4 x[kDecodeMaxCluster];
#pragma unroll
        for (int q = 0; q < kDecodeMaxCluster; ++q)
            x[q] = ml[q].x != -INFINITY ? reinterpret_cast<const float4*>(cluster.map_shared_rank(cta_o, q))[i]
                                        : make_float4(0.f, 0.f, 0.f, 0.f);
        float L = 0.f;
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int q = 0; q < kDecodeMaxCluster; ++q) {
            if (ml[q].x == -INFINITY) continue;
            const float w = fast_exp2(ml[q].x - M);
            L += ml[q].y * w;
            acc.x += x[q].x * w;
            acc.y += x[q].y * w;
            acc.z += x[q].z * w;
            acc.w += x[q].w * w;
        }
        const float inv = L > 0.f ? 1.f / L : 0.f;
        uint2 packed;
        packed.x = pack_bf16(acc.x * inv, acc.y * inv);
        packed.y = pack_bf16(acc.z * inv, acc.w * inv);
        *reinterpret_cast<uint2*>(p.out + static_cast<long>(g) * r * D + i * 4) = packed;
    }
    cluster.sync();  // no CTA leaves while a peer may still read its shared memory
#else
    __trap();  // the launcher takes this path only on sm_90 and newer
#endif
}

}  // namespace msa::kern
