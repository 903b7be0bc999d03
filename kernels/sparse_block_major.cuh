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
    int* chunk_list = nullptr;   // [chunks]: the list (g * nb + b) each attend chunk belongs to
    int* list = nullptr;         // [nw * G * slots]
    bf16* part_o = nullptr;      // [nw, G, slots] of [D / 64][r][64] (partial_at), normalised by l
    float2* part_ml = nullptr;   // [nw, G, slots, r]: (max in log2 units, sum)
};

// count (FILL = false) or fill (true) of the reverse index, through a
// histogram in shared memory: a CTA takes a run of the window's (token, group,
// slot) entries and the lists [list0, list0 + kListsPerSlice) of its slice
// (grid.y); an entry whose list is outside the slice is left to another CTA.
// The count adds each list's histogram to the global count once per CTA; the
// fill reserves each list's run of the reverse index with one atomic per CTA,
// then places its entries with shared-memory atomics. The version before took
// one global atomic per entry (returning, for the fill): 1.0 ms of the 128K
// main branch for 8.4M entries, bound by the L2's atomic units.
//
// The order within a list still depends on the atomics; the merge sums in slot
// order, so the output does not.
constexpr int kListsPerSlice = 12288;  // 48 KiB of counters, no opt-in needed
constexpr int kIndexThreads = 512;
__host__ __device__ constexpr long block_major_index_entries_per_cta(int n_lists) {
    // Enough entries per CTA that its histogram's flush (one pass over the
    // slice) stays small against the entries themselves.
    return 4L * (n_lists < kListsPerSlice ? (n_lists > 4096 ? n_lists : 4096) : kListsPerSlice);
}
template <bool FILL>
__global__ void __launch_bounds__(kIndexThreads) block_major_index_kernel(const BlockMajorParams p) {
    __shared__ int hist[kListsPerSlice];
    const int G = p.n_kv_heads, n_lists = G * p.nb;
    const int list0 = blockIdx.y * kListsPerSlice, n_slice = min(kListsPerSlice, n_lists - list0);
    const long per_cta = block_major_index_entries_per_cta(n_lists);
    const long first = blockIdx.x * per_cta;
    const long end = min(first + per_cta, static_cast<long>(p.nw) * G * p.slots);
    const int32_t* sel = p.sel + static_cast<long>(p.w0) * G * p.slots;
    // The entry's list in this slice, or -1.
    auto slice_list = [&](long i) {
        const int b = sel[i];
        const int l = static_cast<int>((i / p.slots) % G) * p.nb + b - list0;
        return b >= 0 && l >= 0 && l < n_slice ? l : -1;
    };
    for (int l = threadIdx.x; l < n_slice; l += kIndexThreads) hist[l] = 0;
    __syncthreads();
    for (long i = first + threadIdx.x; i < end; i += kIndexThreads) {
        const int l = slice_list(i);
        if (l >= 0) atomicAdd(&hist[l], 1);
    }
    __syncthreads();
    for (int l = threadIdx.x; l < n_slice; l += kIndexThreads) {
        const int n = hist[l];
        if (n == 0) continue;
        if (FILL)
            hist[l] = atomicAdd(&p.cursor[list0 + l], n);
        else
            atomicAdd(&p.count[list0 + l], n);
    }
    if (!FILL) return;
    __syncthreads();
    for (long i = first + threadIdx.x; i < end; i += kIndexThreads) {
        const int l = slice_list(i);
        if (l < 0) continue;
        const long tl = i / (static_cast<long>(p.slots) * G);
        p.list[atomicAdd(&hist[l], 1)] = static_cast<int>(tl) * p.slots + static_cast<int>(i % p.slots);
    }
}
inline dim3 block_major_index_grid(long entries, int n_lists) {
    const long per_cta = block_major_index_entries_per_cta(n_lists);
    return dim3(static_cast<unsigned>((entries + per_cta - 1) / per_cta),
                static_cast<unsigned>((n_lists + kListsPerSlice - 1) / kListsPerSlice));
}

// One CTA of 1024 threads scans the G * nb counts in tiles of 1024 * ITEMS.
template <int ITEMS>
__global__ void __launch_bounds__(1024) block_major_plan_kernel(const BlockMajorParams p) {
    using Scan = cub::BlockScan<int, 1024>;
    constexpr int kTile = 1024 * ITEMS;
    __shared__ typename Scan::TempStorage temp;
    __shared__ int tile_chunk_off[kTile + 1];  // the tile's lists' first chunks, tile-relative
    __shared__ int carry_entries, carry_chunks;
    const int n = p.n_kv_heads * p.nb;
    if (threadIdx.x == 0) carry_entries = carry_chunks = 0;
    __syncthreads();
    for (int base = 0; base < n; base += kTile) {
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
            tile_chunk_off[threadIdx.x * ITEMS + j] = chunks[j];
            if (i < n) {
                p.offset[i] = ce + cnt[j];
                p.cursor[i] = ce + cnt[j];
                p.chunk_off[i] = cc + chunks[j];
            }
        }
        if (threadIdx.x == 0) tile_chunk_off[kTile] = tile_chunks;
        __syncthreads();
        // The chunk map: each attend CTA finds its list there with one load (it
        // used to binary-search chunk_off, 12 dependent L2 round trips at 128K
        // before its K/V load could start). Written one chunk per thread, the
        // list found by a search in shared memory, so the stores are coalesced;
        // each thread writing its own lists' chunks measured 0.20 against 0.18
        // ms for the 5 windows at 128K.
        for (int c = threadIdx.x; c < tile_chunks; c += 1024) {
            int lo = 0, hi = kTile;  // the last list whose first chunk is <= c
            while (hi - lo > 1) {
                const int mid = (lo + hi) / 2;
                if (tile_chunk_off[mid] <= c) lo = mid; else hi = mid;
            }
            p.chunk_list[cc + c] = base + lo;
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

// Shared memory of the attend kernels: the block's K and V, each warp's two Q
// buffers (the next entry's Q streams in while the current one computes), the
// chunk's entries; 1 KiB of slack aligns the wgmma kernel's K and V (its
// 128-byte swizzle is on address bits). The wgmma kernel adds each warp's
// partial staging tile and keeps the entries in the slack where it has room
// (entries_at there): with them after the tiles it would need 256 B more
// than two CTAs per SM leave.
template <int D, int KB>
struct BlockMajorSmem {
    static constexpr int kQTile = 16 * D;  // one entry's r <= 16 query rows
    static constexpr size_t tiles = (2 * KB * D + 2 * (kBlockMajorThreads / 32) * kQTile) * sizeof(bf16);
    static constexpr size_t stage = (kBlockMajorThreads / 32) * kQTile * sizeof(bf16);
    static constexpr size_t bytes() { return 1024 + tiles + kEntriesPerChunk * 4; }
    static constexpr size_t wgmma_bytes() { return 1024 + tiles + stage; }
};

// A partial's element (row, col) within its entry's [D / 64][r][64] run. The
// 16-byte chunks of each 128-byte row are XOR-swizzled by the row, so that
// the wgmma kernel's stmatrix into a staging tile of the same layout hits 8
// distinct bank groups, and the tile goes out as one bulk copy per 64 columns.
__host__ __device__ __forceinline__ int partial_at(int r, int row, int col) {
    return (col / 64) * r * 64 + row * 64 + ((((col % 64) / 8) ^ (row & 7)) * 8) + col % 8;
}

// The chunk a CTA of the attend grid owns: list gb = (g, b) and its entries
// [first, first + n_entries). False for the spare CTAs past the last chunk.
struct BlockMajorChunk {
    int g, b, first, n_entries;
};
__device__ __forceinline__ bool block_major_chunk(const BlockMajorParams& p, BlockMajorChunk& c) {
    const int cta = blockIdx.x;
    if (cta >= p.chunk_off[p.n_kv_heads * p.nb]) return false;  // the grid is an upper bound on the chunks
    const int lo = p.chunk_list[cta];
    c.g = lo / p.nb;
    c.b = lo % p.nb;
    c.first = p.offset[lo] + (cta - p.chunk_off[lo]) * kEntriesPerChunk;
    c.n_entries = min(p.offset[lo] + p.count[lo], c.first + kEntriesPerChunk) - c.first;
    return true;
}

// The attend kernels' shared memory and start: the CTA's chunk (false for a
// spare CTA), its entries into shared memory, and the block's K and V staged
// [KB][D] (swz, or swz128 for wgmma) as one cp.async group.
struct BlockMajorCta {
    bf16 *ks, *vs, *qs;  // K, V, then each warp's two 16-row Q buffers [WARPS][2][16][D] (swz)
    int* entries;
    int g, n_entries, k0, kvalid;
};
template <int D, int KB, bool SW128>
__device__ __forceinline__ bool block_major_begin(const BlockMajorParams& p, unsigned char* smem, int* entries,
                                                  BlockMajorCta& c) {
    c.ks = reinterpret_cast<bf16*>(smem);
    c.vs = c.ks + KB * D;
    c.qs = c.vs + KB * D;
    c.entries = entries;
    BlockMajorChunk ch;
    if (!block_major_chunk(p, ch)) return false;
    c.g = ch.g;
    c.n_entries = ch.n_entries;
    if (threadIdx.x < ch.n_entries) c.entries[threadIdx.x] = p.list[ch.first + threadIdx.x];
    const long kv_stride = static_cast<long>(p.n_kv_heads) * D;
    c.k0 = ch.b * p.block;
    c.kvalid = min(p.block, p.n_kv - c.k0);
    load_tile_async<D, kBlockMajorThreads, KB, SW128>(c.ks, p.k + c.k0 * kv_stride + ch.g * D, kv_stride, c.kvalid);
    load_tile_async<D, kBlockMajorThreads, KB, SW128>(c.vs, p.v + c.k0 * kv_stride + ch.g * D, kv_stride, c.kvalid);
    cp_async_commit();
    __syncthreads();  // the entries
    return true;
}

// One warp stages an entry's r query rows (heads g*r ..) into a swizzled 16-row
// tile; rows r..15 are zero-filled, their scores computed and dropped.
template <int D>
__device__ __forceinline__ void stage_entry_q(const BlockMajorParams& p, int entry, int g, bf16* dst) {
    const int lane = threadIdx.x % 32, r = p.group;
    const int t = p.w0 + entry / p.slots;
    const bf16* src = p.q + (static_cast<long>(t) * p.n_heads + g * r) * D;
#pragma unroll
    for (int ch = lane; ch < 16 * (D / 8); ch += 32) {
        const int row = ch / (D / 8), col = (ch % (D / 8)) * 8;
        cp_async16(smem_addr(dst + swz<D>(row, col)), src + (row < r ? row * D + col : 0), row < r);
    }
}

// A warp's 16 rows of scores over one block (s in mma.sync's C layout, keys
// 8j..8j+7 in s[j]) to unnormalised probabilities: the token-level causal mask
// on the diagonal block and the block's tail, the rows' max in log2 units (m)
// and their sums (l) for rows a = lane / 4 and b = lane / 4 + 8.
template <int KB>
__device__ __forceinline__ void block_softmax_rows(float (&s)[KB / 8][4], int k0, int kvalid, int pos,
                                                   float scale_log2, float& m_a, float& m_b, float& l_a, float& l_b) {
    const int c = (threadIdx.x % 4) * 2;
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
    m_a = quad_max(mx_a) * scale_log2;
    m_b = quad_max(mx_b) * scale_log2;
    const float ref_a = m_a == -INFINITY ? 0.f : m_a, ref_b = m_b == -INFINITY ? 0.f : m_b;
    float sum_a, sum_b;
    exp_scores_tile<KB>(s, scale_log2, ref_a, ref_b, sum_a, sum_b);
    l_a = quad_sum(sum_a);
    l_b = quad_sum(sum_b);
}

// Writes a warp's 16-row partial (o in mma.sync's C layout, normalised here by
// l) and its (max, sum) for the group's r heads; partial row of head 0 = prow.
template <int D>
__device__ __forceinline__ void write_block_partial(const BlockMajorParams& p, const float (&o)[D / 8][4], long prow,
                                                    float m_a, float m_b, float l_a, float l_b) {
    const int lane = threadIdx.x % 32, r = p.group, c = (lane % 4) * 2;
    // Rows a (x = 0: accumulators 0, 1) and b (x = 1: accumulators 2, 3).
    auto write_row = [&](int head, int x, float m, float l) {
        const float inv = l > 0.f ? 1.f / l : 0.f;
        bf16* dst = p.part_o + prow * r * D;
#pragma unroll
        for (int j = 0; j < D / 8; ++j)
            *reinterpret_cast<uint32_t*>(dst + partial_at(r, head, j * 8 + c)) =
                pack_bf16(o[j][2 * x] * inv, o[j][2 * x + 1] * inv);
        if (c == 0) p.part_ml[prow * r + head] = make_float2(m, l);
    };
    if (lane / 4 < r) write_row(lane / 4, 0, m_a, l_a);
    if (lane / 4 + 8 < r) write_row(lane / 4 + 8, 1, m_b, l_b);
}

// write_block_partial for the wgmma attend: the warp's 16 x D tile goes to
// its staging tile by stmatrix and out as one bulk copy per 64 columns (the r
// valid rows); the (max, sum) pairs as before. Measured (H200, 128K, same
// call; NOTES_cuda.md step 63): with the partials not written at all the main
// branch took 25.7 instead of 39.1 ms; the direct stores above, 32 four-byte
// stores per lane that each touch 8 rows' lines, went to 36.7 ms with the
// swizzled layout alone and to 35.3 ms this way (CUPTI: attend 28.8 -> 24.1
// ms; the merge's slowdown that came with the layout is step 65, below).
template <int D>
__device__ __forceinline__ void write_block_partial_staged(const BlockMajorParams& p, const float (&o)[D / 8][4],
                                                           long prow, float m_a, float m_b, float l_a, float l_b,
                                                           bf16* stage) {
#if defined(MSA_HAVE_WGMMA)  // the bulk copies are sm_90a's, like the kernel calling this
    const int lane = threadIdx.x % 32, r = p.group, c = (lane % 4) * 2;
    const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
    bulk_wait_read_if(lane == 0);  // the previous group's copies are done with the tile
    __syncwarp();
    // Matrices (rows 0-7, cols j), (rows 8-15, j), (0-7, j + 1), (8-15, j + 1).
    const int row = lane % 8 + (lane / 8 % 2) * 8, half = lane / 16;
#pragma unroll
    for (int j = 0; j < D / 8; j += 2)
        stmatrix_x4(smem_addr(stage + partial_at(16, row, (j + half) * 8)), pack_bf16(o[j][0] * inv_a, o[j][1] * inv_a),
                    pack_bf16(o[j][2] * inv_b, o[j][3] * inv_b), pack_bf16(o[j + 1][0] * inv_a, o[j + 1][1] * inv_a),
                    pack_bf16(o[j + 1][2] * inv_b, o[j + 1][3] * inv_b));
    fence_proxy_async();  // the generic proxy's writes, before the async proxy reads them
    __syncwarp();
    bf16* dst = p.part_o + prow * r * D;
#pragma unroll
    for (int dh = 0; dh < D / 64; ++dh) bulk_store_if(lane == 0, dst + dh * r * 64, stage + dh * 16 * 64, r * 128);
    bulk_commit_if(lane == 0);
    if (c == 0 && lane / 4 < r) p.part_ml[prow * r + lane / 4] = make_float2(m_a, l_a);
    if (c == 0 && lane / 4 + 8 < r) p.part_ml[prow * r + lane / 4 + 8] = make_float2(m_b, l_b);
#endif
}

// mma.sync attend, KB keys of shared memory per staged block (the block size
// rounded up): one warp per entry, K and V fragments read by ldmatrix per warp.
template <int D, int KB>
__global__ void __launch_bounds__(kBlockMajorThreads) block_major_attend_kernel(const BlockMajorParams p) {
    constexpr int WARPS = kBlockMajorThreads / 32;
    constexpr int QT = BlockMajorSmem<D, KB>::kQTile;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    BlockMajorCta c;
    if (!block_major_begin<D, KB, false>(p, smem_raw, reinterpret_cast<int*>(smem_raw + BlockMajorSmem<D, KB>::tiles), c))
        return;
    const bf16 *ks = c.ks, *vs = c.vs;
    const int* entries = c.entries;
    const int g = c.g, n_entries = c.n_entries, k0 = c.k0, kvalid = c.kvalid;

    const int warp = threadIdx.x / 32;
    bf16* my_q = c.qs + warp * 2 * QT;
    if (warp < n_entries) stage_entry_q<D>(p, entries[warp], g, my_q);
    cp_async_commit();
    cp_async_wait<1>();  // K and V (the first Q may still be in flight)
    __syncthreads();

    for (int i = warp, buf = 0; i < n_entries; i += WARPS, buf ^= 1) {
        const int entry = entries[i];
        const int tl = entry / p.slots, slot = entry % p.slots;
        const int pos = p.q_offset + p.w0 + tl;
        if (i + WARPS < n_entries) stage_entry_q<D>(p, entries[i + WARPS], g, my_q + (buf ^ 1) * QT);
        cp_async_commit();
        cp_async_wait<1>();  // this entry's Q
        __syncwarp();
        float s[KB / 8][4];
        mma_scores_tile<D, KB>(s, my_q + buf * QT, ks, 0);
        __syncwarp();  // every lane is done with this Q buffer before it is refilled
        float m_a, m_b, l_a, l_b;
        block_softmax_rows<KB>(s, k0, kvalid, pos, p.scale_log2, m_a, m_b, l_a, l_b);
        float o[D / 8][4];
#pragma unroll
        for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
        mma_pv_tile<D, KB>(o, s, vs, 0);
        write_block_partial<D>(p, o, (static_cast<long>(tl) * p.n_kv_heads + g) * p.slots + slot, m_a, m_b, l_a, l_b);
    }
}

// wgmma attend (sm_90a): the warpgroup takes 4 entries at a time as one m64
// tile (warp w's 16 rows are entry 4i + w), so each K and V byte in shared
// memory feeds 64 rows per read instead of 16: S = Q K^T as m64n64k16 with Q
// fragments in registers and K K-major, P x V with P from the score registers
// and V [key][d] read MN-major (the transpose bit), both in the 128-byte
// swizzle. The mma.sync kernel above reads 68 KiB of shared memory per entry
// through ldmatrix, which with its dependency stalls at 8 warps per SM held it
// at about twice that read floor (NOTES_cuda.md, sessions 3 and 6).
//
// Pipelined by one group: group i + 1's scores are issued right after group
// i's P x V, so the tensor cores run both back to back and group i's partial
// is written while group i + 1's scores compute. Shared memory (K and V, 64
// KiB) holds the kernel at 2 CTAs per SM, so the registers this costs (two
// accumulator sets and both products' A fragments live at once) are free.
// Measured (H200, 128K, CUPTI; NOTES_cuda.md steps 49-50): mma.sync 34.3 ms,
// this kernel unpipelined 31.5 ms, pipelined 28.7 ms. The partial staging
// tiles (16 KiB) fill the rest of the two CTAs' share of shared memory to
// the byte (BlockMajorSmem).
template <int D, int KB>
__global__ void __launch_bounds__(kBlockMajorThreads) block_major_attend_wgmma_kernel(const BlockMajorParams p) {
#if defined(MSA_HAVE_WGMMA)  // declared in every pass; the body exists only in sm_90a code
    constexpr int WARPS = kBlockMajorThreads / 32;
    static_assert(WARPS == 4, "one warpgroup");
    constexpr int QT = BlockMajorSmem<D, KB>::kQTile;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    // K and V ([D / 64][KB][64] each, swz128) 1024-byte aligned by an offset;
    // the entries in that offset where it holds them, else after the tiles.
    using Smem = BlockMajorSmem<D, KB>;
    const unsigned slack = (1024u - (smem_addr(smem_raw) & 1023u)) & 1023u;
    unsigned char* tiles = smem_raw + slack;
    int* entries_at = reinterpret_cast<int*>(slack >= kEntriesPerChunk * 4 ? smem_raw : tiles + Smem::tiles + Smem::stage);
    BlockMajorCta c;
    if (!block_major_begin<D, KB, true>(p, tiles, entries_at, c)) return;
    bf16* my_stage = reinterpret_cast<bf16*>(tiles + Smem::tiles) + (threadIdx.x / 32) * Smem::kQTile;
    const bf16 *ks = c.ks, *vs = c.vs;
    const int* entries = c.entries;
    const int g = c.g, n_entries = c.n_entries, k0 = c.k0, kvalid = c.kvalid;

    // Every warp runs every group (wgmma is warpgroup-wide); a warp past the
    // last entry computes on a stale Q buffer and writes nothing. Rows are
    // independent through both products, so its garbage stays in its rows.
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n_groups = (n_entries + WARPS - 1) / WARPS;
    bf16* my_q = c.qs + warp * 2 * QT;
    // Group j's Q goes to buffer j % 2, one cp.async group per call (empty or
    // not), so that wait<1> below always means "group j has landed".
    auto stage_q = [&](int j) {
        const int i = j * WARPS + warp;
        if (i < n_entries) stage_entry_q<D>(p, entries[i], g, my_q + (j & 1) * QT);
        cp_async_commit();
    };
    uint32_t qf[D / 16][4];
    // Group j's Q fragments into registers; its buffer then takes group j + 2.
    auto read_q = [&](int j) {
        cp_async_wait<1>();
        __syncwarp();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            ldmatrix_x4(qf[kk], smem_addr(my_q + (j & 1) * QT + swz<D>(lane & 15, kk * 16 + (lane >> 4) * 8)));
        __syncwarp();  // every lane has read the buffer before it is refilled
        stage_q(j + 2);
    };
    stage_q(0);
    stage_q(1);
    cp_async_wait<1>();   // K, V and group 0's Q
    fence_proxy_async();  // K and V were written through the generic proxy, the tensor cores read them
    __syncthreads();

    // Accumulators as m64n64 tiles (s[nh]: keys 64nh .., o[dh]: dims 64dh ..);
    // the shared helpers see them whole as [keys / 8][4] and [D / 8][4]. Casting
    // one n64 slice out of a flat array instead put the scores in local memory.
    float s[KB / 64][8][4], o[D / 64][8][4];
    auto& s_flat = reinterpret_cast<float(&)[KB / 8][4]>(s);
    auto& o_flat = reinterpret_cast<const float(&)[D / 8][4]>(o);
    uint32_t pf[KB / 16][4];
    auto issue_scores = [&] {
        fence_tiles(s);
        wgmma_fence();
#pragma unroll
        for (int nh = 0; nh < KB / 64; ++nh)
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk)
                wgmma_m64n64k16(s[nh], qf[kk],
                                sw128_desc(ks + (kk / 4) * KB * 64 + nh * 64 * 64) + 2 * (kk % 4), kk > 0);
        wgmma_commit();
    };
    // Group j's scores (landed) to P, then P x V issued into o. P is packed
    // into bf16 A fragments before the fence: a register written between the
    // wgmmas of one group makes ptxas inject a warpgroup.arrive before each
    // (warning C7519).
    float m_a, m_b, l_a, l_b;
    auto softmax_and_issue_pv = [&](int j) {
        fence_tiles(s);
        const int i = j * WARPS + warp;
        const int entry = i < n_entries ? entries[i] : 0;
        block_softmax_rows<KB>(s_flat, k0, kvalid, p.q_offset + p.w0 + entry / p.slots, p.scale_log2, m_a, m_b, l_a, l_b);
#pragma unroll
        for (int kk = 0; kk < KB / 16; ++kk) {
            pf[kk][0] = pack_bf16(s_flat[2 * kk][0], s_flat[2 * kk][1]);
            pf[kk][1] = pack_bf16(s_flat[2 * kk][2], s_flat[2 * kk][3]);
            pf[kk][2] = pack_bf16(s_flat[2 * kk + 1][0], s_flat[2 * kk + 1][1]);
            pf[kk][3] = pack_bf16(s_flat[2 * kk + 1][2], s_flat[2 * kk + 1][3]);
        }
        fence_tiles(o);
        wgmma_fence();
        // Keys 16kk .. 16kk + 15 are two 8-row atoms of the [key][64] half
        // tiles: 2 KiB per step, SBO 1 KiB between the atoms.
#pragma unroll
        for (int kk = 0; kk < KB / 16; ++kk)
#pragma unroll
            for (int dh = 0; dh < D / 64; ++dh)
                wgmma_m64n64k16<1>(o[dh], pf[kk],
                                   sw128_mn_desc(vs + dh * KB * 64 + kk * 16 * 64, KB * 128), kk > 0);
        wgmma_commit();
    };
    auto write = [&](int j) {
        fence_tiles(o);
        const int i = j * WARPS + warp;
        if (i >= n_entries) return;
        const int entry = entries[i];
        const long prow = (static_cast<long>(entry / p.slots) * p.n_kv_heads + g) * p.slots + entry % p.slots;
        write_block_partial_staged<D>(p, o_flat, prow, m_a, m_b, l_a, l_b, my_stage);
    };

    read_q(0);
    issue_scores();
    // The last group is peeled: ptxas serialises wgmmas issued under a branch
    // (mma_utils.cuh, mbar_wait), and group j + 1's scores are issued in every
    // pass of this loop.
    int j = 0;
    for (; j + 1 < n_groups; ++j) {
        wgmma_wait<0>();  // group j's scores
        softmax_and_issue_pv(j);
        read_q(j + 1);
        issue_scores();
        wgmma_wait<1>();  // group j's P x V; group j + 1's scores may still run
        write(j);
    }
    wgmma_wait<0>();
    softmax_and_issue_pv(j);
    wgmma_wait<0>();
    write(j);
    bulk_wait_read_if(lane == 0);  // the CTA's shared memory outlives the last copies' reads
#endif
}

// One thread per (token of the window, group, head, 8 channels).
//
// The slots go in batches of kMergeBatch whose loads (selection entry, (max,
// sum), 16 bytes of partial) are all issued before any is used, with an online
// rescale between batches. The version before loaded each slot's partial
// behind a branch on its (max, sum), two dependent round trips per slot: 10.7
// ms at 128K for 34 GB of partials (3.2 TB/s, NOTES_cuda.md step 39).
//
// Three CTAs of 256 threads per SM need at most 85 registers: the swizzled
// partial layout's address arithmetic took the kernel from 80 to 87, two CTAs
// per SM, and the merge from 4.28 to 3.57 TB/s on the same bytes (ncu, 32K;
// NOTES_cuda.md step 65).
constexpr int kMergeBatch = 8;
constexpr int kMergeThreads = 256;
template <int D>
__global__ void __launch_bounds__(kMergeThreads, 3) block_major_merge_kernel(const BlockMajorParams p) {
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
    const long part0 = tg * p.slots * r + h;  // (max, sum) of slot s: part0 + s * r
    const bf16* part_o = p.part_o + tg * p.slots * r * D + partial_at(r, h, ch * 8);  // slot s: + s * r * D
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
            u[j] = *reinterpret_cast<const uint4*>(part_o + static_cast<long>(s) * r * D);
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
