// Sparse (selected-blocks) attention launcher: prefill and decode.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/errors.h"
#include "kernels/attention_tile.cuh"
#include "kernels/sparse_attention.cuh"

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
int choose_splits(const SparseAttentionOp& op) { return is_decode(op) ? std::max(1, op.slots) : 1; }

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
    int splits = choose_splits(op);
    if (splits <= 1) return 0;
    return static_cast<size_t>(splits) * op.n_q * op.n_heads * (op.head_dim + 2) * sizeof(float);
}

void sparse_attention_launch(const SparseAttentionOp& op, cudaStream_t stream) {
    check(op);
    if (op.n_q <= 0 || op.n_kv <= 0) return;
    const int r = op.n_heads / op.n_kv_heads;
    Tile t = tile_choice();
    if (max_tokens(tile_rows(t), r) > 32) t = Tile::w1k64;  // one lane per token in the union merge
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
    p.group = r;
    p.scale_log2 = op.scale * 1.4426950408889634f;
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
