#pragma once
// Embedding lookup: out[t, :] = table[tokens[t], :] (bf16 table -> fp32 rows).
// The residual stream starts here and stays fp32 for the whole forward; only
// GEMM operands are bf16.
#include <cuda_runtime.h>

#include <cstdint>

#include <cuda_bf16.h>

namespace msa::kern {

using bf16 = __nv_bfloat16;  // as in mma_utils.cuh; this header stays host-compilable (tests include it)

struct EmbeddingOp {
    const bf16* table = nullptr;     // [vocab, dim]
    const int32_t* tokens = nullptr; // [n_tokens], device
    float* out = nullptr;            // [n_tokens, dim]
    int n_tokens = 0;
    int dim = 0;
    int vocab = 0;
};

// Ids outside [0, vocab) write NaN rows (the host validates ids first; a bad
// id that slips through shows up in the loss instead of reading out of bounds).
void embedding_launch(const EmbeddingOp& op, cudaStream_t stream);

}  // namespace msa::kern
