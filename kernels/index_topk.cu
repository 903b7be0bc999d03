// Index scoring + block pooling + top-k (see index_topk.cuh for the design).
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <string>

#include "core/errors.h"
#include "kernels/cuda_check.h"
#include "kernels/index_topk.cuh"

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
};

// Forced blocks of a query at position pos: the local block, plus block 0 with sink.
__device__ __forceinline__ int forced_count(int local, int sink) { return (sink && local > 0) ? 2 : 1; }

// Writes one selection row: sink block (if forced), the candidates ascending, the
// local block; or every visible block when the query sees <= k of them.
__device__ void write_selection(int32_t* out, int slots, int local, int k_top, int sink, int32_t* cand_id, int n_cand) {
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

template <int D, int WARPS, int KN>
__global__ void __launch_bounds__(WARPS * 32) index_topk_kernel(const IndexParams p) {
    constexpr int NT = WARPS * 32;
    constexpr int ROWS = 16 * WARPS;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* kt = reinterpret_cast<bf16*>(smem_raw);  // 2 stages of [KN][D]
    float* cand_s = reinterpret_cast<float*>(kt + 2 * KN * D);
    int32_t* cand_i = reinterpret_cast<int32_t*>(cand_s + ROWS * p.cand_cap);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kh = blockIdx.y;
    const int gpk = p.n_groups / p.n_key_heads;
    const int rows_total = p.n_q * gpk;
    const int tile = gridDim.x - 1 - blockIdx.x;
    const int row0 = tile * ROWS;
    const int tok_hi = (min(row0 + ROWS, rows_total) - 1) / gpk;
    const int pos_hi = p.q_offset + tok_hi;
    const long kstride = static_cast<long>(p.n_key_heads) * D;
    const bf16* kbase = p.k + static_cast<long>(kh) * D;

    // Rows of this thread.
    const int lr_a = warp * 16 + lane / 4, lr_b = lr_a + 8;
    const int ra = row0 + lr_a, rb = row0 + lr_b;
    const bool va = ra < rows_total, vb = rb < rows_total;
    const int ta = va ? ra / gpk : 0, tb = vb ? rb / gpk : 0;
    const int ga = kh * gpk + (va ? ra % gpk : 0), gb = kh * gpk + (vb ? rb % gpk : 0);
    const int pa = p.q_offset + ta, pb = p.q_offset + tb;
    const int loc_a = pa / p.block, loc_b = pb / p.block;

    uint32_t qf[D / 16][4];
    {
        const bf16* qa = p.q + (static_cast<long>(ta) * p.n_groups + ga) * D;
        const bf16* qb = p.q + (static_cast<long>(tb) * p.n_groups + gb) * D;
        const int c = (lane % 4) * 2;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            qf[kk][0] = va ? load_u32(qa + kk * 16 + c) : 0u;
            qf[kk][1] = vb ? load_u32(qb + kk * 16 + c) : 0u;
            qf[kk][2] = va ? load_u32(qa + kk * 16 + 8 + c) : 0u;
            qf[kk][3] = vb ? load_u32(qb + kk * 16 + 8 + c) : 0u;
        }
    }

    // Blocks this CTA scores (a split takes a contiguous share).
    const int b_last = min(pos_hi / p.block, p.nb - 1);
    const int per = (b_last + 1 + p.n_splits - 1) / p.n_splits;
    const int b_lo = min(b_last + 1, static_cast<int>(blockIdx.z) * per);
    const int b_hi = min(b_last + 1, b_lo + per);  // exclusive
    const int cpb = (p.block + KN - 1) / KN;
    const int n_chunks = (b_hi - b_lo) * cpb;
    const int cap_a = max(0, p.k_top - forced_count(loc_a, p.sink));
    const int cap_b = max(0, p.k_top - forced_count(loc_b, p.sink));
    int cnt_a = 0, cnt_b = 0;
    const bool lead = (lane % 4) == 0;

    auto chunk_keys = [&](int i, int& k0, int& k1) {
        int b = b_lo + i / cpb, sub = i % cpb;
        k0 = b * p.block + sub * KN;
        k1 = min(min(b * p.block + p.block, p.n_kv), k0 + KN);
    };
    if (n_chunks > 0) {
        int k0, k1;
        chunk_keys(0, k0, k1);
        load_tile_async<D, NT>(kt, kbase + max(0, min(k0, p.n_kv - 1)) * kstride, kstride, KN, k1 - k0);
        cp_async_commit();
    }
    float acc_a = p.pool == 0 ? -INFINITY : 0.f, acc_b = acc_a;

    auto finish_block = [&](int b, float acc, int pos, int loc, int t, int g, bool valid, int lr, int cap, int& cnt) {
        if (!valid || !lead) return;
        const bool visible = b <= loc;
        float score = -INFINITY;
        if (visible) {
            if (p.pool == 0) {
                score = acc;
            } else {
                int cntk = min(min(b * p.block + p.block, p.n_kv), pos + 1) - b * p.block;
                score = acc / static_cast<float>(max(cntk, 1));
            }
        }
        if (p.scores) p.scores[(static_cast<long>(t) * p.n_groups + g) * p.nb + b] = score;
        if (p.sel && visible && b < loc && !(p.sink && b == 0) && cap > 0) {
            float* cs = cand_s + lr * p.cand_cap;
            int32_t* ci = cand_i + lr * p.cand_cap;
            int at;
            if (cnt < cap) {
                at = cnt++;
            } else if (score > cs[cap - 1]) {
                at = cap - 1;
            } else {
                return;
            }
            while (at > 0 && cs[at - 1] < score) {
                cs[at] = cs[at - 1];
                ci[at] = ci[at - 1];
                --at;
            }
            cs[at] = score;
            ci[at] = b;
        }
    };

    for (int i = 0; i < n_chunks; ++i) {
        int k0, k1;
        chunk_keys(i, k0, k1);
        if (i + 1 < n_chunks) {
            int n0, n1;
            chunk_keys(i + 1, n0, n1);
            load_tile_async<D, NT>(kt + ((i + 1) & 1) * KN * D, kbase + max(0, min(n0, p.n_kv - 1)) * kstride,
                                   kstride, KN, n1 - n0);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* ks = kt + (i & 1) * KN * D;

        float s[KN / 8][4];
#pragma unroll
        for (int j = 0; j < KN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
            for (int np = 0; np < KN / 16; ++np) {
                uint32_t b[4];
                int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
                int col = kk * 16 + ((lane >> 3) & 1) * 8;
                ldmatrix_x4(b, smem_addr(ks + swz<D>(key, col)));
                mma_16816(s[2 * np], qf[kk], b[0], b[1]);
                mma_16816(s[2 * np + 1], qf[kk], b[2], b[3]);
            }
        }
#pragma unroll
        for (int j = 0; j < KN / 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                int key = k0 + j * 8 + (lane % 4) * 2 + (e & 1);
                bool ok = key < k1 && key <= (e < 2 ? pa : pb);
                float x = s[j][e] * p.scale;
                if (p.pool == 0) {
                    x = ok ? x : -INFINITY;
                    if (e < 2) acc_a = fmaxf(acc_a, x); else acc_b = fmaxf(acc_b, x);
                } else {
                    x = ok ? x : 0.f;
                    if (e < 2) acc_a += x; else acc_b += x;
                }
            }
        }
        if ((i + 1) % cpb == 0) {
            const int b = b_lo + i / cpb;
            if (p.pool == 0) {
                acc_a = quad_max(acc_a);
                acc_b = quad_max(acc_b);
            } else {
                acc_a = quad_sum(acc_a);
                acc_b = quad_sum(acc_b);
            }
            finish_block(b, acc_a, pa, loc_a, ta, ga, va, lr_a, cap_a, cnt_a);
            finish_block(b, acc_b, pb, loc_b, tb, gb, vb, lr_b, cap_b, cnt_b);
            acc_a = acc_b = (p.pool == 0 ? -INFINITY : 0.f);
        }
        __syncthreads();  // the stage just read is refilled two chunks later
    }

    if (!lead) return;
    if (p.scores && blockIdx.z == gridDim.z - 1) {
        for (int b = b_hi; b < p.nb; ++b) {
            if (va) p.scores[(static_cast<long>(ta) * p.n_groups + ga) * p.nb + b] = -INFINITY;
            if (vb) p.scores[(static_cast<long>(tb) * p.n_groups + gb) * p.nb + b] = -INFINITY;
        }
    }
    if (p.sel) {
        if (va)
            write_selection(p.sel + (static_cast<long>(ta) * p.n_groups + ga) * p.slots, p.slots, loc_a, p.k_top,
                            p.sink, cand_i + lr_a * p.cand_cap, cnt_a);
        if (vb)
            write_selection(p.sel + (static_cast<long>(tb) * p.n_groups + gb) * p.slots, p.slots, loc_b, p.k_top,
                            p.sink, cand_i + lr_b * p.cand_cap, cnt_b);
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

// One warp per (query, group) row: forced blocks + the best k - forced others,
// ordered by (score desc, id asc), picked one round at a time.
__global__ void topk_from_scores_kernel(const float* scores, int nb, int n_q, int q_offset, int n_groups, int k_top,
                                        int sink, int block, int slots, int32_t* sel) {
    extern __shared__ int32_t picks[];  // [warps][k_top]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    long row = blockIdx.x * static_cast<long>(blockDim.x / 32) + warp;
    if (row >= static_cast<long>(n_q) * n_groups) return;
    int t = static_cast<int>(row / n_groups);
    int loc = (q_offset + t) / block;
    int cap = max(0, k_top - forced_count(loc, sink));
    int32_t* mine = picks + warp * max(k_top, 1);
    const float* s = scores + row * nb;
    int n_pick = 0;
    if (loc + 1 > k_top) {
        float ps = INFINITY;
        int pi = -1;
        for (; n_pick < cap; ++n_pick) {
            float bs = 0.f;
            int bi = INT_MAX;
            for (int b = lane; b < loc; b += 32) {
                if (sink && b == 0) continue;
                float x = s[b];
                bool after = x < ps || (x == ps && b > pi);
                bool better = bi == INT_MAX || x > bs || (x == bs && b < bi);
                if (after && better) {
                    bs = x;
                    bi = b;
                }
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                float os = __shfl_xor_sync(0xffffffffu, bs, o);
                int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                bool take = oi != INT_MAX && (bi == INT_MAX || os > bs || (os == bs && oi < bi));
                if (take) {
                    bs = os;
                    bi = oi;
                }
            }
            if (bi == INT_MAX) break;
            if (lane == 0) mine[n_pick] = bi;
            ps = bs;
            pi = bi;
        }
    }
    __syncwarp();
    if (lane == 0) write_selection(sel + row * slots, slots, loc, k_top, sink, mine, n_pick);
}

// ---- launch ------------------------------------------------------------------

namespace {
constexpr int kWarps = 4;
constexpr int kKN = 64;
int n_blocks_of(const IndexTopkOp& op) { return (op.n_kv + op.block - 1) / op.block; }
// One query (decode) or a handful: split the key blocks over CTAs instead of rows.
bool use_decode_path(const IndexTopkOp& op) { return op.n_q * (op.n_groups / op.n_key_heads) <= 16; }
bool needs_score_buffer(const IndexTopkOp& op) {
    return op.pool == IndexPool::quest || op.pool == IndexPool::random || use_decode_path(op);
}

template <int D>
void launch_fused(const IndexTopkOp& op, float* scores, int32_t* sel, int n_splits, cudaStream_t stream) {
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
    constexpr int ROWS = 16 * kWarps;
    size_t smem = 2 * kKN * D * sizeof(bf16) + static_cast<size_t>(ROWS) * p.cand_cap * 8;
    auto kernel = index_topk_kernel<D, kWarps, kKN>;
    MSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    int rows = op.n_q * (op.n_groups / op.n_key_heads);
    dim3 grid((rows + ROWS - 1) / ROWS, op.n_key_heads, n_splits);
    kernel<<<grid, kWarps * 32, smem, stream>>>(p);
    MSA_CUDA_CHECK(cudaGetLastError());
}
}  // namespace

size_t index_topk_scratch_bytes(const IndexTopkOp& op) {
    size_t nb = n_blocks_of(op);
    size_t bytes = 0;
    if (needs_score_buffer(op) && !op.scores) bytes += static_cast<size_t>(op.n_q) * op.n_groups * nb * sizeof(float);
    if (op.pool == IndexPool::quest) bytes += 2 * static_cast<size_t>(op.n_key_heads) * nb * op.dim * sizeof(float) + 256;
    return bytes;
}

void index_topk_launch(const IndexTopkOp& op, cudaStream_t stream) {
    if (op.dim != 64 && op.dim != 128)
        throw InputError("cuda index: dim " + std::to_string(op.dim) + " not supported (64 or 128)");
    if (op.n_groups <= 0 || op.n_key_heads <= 0 || op.n_groups % op.n_key_heads != 0)
        throw InputError("cuda index: groups must be a multiple of key heads");
    if (op.block <= 0 || op.k_top <= 0) throw InputError("cuda index: block and k must be positive");
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
    if (op.pool == IndexPool::max || op.pool == IndexPool::mean) {
        bool decode = use_decode_path(op);
        int splits = 1;
        if (decode) {
            // ~2 CTAs per SM over the key blocks; each split scores its blocks only.
            int dev = 0, sms = 0;
            MSA_CUDA_CHECK(cudaGetDevice(&dev));
            MSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
            splits = std::max(1, std::min(nb, 2 * sms / op.n_key_heads));
        }
        int32_t* sel = decode ? nullptr : op.sel;
        if (op.dim == 128)
            launch_fused<128>(op, scores, sel, splits, stream);
        else
            launch_fused<64>(op, scores, sel, splits, stream);
        if (!decode || !op.sel) return;
    } else {
        float* kmin = nullptr;
        float* kmax = nullptr;
        if (op.pool == IndexPool::quest) {
            size_t off = reinterpret_cast<uintptr_t>(scratch) % 256;
            if (off) scratch += 256 - off;
            kmin = reinterpret_cast<float*>(scratch);
            kmax = kmin + static_cast<size_t>(op.n_key_heads) * nb * op.dim;
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
    const int warps = 8;
    long rows = static_cast<long>(op.n_q) * op.n_groups;
    size_t smem = static_cast<size_t>(warps) * std::max(op.k_top, 1) * sizeof(int32_t);
    MSA_CUDA_CHECK(cudaFuncSetAttribute(topk_from_scores_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
    topk_from_scores_kernel<<<(rows + warps - 1) / warps, warps * 32, smem, stream>>>(
        scores, nb, op.n_q, op.q_offset, op.n_groups, op.k_top, op.sink, op.block, op.slots, op.sel);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
