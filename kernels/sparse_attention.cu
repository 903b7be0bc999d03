// Sparse (selected-blocks) attention launcher: prefill and decode.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/errors.h"
#include "kernels/attention_tile.cuh"
#include "kernels/sparse_attention.cuh"
#include "kernels/sparse_block_major.cuh"
#include "kernels/sparse_decode.cuh"

namespace msa::kern {

namespace {
// Tile: 1 warp (16 rows) and 64-key chunks by default. One warp keeps the union
// of the CTA's selections equal to one token's selection when r = 16, so no
// chunk is staged for rows that do not want it. MSA_SPARSE_TILE=1x32 | 2x64
// picks the measured alternatives (NOTES_cuda.md).
enum class Tile { w1k64, w1k32, w2k64 };
Tile tile_choice() {
    static const Tile t = [] {
        const char* e = std::getenv("MSA_SPARSE_TILE");
        if (e && std::strcmp(e, "1x32") == 0) return Tile::w1k32;
        if (e && std::strcmp(e, "2x64") == 0) return Tile::w2k64;
        return Tile::w1k64;
    }();
    return t;
}
int tile_rows(Tile t) { return t == Tile::w2k64 ? 32 : 16; }
int max_tokens(int rows, int r) { return (rows - 1 + r - 1) / r + 1; }

bool is_decode(const SparseAttentionOp& op) {
    const int sms = sm_count();
    long rows = static_cast<long>(op.n_q) * (op.n_heads / op.n_kv_heads);
    return (rows + 15) / 16 * op.n_kv_heads < sms;
}
// Decode: keys per split-K piece (MSA_DECODE_SPLIT_KEYS=32 | 64 | 128). A
// one-warp CTA per selected block (128, the default) leaves 64 CTAs for
// MiniMax-M3's 4 groups x 16 blocks and chains four dependent K/V loads per
// CTA; 32-key pieces give 256 CTAs with one K and one V load each but 4x the
// partials for the combine. Measured on the H200 (graph step at 1M, session
// 4): main 0.0294 / 0.0248 / 0.0228 ms for 32 / 64 / 128 keys: the combine's
// extra reads cost more than the shorter chains save.
int decode_split_keys() {
    static const int keys = [] {
        const char* e = std::getenv("MSA_DECODE_SPLIT_KEYS");
        const int v = e ? std::atoi(e) : 128;
        return v == 32 || v == 64 ? v : 128;
    }();
    return keys;
}
int choose_splits(const SparseAttentionOp& op) {
    if (!is_decode(op)) return 1;
    const int keys = decode_split_keys();
    return std::max(1, op.slots * ((op.block + keys - 1) / keys));
}

// ---- decode of one token: a cluster per group (sparse_decode.cuh) -----------
// MSA_DECODE_ATTEND=split keeps the split-K tile and its combine (to measure).
bool cluster_decode_allowed() {
    static const bool ok = [] {
        const char* e = std::getenv("MSA_DECODE_ATTEND");
        if (e && std::strcmp(e, "split") == 0) return false;
        int dev = 0, major = 0;
        MSA_CUDA_CHECK(cudaGetDevice(&dev));
        MSA_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        return major >= 9;  // thread-block clusters
    }();
    return ok;
}
bool use_cluster_decode(const SparseAttentionOp& op) {
    return op.n_q == 1 && op.n_heads / op.n_kv_heads <= 16 && is_decode(op) && cluster_decode_allowed();
}

template <int D>
void launch_cluster_decode(const SparseAttentionOp& op, cudaStream_t stream) {
    constexpr auto kernel = sparse_decode_attend_kernel<D>;
    // MSA_DECODE_ATTEND_SMEM_KIB: more shared memory than the kernel needs, so
    // that fewer CTAs share an SM (to measure). Measured on the H200 (1M graph
    // step, main part): one CTA per SM 0.0135 / 0.0138 ms vs 0.0155 / 0.0141
    // packed, within the run-to-run spread, so the default asks for what it uses.
    static const size_t smem = [] {
        const char* e = std::getenv("MSA_DECODE_ATTEND_SMEM_KIB");
        return std::max(DecodeAttendSmem<D>::bytes(), e ? static_cast<size_t>(std::atoi(e)) << 10 : size_t(0));
    }();
    DecodeAttendParams p;
    copy_attention_shape(op, p);
    p.sel = op.sel;
    p.slots = op.slots;
    p.block = op.block;
    p.pieces = (op.block + kDecodePieceKeys - 1) / kDecodePieceKeys;
    // Clusters of up to 16 CTAs need the non-portable opt-in; where the device
    // cannot place one (the occupancy query says 0 clusters), 8 (portable).
    static const int widest = [] {
        ensure_dynamic_smem<kernel>(smem);
        MSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = kDecodeMaxCluster;
        attr[0].val.clusterDim.y = attr[0].val.clusterDim.z = 1;
        cudaLaunchConfig_t cfg{};
        cfg.gridDim = dim3(kDecodeMaxCluster, 1);
        cfg.blockDim = dim3(kDecodeAttendThreads);
        cfg.dynamicSmemBytes = smem;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        int clusters = 0;
        if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) {
            (void)cudaGetLastError();
            clusters = 0;
        }
        return clusters > 0 ? kDecodeMaxCluster : 8;
    }();
    const unsigned n_ranks = static_cast<unsigned>(std::max(1, std::min(widest, op.slots * p.pieces)));
    launch_dependent_clusters(n_ranks, kernel, dim3(n_ranks, static_cast<unsigned>(op.n_kv_heads)),
                              dim3(kDecodeAttendThreads), smem, stream, p);
}

// ---- block-major ------------------------------------------------------------
// Bytes of partials one window of tokens may take: a 16th of the device's
// memory, at most 8 GiB (31,745 tokens of MiniMax-M3: 4 groups x 16 slots x
// 16 heads x (128 bf16 + max and sum) per token). Larger windows mean longer
// reverse-index lists, so fewer part-filled 64-entry chunks and fewer passes;
// measured (H200, 128K): windows of 2 to 4 passes within 0.5% of 5.
// MSA_BLOCK_MAJOR_WINDOW_MIB overrides it (to measure).
size_t partial_budget() {
    static const size_t bytes = [] {
        if (const char* e = std::getenv("MSA_BLOCK_MAJOR_WINDOW_MIB")) return static_cast<size_t>(std::atol(e)) << 20;
        size_t free_b = 0, total_b = 0;
        MSA_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        return std::clamp<size_t>(total_b / 16, size_t(256) << 20, size_t(8) << 30);
    }();
    return bytes;
}

bool block_major_fits(const SparseAttentionOp& op) {
    const int r = op.n_heads / op.n_kv_heads;
    return r <= 16 && op.block <= 128;
}
bool use_block_major(const SparseAttentionOp& op) {
    if (op.order == SparseOrder::block_major) {
        if (!block_major_fits(op))
            throw InputError("cuda sparse attention: block-major needs r <= 16 and block <= 128");
        return true;
    }
    if (op.order == SparseOrder::token_major || !block_major_fits(op)) return false;
    // MSA_SPARSE_ORDER=token|block overrides the automatic choice (to measure both).
    static const int forced = [] {
        const char* e = std::getenv("MSA_SPARSE_ORDER");
        if (e && std::strcmp(e, "token") == 0) return 1;
        if (e && std::strcmp(e, "block") == 0) return 2;
        return 0;
    }();
    if (forced) return forced == 2;
    return op.n_heads / op.n_kv_heads >= 8 && op.n_q >= 4096;
}

// Sum over lists of ceil(count / chunk) <= entries / chunk + lists: the
// attend grid (spare CTAs return at once) and the chunk map's length.
size_t block_major_max_chunks(long entries, long lists) {
    return static_cast<size_t>(entries / kEntriesPerChunk + lists + 1);
}

struct BlockMajorLayout {
    int window = 0;
    size_t count = 0, offset = 0, cursor = 0, chunk_off = 0, chunk_list = 0, list = 0, part_o = 0, part_ml = 0, total = 0;
};
BlockMajorLayout block_major_layout(const SparseAttentionOp& op) {
    const size_t G = op.n_kv_heads, r = op.n_heads / op.n_kv_heads, S = op.slots;
    const size_t nb = (static_cast<size_t>(op.n_kv) + op.block - 1) / op.block;
    const size_t per_token = G * S * (r * op.head_dim * 2 + r * 8 + 4);
    BlockMajorLayout L;
    // Equal windows, as few as the budget allows. Filling each window to the
    // budget left a short last one: 128K tokens under 8 GiB (270,592 B per
    // token) were 4 x 31,745 + 3,092, the tail's reverse-index lists too short
    // to fill their 64-entry chunks; 5 x 26,215 measured 45.5 vs 46.2 ms
    // (H200, NOTES_cuda.md step 36).
    const size_t most = std::min<size_t>(op.n_q, std::max<size_t>(1, partial_budget() / per_token));
    const size_t passes = (op.n_q + most - 1) / most;
    L.window = static_cast<int>((op.n_q + passes - 1) / passes);
    auto take = [&](size_t bytes) {
        size_t at = L.total;
        L.total += (bytes + 255) / 256 * 256;
        return at;
    };
    L.count = take(G * nb * 4);
    L.offset = take(G * nb * 4);
    L.cursor = take(G * nb * 4);
    L.chunk_off = take((G * nb + 1) * 4);
    L.chunk_list = take(block_major_max_chunks(static_cast<long>(L.window) * G * S, G * nb) * 4);
    L.list = take(static_cast<size_t>(L.window) * G * S * 4);
    L.part_o = take(static_cast<size_t>(L.window) * G * S * r * op.head_dim * 2);
    L.part_ml = take(static_cast<size_t>(L.window) * G * S * r * 8);
    return L;
}

// The attend: wgmma where the binary and the device have it (sm_90a), else
// mma.sync; MSA_BLOCK_MAJOR_ATTEND=mma selects mma.sync (to measure, and for
// the GPU tests to cover both on one device: read at every launch, not cached).
bool block_major_wgmma() {
    const char* e = std::getenv("MSA_BLOCK_MAJOR_ATTEND");
    return !(e && std::strcmp(e, "mma") == 0) && wgmma_available();
}

template <int D, int KB>
void launch_block_major(const SparseAttentionOp& op, cudaStream_t stream) {
    const BlockMajorLayout L = block_major_layout(op);
    if (op.scratch_bytes < L.total) throw InputError("cuda sparse attention: block-major scratch too small");
    char* base = static_cast<char*>(op.scratch);
    BlockMajorParams p;
    copy_attention_shape(op, p);
    p.sel = op.sel;
    p.slots = op.slots;
    p.block = op.block;
    p.nb = (op.n_kv + op.block - 1) / op.block;
    p.count = reinterpret_cast<int*>(base + L.count);
    p.offset = reinterpret_cast<int*>(base + L.offset);
    p.cursor = reinterpret_cast<int*>(base + L.cursor);
    p.chunk_off = reinterpret_cast<int*>(base + L.chunk_off);
    p.chunk_list = reinterpret_cast<int*>(base + L.chunk_list);
    p.list = reinterpret_cast<int*>(base + L.list);
    p.part_o = reinterpret_cast<bf16*>(base + L.part_o);
    p.part_ml = reinterpret_cast<float2*>(base + L.part_ml);
    const int n_lists = op.n_kv_heads * p.nb;
    const bool wgmma = block_major_wgmma();
    const auto attend = wgmma ? block_major_attend_wgmma_kernel<D, KB> : block_major_attend_kernel<D, KB>;
    const size_t smem = wgmma ? BlockMajorSmem<D, KB>::wgmma_bytes() : BlockMajorSmem<D, KB>::bytes();
    if (wgmma)
        ensure_dynamic_smem<block_major_attend_wgmma_kernel<D, KB>>(smem);
    else
        ensure_dynamic_smem<block_major_attend_kernel<D, KB>>(smem);
    for (int w0 = 0; w0 < op.n_q; w0 += L.window) {
        p.w0 = w0;
        p.nw = std::min(L.window, op.n_q - w0);
        const long entries = static_cast<long>(p.nw) * op.n_kv_heads * op.slots;
        const dim3 index_grid = block_major_index_grid(entries, n_lists);
        MSA_CUDA_CHECK(cudaMemsetAsync(p.count, 0, static_cast<size_t>(n_lists) * 4, stream));
        block_major_index_kernel<false><<<index_grid, kIndexThreads, 0, stream>>>(p);
        MSA_CUDA_CHECK(cudaGetLastError());
        block_major_plan_kernel<8><<<1, 1024, 0, stream>>>(p);
        MSA_CUDA_CHECK(cudaGetLastError());
        block_major_index_kernel<true><<<index_grid, kIndexThreads, 0, stream>>>(p);
        MSA_CUDA_CHECK(cudaGetLastError());
        attend<<<static_cast<unsigned>(block_major_max_chunks(entries, n_lists)), kBlockMajorThreads, smem, stream>>>(p);
        MSA_CUDA_CHECK(cudaGetLastError());
        const long merge_threads = static_cast<long>(p.nw) * op.n_heads * (D / 8);
        block_major_merge_kernel<D>
            <<<static_cast<unsigned>((merge_threads + kMergeThreads - 1) / kMergeThreads), kMergeThreads, 0, stream>>>(p);
        MSA_CUDA_CHECK(cudaGetLastError());
    }
}

template <int D>
void dispatch_block_major(const SparseAttentionOp& op, cudaStream_t stream) {
    if (op.block <= 64)
        launch_block_major<D, 64>(op, stream);
    else
        launch_block_major<D, 128>(op, stream);
}

void check(const SparseAttentionOp& op) {
    if (op.head_dim != 64 && op.head_dim != 128)
        throw InputError("cuda sparse attention: head_dim " + std::to_string(op.head_dim) + " not supported (64 or 128)");
    if (op.n_kv_heads <= 0 || op.n_heads % op.n_kv_heads != 0)
        throw InputError("cuda sparse attention: n_heads must be a multiple of n_kv_heads");
    // The kernel takes the row max before scaling (one FMA per score instead of two ops).
    if (!(op.scale > 0.f)) throw InputError("cuda sparse attention: softmax scale must be positive");
    if (op.block <= 0) throw InputError("cuda sparse attention: block must be positive");
    if (op.slots <= 0 || !op.sel) throw InputError("cuda sparse attention: empty selection");
}

template <int D>
void dispatch(Tile t, AttnParams p, cudaStream_t stream) {
    switch (t) {
        case Tile::w1k32: launch_attention_tile<D, 1, 32>(p, stream); break;
        case Tile::w2k64: launch_attention_tile<D, 2, 64>(p, stream); break;
        default: launch_attention_tile<D, 1, 64>(p, stream); break;
    }
}
}  // namespace

size_t sparse_attention_scratch_bytes(const SparseAttentionOp& op) {
    check(op);
    if (op.n_q > 0 && use_block_major(op)) return block_major_layout(op).total;
    if (use_cluster_decode(op)) return 0;
    int splits = choose_splits(op);
    if (splits <= 1) return 0;
    return static_cast<size_t>(splits) * op.n_q * op.n_heads * (op.head_dim + 2) * sizeof(float);
}

void sparse_attention_launch(const SparseAttentionOp& op, cudaStream_t stream) {
    check(op);
    if (op.n_q <= 0 || op.n_kv <= 0) return;
    if (use_block_major(op)) {
        if (op.head_dim == 128)
            dispatch_block_major<128>(op, stream);
        else
            dispatch_block_major<64>(op, stream);
        return;
    }
    if (use_cluster_decode(op)) {
        if (op.head_dim == 128)
            launch_cluster_decode<128>(op, stream);
        else
            launch_cluster_decode<64>(op, stream);
        return;
    }
    const int r = op.n_heads / op.n_kv_heads;
    Tile t = tile_choice();
    if (is_decode(op)) t = decode_split_keys() == 32 ? Tile::w1k32 : Tile::w1k64;  // a piece is whole chunks
    if (max_tokens(tile_rows(t), r) > 32) t = Tile::w1k64;  // one lane per token in the union merge
    AttnParams p;
    copy_attention_shape(op, p);
    p.sel = op.sel;
    p.slots = op.slots;
    p.block = op.block;
    p.max_union = max_tokens(tile_rows(t), r) * op.slots;
    p.n_splits = choose_splits(op);
    if (p.n_splits > 1) {
        size_t need = sparse_attention_scratch_bytes(op);
        if (op.scratch_bytes < need) throw InputError("cuda sparse attention: decode scratch too small");
        p.part_o = static_cast<float*>(op.scratch);
        p.part_ml = p.part_o + static_cast<size_t>(p.n_splits) * op.n_q * op.n_heads * op.head_dim;
    }
    if (op.head_dim == 128)
        dispatch<128>(t, p, stream);
    else
        dispatch<64>(t, p, stream);
}

}  // namespace msa::kern
