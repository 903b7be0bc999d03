#pragma once
// Dense causal GQA flash attention: the baseline MSA is measured against, on the
// same tile machinery as the sparse kernel (attention_tile.cuh) so that the two
// differ only in which key chunks they visit.
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/mma_utils.cuh"

namespace msa::kern {

struct DenseAttentionOp {
    const bf16* q = nullptr;  // [n_q, Hq, d]
    const bf16* k = nullptr;  // [n_kv, Hkv, d]
    const bf16* v = nullptr;
    bf16* out = nullptr;      // [n_q, Hq, d]
    int n_q = 0;
    int q_offset = 0;         // query i sits at position q_offset + i (decode: n_kv - 1)
    int n_kv = 0;
    int n_heads = 0;
    int n_kv_heads = 0;
    int head_dim = 0;         // 64 or 128
    float scale = 0;          // usually 1/sqrt(d)
    void* scratch = nullptr;  // split-K partials (few queries); see dense_attention_scratch_bytes
    size_t scratch_bytes = 0;
};

size_t dense_attention_scratch_bytes(const DenseAttentionOp& op);
void dense_attention_launch(const DenseAttentionOp& op, cudaStream_t stream);

}  // namespace msa::kern
