#include "kernels/embedding.cuh"

#include <cmath>

#include "kernels/cuda_check.h"

namespace msa::kern {
namespace {

// One block per token; threads stride the row. Rows are 576-4096 values, so
// a block reads one contiguous 1-8 KB bf16 row: coalesced, latency-bound at
// small N and bandwidth-bound at large N, never worth a fancier layout.
__global__ void embedding_kernel(EmbeddingOp op) {
    const int t = blockIdx.x;
    const int id = op.tokens[t];
    float* out = op.out + static_cast<size_t>(t) * op.dim;
    if (id < 0 || id >= op.vocab) {
        for (int i = threadIdx.x; i < op.dim; i += blockDim.x) out[i] = NAN;
        return;
    }
    const bf16* row = op.table + static_cast<size_t>(id) * op.dim;
    for (int i = threadIdx.x; i < op.dim; i += blockDim.x) out[i] = __bfloat162float(row[i]);
}

}  // namespace

void embedding_launch(const EmbeddingOp& op, cudaStream_t stream) {
    if (op.n_tokens <= 0) return;
    embedding_kernel<<<op.n_tokens, 128, 0, stream>>>(op);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
