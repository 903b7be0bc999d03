#pragma once
// Block-major ("KV-block-outer") sparse prefill: the main branch turned around
// so that each selected key block is staged once per 64 (token, slot) entries
// instead of once per token. Device code and its launch template; the
// dispatch choice lives in sparse_attention.cu.
//
// Why. The token-major tile (attention_tile.cuh) stages every token's 16
// selected blocks on its own: 1 MiB of K/V per token and group for 16 MFLOP,
// 16 FLOP per byte through L2, which bounds it at the L2 bandwidth (about 7 TB/s
// measured on the H100: 78 ms at 128K, NOTES_cuda.md) whatever the MMA rate.
// Here a CTA stages one block's K and V (64 KiB) and runs every entry of a
// chunk of that block's reverse-index list against it; what moves per
// (token, group, block) is the token's Q (4 KiB), a normalised partial output
// in bf16 (4 KiB) and its (max, sum), read back once by the merge: about
// 12 KiB instead of 64 KiB. MiniMax's training kernel runs the same way.
//
// Passes per window of tokens (the window bounds the partials' memory):
//   count   per (group, block): how many (token, slot) entries chose it
//   plan    one CTA: exclusive scans of the counts (list offsets) and of the
//           chunks per list (ceil(count / kEntriesPerChunk)), the work map
//   fill    the reverse index: entry = token_in_window * slots + slot
//   attend  one CTA per chunk: K/V of the block in shared memory, one warp
//           per entry (r heads = the m16 rows), exact softmax over the block
//           with the token-level causal mask on the diagonal block
//   merge   per (token, head): the softmax-weighted sum of its partials in slot
//           order, so the output does not depend on the order the fill's
//           atomics gave the list.
#include <cub/block/block_scan.cuh>

#include "kernels/mma_utils.cuh"

namespace msa::kern {

constexpr int kEntriesPerChunk = 64;
constexpr int kBlockMajorThreads = 128;

struct BlockMajorParams {
    const bf16* q = nullptr;
    const bf16* k = nullptr;
    const bf16* v = nullptr;
    bf16* out = nullptr;
    const int32_t* sel = nullptr;  // [n_q, G, slots]
    int slots = 0, block = 0, nb = 0;
    int n_q = 0, q_offset = 0, n_kv = 0, n_heads = 0, n_kv_heads = 0, group = 0;
    float scale_log2 = 0;
    int w0 = 0, nw = 0;          // this pass: tokens [w0, w0 + nw)
    int* count = nullptr;        // [G * nb]
    int* offset = nullptr;       // [G * nb]
    int* cursor = nullptr;       // [G * nb]
    int* chunk_off = nullptr;    // [G * nb + 1]
    int* list = nullptr;         // [nw * G * slots]
    bf16* part_o = nullptr;      // [nw, G, slots, r, D], normalised by l
    float2* part_ml = nullptr;   // [nw, G, slots, r]: (max in log2 units, sum)
};

// count (fill = false) or fill (true): one thread per (token of the window, group, slot).
template <bool FILL>
__global__ void block_major_index_kernel(const BlockMajorParams p) {
    const long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
    const int G = p.n_kv_heads;
    if (i >= static_cast<long>(p.nw) * G * p.slots) return;
    const int b = p.sel[static_cast<long>(p.w0) * G * p.slots + i];
    if (b < 0) return;
    const int g = static_cast<int>((i / p.slots) % G);
    if (FILL) {
        const int at = atomicAdd(&p.cursor[g * p.nb + b], 1);
        const long tl = i / (static_cast<long>(p.slots) * G);
        p.list[at] = static_cast<int>(tl) * p.slots + static_cast<int>(i % p.slots);
    } else {
        atomicAdd(&p.count[g * p.nb + b], 1);
    }
}

// One CTA of 1024 threads scans the G * nb counts in tiles of 1024 * ITEMS.
template <int ITEMS>
__global__ void __launch_bounds__(1024) block_major_plan_kernel(const BlockMajorParams p) {
    using Scan = cub::BlockScan<int, 1024>;
    __shared__ typename Scan::TempStorage temp;
    __shared__ int carry_entries, carry_chunks;
    const int n = p.n_kv_heads * p.nb;
    if (threadIdx.x == 0) carry_entries = carry_chunks = 0;
    __syncthreads();
    for (int base = 0; base < n; base += 1024 * ITEMS) {
        int cnt[ITEMS], chunks[ITEMS];
#pragma unroll
        for (int j = 0; j < ITEMS; ++j) {
            const int i = base + threadIdx.x * ITEMS + j;
            cnt[j] = i < n ? p.count[i] : 0;
            chunks[j] = (cnt[j] + kEntriesPerChunk - 1) / kEntriesPerChunk;
        }
        int tile_entries = 0, tile_chunks = 0;
        Scan(temp).ExclusiveSum(cnt, cnt, tile_entries);
        __syncthreads();
        Scan(temp).ExclusiveSum(chunks, chunks, tile_chunks);
        const int ce = carry_entries, cc = carry_chunks;
#pragma unroll
        for (int j = 0; j < ITEMS; ++j) {
            const int i = base + threadIdx.x * ITEMS + j;
            if (i < n) {
                p.offset[i] = ce + cnt[j];
                p.cursor[i] = ce + cnt[j];
                p.chunk_off[i] = cc + chunks[j];
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            carry_entries = ce + tile_entries;
            carry_chunks = cc + tile_chunks;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) p.chunk_off[n] = carry_chunks;
}

// Shared memory of the attend kernel: the block's K and V, each warp's two Q
// buffers (the next entry's Q streams in while the current one computes), the
// chunk's entries.
template <int D, int KB>
struct BlockMajorSmem {
    static constexpr int kQTile = 16 * D;  // one entry's r <= 16 query rows
    static constexpr size_t bytes() {
        return (2 * KB * D + 2 * (kBlockMajorThreads / 32) * kQTile) * sizeof(bf16) + kEntriesPerChunk * 4;
    }
};

// KB keys of shared memory per staged block (the block size rounded up).
template <int D, int KB>
__global__ void __launch_bounds__(kBlockMajorThreads) block_major_attend_kernel(const BlockMajorParams p) {
    constexpr int WARPS = kBlockMajorThreads / 32;
    constexpr int QT = BlockMajorSmem<D, KB>::kQTile;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* ks = reinterpret_cast<bf16*>(smem_raw);
    bf16* vs = ks + KB * D;
    bf16* qs = vs + KB * D;  // [WARPS][2][16][D], swizzled like K
    int* entries = reinterpret_cast<int*>(qs + 2 * WARPS * QT);
    const int G = p.n_kv_heads, n = G * p.nb;
    const int cta = blockIdx.x;
    if (cta >= p.chunk_off[n]) return;  // the grid is an upper bound on the chunks
    // The list whose chunk range holds this CTA: the last gb with chunk_off[gb] <= cta
    // (empty lists share their successor's offset, so "last" skips them).
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (p.chunk_off[mid] <= cta) lo = mid;
        else hi = mid - 1;
    }
    const int gb = lo, g = gb / p.nb, b = gb % p.nb;
    const int first = p.offset[gb] + (cta - p.chunk_off[gb]) * kEntriesPerChunk;
    const int n_entries = min(p.offset[gb] + p.count[gb], first + kEntriesPerChunk) - first;
    if (threadIdx.x < n_entries) entries[threadIdx.x] = p.list[first + threadIdx.x];

    const long kv_stride = static_cast<long>(G) * D;
    const int k0 = b * p.block;
    const int kvalid = min(p.block, p.n_kv - k0);
    load_tile_async<D, kBlockMajorThreads>(ks, p.k + k0 * kv_stride + g * D, kv_stride, KB, kvalid);
    load_tile_async<D, kBlockMajorThreads>(vs, p.v + k0 * kv_stride + g * D, kv_stride, KB, kvalid);
    cp_async_commit();
    __syncthreads();  // the entries

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = p.group;
    const int ha = lane / 4, hb = lane / 4 + 8;  // this lane's rows: heads of the group
    const bool va = ha < r, vb = hb < r;
    const int c = (lane % 4) * 2;
    bf16* my_q = qs + warp * 2 * QT;
    // Rows r..15 of the tile are zero-filled: their scores are computed and dropped.
    auto stage_q = [&](int i, int buf) {
        const int t = p.w0 + entries[i] / p.slots;
        const bf16* src = p.q + (static_cast<long>(t) * p.n_heads + g * r) * D;
        for (int ch = lane; ch < 16 * (D / 8); ch += 32) {
            const int row = ch / (D / 8), col = (ch % (D / 8)) * 8;
            cp_async16(smem_addr(my_q + buf * QT + swz<D>(row, col)), src + (row < r ? row * D + col : 0), row < r);
        }
    };
    if (warp < n_entries) stage_q(warp, 0);
    cp_async_commit();
    cp_async_wait<1>();  // K and V (the first Q may still be in flight)
    __syncthreads();

    for (int i = warp, buf = 0; i < n_entries; i += WARPS, buf ^= 1) {
        const int entry = entries[i];
        const int tl = entry / p.slots, slot = entry % p.slots;
        const int t = p.w0 + tl, pos = p.q_offset + t;
        if (i + WARPS < n_entries) stage_q(i + WARPS, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();  // this entry's Q
        __syncwarp();
        const bf16* qt = my_q + buf * QT;
        float s[KB / 8][4];
        mma_scores_tile<D, KB>(s, qt, ks, 0);
        __syncwarp();  // every lane is done with this Q buffer before it is refilled
        // Token-level causal mask on the diagonal block, and the block's tail.
        if (kvalid < KB || k0 + KB - 1 > pos) {
#pragma unroll
            for (int j = 0; j < KB / 8; ++j)
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    const int key = j * 8 + c + (x & 1);
                    if (!(key < kvalid && k0 + key <= pos)) s[j][x] = -INFINITY;
                }
        }
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int j = 0; j < KB / 8; ++j) {
            mx_a = fmaxf(mx_a, fmaxf(s[j][0], s[j][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[j][2], s[j][3]));
        }
        // scale_log2 > 0, so max(x) * scale = max(x * scale). A row with no visible
        // key (a selection naming a block after the token's own) keeps -inf and
        // sums to 0, which the merge gives weight 0.
        const float m_a = quad_max(mx_a) * p.scale_log2, m_b = quad_max(mx_b) * p.scale_log2;
        const float ref_a = m_a == -INFINITY ? 0.f : m_a, ref_b = m_b == -INFINITY ? 0.f : m_b;
        float sum_a, sum_b;
        exp_scores_tile<KB>(s, p.scale_log2, ref_a, ref_b, sum_a, sum_b);
        const float l_a = quad_sum(sum_a), l_b = quad_sum(sum_b);

        float o[D / 8][4];
#pragma unroll
        for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
        mma_pv_tile<D, KB>(o, s, vs, 0);
        const long prow = (static_cast<long>(tl) * G + g) * p.slots + slot;  // partial row of head 0
        // Rows a (x = 0: accumulators 0, 1) and b (x = 1: accumulators 2, 3).
        auto write_row = [&](int head, int x, float m, float l) {
            const float inv = l > 0.f ? 1.f / l : 0.f;
            bf16* dst = p.part_o + (prow * r + head) * D;
#pragma unroll
            for (int j = 0; j < D / 8; ++j)
                *reinterpret_cast<uint32_t*>(dst + j * 8 + c) = pack_bf16(o[j][2 * x] * inv, o[j][2 * x + 1] * inv);
            if (c == 0) p.part_ml[prow * r + head] = make_float2(m, l);
        };
        if (va) write_row(ha, 0, m_a, l_a);
        if (vb) write_row(hb, 1, m_b, l_b);
    }
}

// One thread per (token of the window, group, head, 8 channels).
//
// The slots go in batches of kMergeBatch whose loads (selection entry, (max,
// sum), 16 bytes of partial) are all issued before any is used, with an online
// rescale between batches. The version before loaded each slot's partial
// behind a branch on its (max, sum), two dependent round trips per slot: 10.7
// ms at 128K for 34 GB of partials (3.2 TB/s, NOTES_cuda.md step 39).
constexpr int kMergeBatch = 8;
template <int D>
__global__ void block_major_merge_kernel(const BlockMajorParams p) {
    constexpr int CH = D / 8;
    const long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
    const int G = p.n_kv_heads, r = p.group;
    if (i >= static_cast<long>(p.nw) * G * r * CH) return;
    const int ch = static_cast<int>(i % CH);
    const long row = i / CH;  // (tl, g, h)
    const int h = static_cast<int>(row % r);
    const long tg = row / r;  // tl * G + g
    const int g = static_cast<int>(tg % G);
    const long t = p.w0 + tg / G;
    const int32_t* srow = p.sel + (t * G + g) * p.slots;
    const long part0 = tg * p.slots * r + h;  // partial of slot s: part0 + s * r
    float M = -INFINITY, L = 0.f;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int s0 = 0; s0 < p.slots; s0 += kMergeBatch) {
        float2 ml[kMergeBatch];
        uint4 u[kMergeBatch];
        bool used[kMergeBatch];
#pragma unroll
        for (int j = 0; j < kMergeBatch; ++j) {
            // Past the last slot: re-read the last one (in bounds) and drop it.
            // A slot with no block has a partial row of stale bytes; it is read
            // like the others and given no weight below.
            const int s = min(s0 + j, p.slots - 1);
            const long at = part0 + static_cast<long>(s) * r;
            used[j] = s0 + j < p.slots && srow[s] >= 0;
            ml[j] = p.part_ml[at];
            u[j] = *reinterpret_cast<const uint4*>(p.part_o + at * D + ch * 8);
        }
        float batch_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < kMergeBatch; ++j) {
            used[j] = used[j] && ml[j].y > 0.f;
            if (used[j]) batch_max = fmaxf(batch_max, ml[j].x);
        }
        if (batch_max > M) {
            const float rescale = M == -INFINITY ? 0.f : exp2f(M - batch_max);
            L *= rescale;
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[e] *= rescale;
            M = batch_max;
        }
#pragma unroll
        for (int j = 0; j < kMergeBatch; ++j) {
            if (!used[j]) continue;  // stale bytes may be NaN: no 0 * x
            const float w = ml[j].y * exp2f(ml[j].x - M);
            L += w;
            const uint32_t words[4] = {u[j].x, u[j].y, u[j].z, u[j].w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const __nv_bfloat162 pair = *reinterpret_cast<const __nv_bfloat162*>(&words[e]);
                acc[2 * e] += w * __low2float(pair);
                acc[2 * e + 1] += w * __high2float(pair);
            }
        }
    }
    const float inv = L > 0.f ? 1.f / L : 0.f;
    uint4 outv;
    outv.x = pack_bf16(acc[0] * inv, acc[1] * inv);
    outv.y = pack_bf16(acc[2] * inv, acc[3] * inv);
    outv.z = pack_bf16(acc[4] * inv, acc[5] * inv);
    outv.w = pack_bf16(acc[6] * inv, acc[7] * inv);
    *reinterpret_cast<uint4*>(p.out + (t * p.n_heads + g * r + h) * D + ch * 8) = outv;
}

}  // namespace msa::kern
