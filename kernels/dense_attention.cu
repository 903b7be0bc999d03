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
// 64-key chunks (32 KiB of K/V staging for d = 128). Rows are (token,
// head-of-group), so with r = 16 a 128-row CTA covers 8 tokens of 16 heads and
// one K/V chunk feeds all 128 rows.
constexpr int kKN = 64;
constexpr int kMaxSplits = 256;

// Few queries (decode): split the keys so that ~2 CTAs per SM are busy.
int choose_splits(const DenseAttentionOp& op) {
    long rows = static_cast<long>(op.n_q) * (op.n_heads / op.n_kv_heads);
    long tiles = (rows + 63) / 64 * op.n_kv_heads;
    if (tiles >= sm_count()) return 1;
    int chunks = (std::min(op.q_offset + op.n_q, op.n_kv) + kKN - 1) / kKN;
    long want = (2L * sm_count() + tiles - 1) / tiles;
    return static_cast<int>(std::max(1L, std::min<long>({want, chunks / 4 + 1, kMaxSplits})));
}

// Prefill tiles: 4 warps x 2 m-tiles (128 rows, FlashAttention-2's tile) by
// default; MSA_DENSE_TILE=4x2k32 (32-key chunks) | 4x1 | 8x1 selects the 64- and 128-row one-m-tile
// variants kept to measure (NOTES_cuda.md). Decode (splits) keeps 4x1: its few
// rows would leave most of a 128-row tile empty.
enum class DenseTile { w4m2, w4m2k32, w4m1, w8m1 };
DenseTile dense_tile(int n_splits) {
    static const DenseTile forced = [] {
        const char* e = std::getenv("MSA_DENSE_TILE");
        if (e && std::string(e) == "4x1") return DenseTile::w4m1;
        if (e && std::string(e) == "8x1") return DenseTile::w8m1;
        if (e && std::string(e) == "4x2k32") return DenseTile::w4m2k32;
        return DenseTile::w4m2;
    }();
    return n_splits > 1 ? DenseTile::w4m1 : forced;
}

template <int D>
void dispatch(const AttnParams& p, cudaStream_t stream) {
    switch (dense_tile(p.n_splits)) {
        case DenseTile::w4m1: launch_attention_tile<D, 4, kKN, 1>(p, stream); break;
        case DenseTile::w8m1: launch_attention_tile<D, 8, kKN, 1>(p, stream); break;
        case DenseTile::w4m2k32: launch_attention_tile<D, 4, 32, 2>(p, stream); break;
        default: launch_attention_tile<D, 4, kKN, 2>(p, stream); break;
    }
}

void check(const DenseAttentionOp& op) {
    if (op.head_dim != 64 && op.head_dim != 128)
        throw InputError("cuda attention: head_dim " + std::to_string(op.head_dim) + " not supported (64 or 128)");
    if (op.n_kv_heads <= 0 || op.n_heads % op.n_kv_heads != 0)
        throw InputError("cuda attention: n_heads must be a multiple of n_kv_heads");
    // The kernel takes the row max before scaling (one FMA per score instead of two ops).
    if (!(op.scale > 0.f)) throw InputError("cuda attention: softmax scale must be positive");
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
    copy_attention_shape(op, p);
    p.n_splits = choose_splits(op);
    if (p.n_splits > 1) {
        size_t need = dense_attention_scratch_bytes(op);
        if (op.scratch_bytes < need) throw InputError("cuda attention: decode scratch too small");
        p.part_o = static_cast<float*>(op.scratch);
        p.part_ml = p.part_o + static_cast<size_t>(p.n_splits) * op.n_q * op.n_heads * op.head_dim;
    }
    if (op.head_dim == 128)
        dispatch<128>(p, stream);
    else
        dispatch<64>(p, stream);
}

}  // namespace msa::kern
