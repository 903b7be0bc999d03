#pragma once
// Prefill index tile for sm_90a with its loads taken off the consumer warps
// (device code only; index_topk.cu launches it).
//
// Why. ncu on the two-warpgroup cp.async tile (H200, 32K): 50% issue-slot use
// at 7.5 cycles per issued instruction with 16 warps per SM, stalls led by
// fixed-latency waits and the per-chunk CTA barrier; about 590 instructions per
// warp per 64-key chunk, against 8 wgmma and 32 max operations of real work.
// Most of the rest was each thread's share of the staging: swizzled addresses,
// predicates, spilled pointers (the 128-register cap for 2 CTAs per SM), and
// the barrier every chunk needs when all threads fill the stage.
//
// How. k_idx is rearranged once per call (index_swizzle_keys_kernel) into
// 64-key chunks that are each the exact shared-memory image wgmma's 128-byte
// swizzle reads, zero rows past the last key. A chunk is then one contiguous
// 16 KiB bulk copy (cp.async.bulk), issued by one thread and counted on the
// stage's `full` mbarrier; every warp signals its stage `empty` once its wgmma
// has read it; no CTA-wide barrier inside the key loop, so the two warpgroups
// drift apart by up to STAGES - 2 chunks instead of meeting every chunk.
// Pooling skips the per-key mask outside the (at most two) chunks that reach
// past the CTA's first position or the last key. By default (SELECT = false)
// each block's pooled score is stored and topk_prefill.cuh ranks them; the
// fused form keeps candidate lists, touched only when a block beats the row's
// current threshold (kept in a register).
#include "kernels/index_select.cuh"
#include "kernels/mma_utils.cuh"

namespace msa::kern {

constexpr int kIndexChunkKeys = 64;

// out[kh][chunk] = keys chunk*64 .. chunk*64 + 63 of key head kh in swz128's
// layout (1024-byte aligned tiles of 64 x dim bf16); keys >= n_kv are zeros.
// One thread per 16-byte piece.
__global__ void index_swizzle_keys_kernel(const bf16* k, int n_kv, int n_key_heads, int dim, int n_chunks,
                                          bf16* out) {
    const long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
    const int pieces = dim / 8;
    if (i >= static_cast<long>(n_key_heads) * n_chunks * kIndexChunkKeys * pieces) return;
    const int piece = static_cast<int>(i % pieces);
    const long rest = i / pieces;
    const int row = static_cast<int>(rest % kIndexChunkKeys);
    const long tile = rest / kIndexChunkKeys;  // kh * n_chunks + chunk
    const int kh = static_cast<int>(tile / n_chunks);
    const long key = (tile % n_chunks) * kIndexChunkKeys + row;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (key < n_kv) v = *reinterpret_cast<const uint4*>(k + (key * n_key_heads + kh) * dim + piece * 8);
    *reinterpret_cast<uint4*>(out + tile * kIndexChunkKeys * dim + swz128(kIndexChunkKeys, row, piece * 8)) = v;
}

// 128 rows (two warpgroups of m64) per CTA, 64-key chunks (one m64n64 wgmma
// chain per warpgroup), STAGES chunks in shared memory. Needs block % 64 == 0
// (a block is whole chunks) and n_splits == 1.
template <int D, int STAGES>
struct IndexPipelinedSmem {
    static constexpr int kTile = kIndexChunkKeys * D;  // bf16 per stage
    static size_t bytes(int cand_cap) {
        return 1024 + STAGES * kTile * sizeof(bf16) + 2 * STAGES * sizeof(uint64_t) + 128 * cand_cap * 8;
    }
};

// MEAN: mean pooling (else max); a template argument so that the key loop has
// one pooling path, not both behind a run-time select. SELECT: keep each row's
// candidate list while streaming (the fused top-k; p.sel must be set), else
// only write the block scores (p.scores), which topk_prefill_kernel then ranks:
// the default since NOTES_cuda.md step 66, where the list's bookkeeping was
// ~100 of the 228 warp instructions per chunk and its warps held their
// warpgroup's next wgmma.
template <int D, int STAGES, bool MEAN, bool SELECT>
__global__ void __launch_bounds__(256, 2) index_topk_pipelined_kernel(const IndexParams p, const bf16* kswz,
                                                                      int n_chunks_total) {
#if defined(MSA_HAVE_WGMMA)  // declared in every pass; the body exists only in sm_90a code
    constexpr int KN = kIndexChunkKeys, WARPS = 8, ROWS = 16 * WARPS, R = 2;
    constexpr int TILE = IndexPipelinedSmem<D, STAGES>::kTile;
    static_assert(STAGES >= 3, "refills go into the stage of the chunk before the current one");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    // Aligned by an offset on smem_raw, not by rounding a pointer through an
    // integer: that loses the shared address space, and every candidate-list
    // access became a generic LD/ST (ncu, 32K: long-scoreboard stalls on them).
    bf16* stages = reinterpret_cast<bf16*>(smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u));
    uint64_t* full = reinterpret_cast<uint64_t*>(stages + STAGES * TILE);
    uint64_t* empty = full + STAGES;
    float* cand_s = reinterpret_cast<float*>(empty + STAGES);
    int32_t* cand_i = reinterpret_cast<int32_t*>(cand_s + ROWS * p.cand_cap);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kh = blockIdx.y;
    const int gpk = p.n_groups / p.n_key_heads;
    const int rows_total = p.n_q * gpk;
    const int row0 = (gridDim.x - 1 - blockIdx.x) * ROWS;  // latest (heaviest) tiles first
    const int pos_hi = p.q_offset + (min(row0 + ROWS, rows_total) - 1) / gpk;
    const int pos_lo = p.q_offset + row0 / gpk;

    // Per-row state kept across the key loop is only what the pooling needs
    // every block (the rest is recomputed where used: at 128 registers for 2
    // CTAs per SM, every live register counts).
    struct Row {
        int lrow, tok, grp, pos;
        bool valid;
    };
    auto row_of = [&](int r) {
        Row w;
        w.lrow = warp * 16 + lane / 4 + r * 8;
        const int row = row0 + w.lrow;
        w.valid = row < rows_total;
        w.tok = w.valid ? row / gpk : 0;
        w.grp = kh * gpk + (w.valid ? row % gpk : 0);
        w.pos = p.q_offset + w.tok;
        return w;
    };
    int loc[R], cnt[R], worst[R];
    float thr[R];  // the row's k-th best so far once its list is full, else -inf
    // Each row's scores in [n_q, G, nb], computed once and kept in shared
    // memory: from row_of at every block they cost a division and the 64-bit
    // address math, ~35 instructions per block and row in the score-only tile,
    // and held in registers they made ptxas spill in the key loop.
    __shared__ float* score_rows[ROWS];
    unsigned valid_bits = 0;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const Row w = row_of(r);
        if (p.scores && lane % 4 == 0)
            score_rows[w.lrow] = p.scores + (static_cast<long>(w.tok) * p.n_groups + w.grp) * p.nb;
        loc[r] = w.pos / p.block;
        cnt[r] = 0;
        worst[r] = 0;
        thr[r] = -INFINITY;
        valid_bits |= w.valid ? 1u << r : 0u;
    }
    uint32_t qf[D / 16][4];
    {
        const int c = (lane % 4) * 2;
        const Row a = row_of(0), b = row_of(1);
        const bf16* qa = p.q + (static_cast<long>(a.tok) * p.n_groups + a.grp) * D;
        const bf16* qb = p.q + (static_cast<long>(b.tok) * p.n_groups + b.grp) * D;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            qf[kk][0] = a.valid ? load_u32(qa + kk * 16 + c) : 0u;
            qf[kk][1] = b.valid ? load_u32(qb + kk * 16 + c) : 0u;
            qf[kk][2] = a.valid ? load_u32(qa + kk * 16 + 8 + c) : 0u;
            qf[kk][3] = b.valid ? load_u32(qb + kk * 16 + 8 + c) : 0u;
        }
    }

    const int cpb = p.block / KN;
    const int n_chunks = (min(pos_hi / p.block, p.nb - 1) + 1) * cpb;  // chunk i = global chunk i
    const bf16* kchunks = kswz + static_cast<long>(kh) * n_chunks_total * TILE;
    // Thread 0 loads chunk c into its stage once the stage's previous chunk
    // (c - STAGES) is released by every warp.
    auto produce = [&](int c) {
        const int s = c % STAGES;
        bulk_refill_if(threadIdx.x == 0 && c < n_chunks, empty + s, ((c / STAGES) + 1) & 1, full + s, stages + s * TILE,
                       kchunks + static_cast<long>(c) * TILE, TILE * sizeof(bf16));
    };
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full + s, 1);
            mbar_init(empty + s, WARPS);
        }
        fence_mbarrier_init();
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < STAGES; ++c) produce(c);

    const bool lead = (lane % 4) == 0;
    const float empty_score = MEAN ? 0.f : -INFINITY;
    float acc[R][2];  // two independent max/sum chains per row
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = empty_score;
    int sub = 0, blk = 0;

    // A row's candidates: an unsorted list of its `cap` best blocks so far,
    // owned by the row's quad. A block that beats the list's worst (lowest
    // score, the later id among equal scores: ties go to the lower id) takes
    // the worst's slot, and the quad finds the new worst, each lane over every
    // fourth slot, then two shuffles. The sorted insertion before it, by the
    // quad's lead lane alone, was 45% of the kernel's instructions and half of
    // its stall samples at 32K (ncu source counters: a dependent chain of
    // shifts per insertion, divergent across the warp's 8 rows).
    //
    // The search runs warp-wide whenever any row of the warp needs it, and only
    // the rows that asked keep its result. Run per quad under divergence (the
    // form of NOTES_cuda.md step 43), each shuffle compiled to a convergence
    // check (MATCH.ANY, REDUX, BRA.DIV), the run-time slot loop to unrolled
    // remainder code, and the block's bookkeeping was 128 of the 259 warp
    // instructions per 64-key chunk at 128K (ncu source counters); this form
    // took the index from 20.2 to 17.9 ms there (NOTES_cuda.md step 57). The
    // order is written out rather than taken from ranks_before, whose form was
    // slower here (step 55).
    auto row_cap = [&](int r) { return max(0, p.k_top - forced_count(loc[r], p.sink)); };
    auto find_worst = [&](int r, bool keep) {
        const int cap = row_cap(r), lrow = warp * 16 + lane / 4 + r * 8;
        const float* cs = cand_s + lrow * p.cand_cap;
        const int32_t* ci = cand_i + lrow * p.cand_cap;
        float ws = INFINITY;
        int wi = -1, wslot = 0;
        auto consider = [&](int j) {
            const float x = cs[j];
            const int xi = ci[j];
            if (x < ws || (x == ws && xi > wi)) {
                ws = x;
                wi = xi;
                wslot = j;
            }
        };
        if (p.cand_cap <= 16) {  // k up to 17: four slots per lane, no loop
#pragma unroll
            for (int t = 0; t < 4; ++t)
                if (lane % 4 + 4 * t < cap) consider(lane % 4 + 4 * t);
        } else {
            for (int j = lane % 4; j < cap; j += 4) consider(j);
        }
#pragma unroll
        for (int o = 1; o <= 2; o <<= 1) {
            const float os = __shfl_xor_sync(0xffffffffu, ws, o);
            const int oi = __shfl_xor_sync(0xffffffffu, wi, o), oslot = __shfl_xor_sync(0xffffffffu, wslot, o);
            if (os < ws || (os == ws && oi > wi)) {
                ws = os;
                wi = oi;
                wslot = oslot;
            }
        }
        if (keep) {
            thr[r] = ws;
            worst[r] = wslot;
        }
    };
    auto finish_block = [&](int b) {
        bool full_now[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            float pooled = !MEAN ? fmaxf(acc[r][0], acc[r][1]) : acc[r][0] + acc[r][1];
            pooled = !MEAN ? quad_max(pooled) : quad_sum(pooled);
            acc[r][0] = acc[r][1] = empty_score;
            // Everything below is the same for the 4 lanes of a quad (one row).
            const bool valid = (valid_bits >> r) & 1u;
            float score = -INFINITY;
            if (b <= loc[r]) {
                if (!MEAN) {
                    score = pooled * p.scale;
                } else {
                    const int keys = min(min(b * p.block + p.block, p.n_kv), row_of(r).pos + 1) - b * p.block;
                    score = pooled * p.scale / static_cast<float>(max(keys, 1));
                }
            }
            // st.global.cg: the pointer came through shared memory, and a plain
            // store of it is a generic ST; the top-k pass reads the scores from L2.
            if (p.scores && lead && valid) __stcg(score_rows[warp * 16 + lane / 4 + r * 8] + b, score);
            full_now[r] = false;
            if constexpr (!SELECT) continue;
            // thr is -inf until the list is full, so this is rare after the first
            // blocks: only a block that beats the row's k-th best goes on.
            const int cap = row_cap(r);
            if (valid && score > thr[r] && b < loc[r] && !(p.sink && b == 0) && cap > 0) {
                const int lrow = warp * 16 + lane / 4 + r * 8;
                const int at = cnt[r] < cap ? cnt[r]++ : worst[r];
                if (lead) {
                    cand_s[lrow * p.cand_cap + at] = score;
                    cand_i[lrow * p.cand_cap + at] = b;
                }
                full_now[r] = cnt[r] == cap;  // full (still filling: thr stays -inf)
            }
        }
#pragma unroll
        for (int r = 0; r < R && SELECT; ++r) {
            if (!__any_sync(0xffffffffu, full_now[r])) continue;
            __syncwarp();  // the leads' entries are visible to their quads
            find_worst(r, full_now[r]);
        }
    };
    auto pool = [&](int c, float (&s)[KN / 8][4]) {
#pragma unroll
        for (int j = 0; j < KN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) fence_operand(s[j][e]);
        const int k0 = c * KN, k1 = min(k0 + KN, p.n_kv);
        if (k1 - k0 < KN || k1 - 1 > pos_lo) {  // the per-key test: tail or causal diagonal
#pragma unroll
            for (int j = 0; j < KN / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = e >> 1, key = k0 + j * 8 + (lane % 4) * 2 + (e & 1);
                    const float x = key < k1 && key <= p.q_offset + (row0 + warp * 16 + lane / 4 + r * 8) / gpk
                                        ? s[j][e]
                                        : empty_score;
                    acc[r][e & 1] = !MEAN ? fmaxf(acc[r][e & 1], x) : acc[r][e & 1] + x;
                }
        } else {
            // A tree per row and column parity (depth 3 over the 8 n-tiles), so
            // the max/add chains are short: 'wait' (fixed-latency dependency)
            // led ncu's stall reasons with one running value per row.
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float t[KN / 8];
#pragma unroll
                for (int j = 0; j < KN / 8; ++j) t[j] = s[j][e];
#pragma unroll
                for (int w = KN / 16; w > 0; w /= 2)
#pragma unroll
                    for (int j = 0; j < w; ++j) t[j] = !MEAN ? fmaxf(t[j], t[j + w]) : t[j] + t[j + w];
                acc[e >> 1][e & 1] = !MEAN ? fmaxf(acc[e >> 1][e & 1], t[0]) : acc[e >> 1][e & 1] + t[0];
            }
        }
        if (++sub == cpb) {
            finish_block(blk++);
            sub = 0;
        }
    };
    auto issue = [&](int c, float (&s)[KN / 8][4]) {
        mbar_wait(full + c % STAGES, (c / STAGES) & 1);
        const bf16* ks = stages + (c % STAGES) * TILE;
#pragma unroll
        for (int j = 0; j < KN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) fence_operand(s[j][e]);
        const uint32_t desc_lo = sw128_desc_lo(ks);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            wgmma_m64n64k16(s, qf[kk], sw128_desc_at(desc_lo, ((kk / 4) * KN * 64 + (kk % 4) * 16) * 2), kk > 0);
        wgmma_commit();
    };
    // Chunk i's scores are in `cur` once wgmma(i) retires; chunk i + 1 is
    // issued into `next` first, so the tensor cores work while the warps pool.
    auto step = [&](int i, float (&cur)[KN / 8][4], float (&next)[KN / 8][4]) {
        issue(i + 1, next);
        wgmma_wait<1>();
        mbar_arrive_if(lane == 0, empty + i % STAGES);
        pool(i, cur);
        // Refill the stage of chunk i - 1 (every warp is likely past it by now).
        if (i > 0) produce(i - 1 + STAGES);
    };
    auto last_step = [&](int i, float (&cur)[KN / 8][4]) {
        wgmma_wait<0>();
        pool(i, cur);
    };
    float sa[KN / 8][4], sb[KN / 8][4];
    if (n_chunks > 0) ping_pong_chunks(n_chunks, sa, sb, issue, step, last_step);

    if (!lead) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const Row w = row_of(r);
        if (!w.valid) continue;
        const long row_off = static_cast<long>(w.tok) * p.n_groups + w.grp;
        // Blocks past the CTA's last position: only where the caller reads
        // whole rows (the top-k pass reads a row's blocks before its own).
        if (p.scores && p.fill_invisible)
            for (int b = n_chunks / cpb; b < p.nb; ++b) p.scores[row_off * p.nb + b] = -INFINITY;
        if (SELECT)
            write_selection(p.sel + row_off * p.slots, p.slots, loc[r], p.k_top, p.sink,
                            cand_i + w.lrow * p.cand_cap, cnt[r]);
    }
#else
    __trap();  // the launcher takes this path only where sm_90a code exists
#endif
}

}  // namespace msa::kern
