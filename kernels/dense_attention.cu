// Dense causal GQA attention launcher (tile choice and split-K for decode).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/errors.h"
#include "kernels/attention_tile.cuh"
#include "kernels/dense_attention.cuh"

namespace msa::kern {

namespace {
// Prefill tile: 4 warps x 16 rows, 64-key chunks (32 KiB of K/V staging for
// d = 128). Rows are (token, head-of-group) so with r = 16 a CTA covers 4 tokens
// of 16 heads and one K/V chunk feeds 64 rows, like FlashAttention-2's 4-warp
// tile of one head. MSA_DENSE_WARPS=8 selects the 128-row variant (kept to
// measure, see NOTES_cuda.md).
constexpr int kKN = 64;
constexpr int kMaxSplits = 256;

int sm_count() {
    int dev = 0, sms = 0;
    MSA_CUDA_CHECK(cudaGetDevice(&dev));
    MSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
}

// Few queries (decode): split the keys so that ~2 CTAs per SM are busy.
int choose_splits(const DenseAttentionOp& op) {
    long rows = static_cast<long>(op.n_q) * (op.n_heads / op.n_kv_heads);
    long tiles = (rows + 63) / 64 * op.n_kv_heads;
    if (tiles >= sm_count()) return 1;
    int chunks = (std::min(op.q_offset + op.n_q, op.n_kv) + kKN - 1) / kKN;
    long want = (2L * sm_count() + tiles - 1) / tiles;
    return static_cast<int>(std::max(1L, std::min<long>({want, chunks / 4 + 1, kMaxSplits})));
}

void check(const DenseAttentionOp& op) {
    if (op.head_dim != 64 && op.head_dim != 128)
        throw InputError("cuda attention: head_dim " + std::to_string(op.head_dim) + " not supported (64 or 128)");
    if (op.n_kv_heads <= 0 || op.n_heads % op.n_kv_heads != 0)
        throw InputError("cuda attention: n_heads must be a multiple of n_kv_heads");
}
}  // namespace

size_t dense_attention_scratch_bytes(const DenseAttentionOp& op) {
    check(op);
    int splits = choose_splits(op);
    if (splits <= 1) return 0;
    return static_cast<size_t>(splits) * op.n_q * op.n_heads * (op.head_dim + 2) * sizeof(float);
}

void dense_attention_launch(const DenseAttentionOp& op, cudaStream_t stream) {
    check(op);
    if (op.n_q <= 0 || op.n_kv <= 0) return;
    AttnParams p;
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
    p.scale_log2 = op.scale * 1.4426950408889634f;
    p.n_splits = choose_splits(op);
    if (p.n_splits > 1) {
        size_t need = dense_attention_scratch_bytes(op);
        if (op.scratch_bytes < need) throw InputError("cuda attention: decode scratch too small");
        p.part_o = static_cast<float*>(op.scratch);
        p.part_ml = p.part_o + static_cast<size_t>(p.n_splits) * op.n_q * op.n_heads * op.head_dim;
    }
    static const int warps = [] {
        const char* e = std::getenv("MSA_DENSE_WARPS");
        return (e && std::atoi(e) == 8) ? 8 : 4;
    }();
    if (op.head_dim == 128) {
        if (warps == 8)
            launch_attention_tile<128, 8, kKN>(p, stream);
        else
            launch_attention_tile<128, 4, kKN>(p, stream);
    } else {
        if (warps == 8)
            launch_attention_tile<64, 8, kKN>(p, stream);
        else
            launch_attention_tile<64, 4, kKN>(p, stream);
    }
}

}  // namespace msa::kern
