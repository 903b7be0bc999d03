#include "kernels/rope.cuh"

#include <stdexcept>

#include "kernels/cuda_check.h"

namespace msa::kern {
namespace {

__device__ __forceinline__ void store(const RopeOp& op, size_t i, float v) {
    if (op.out) op.out[i] = v;
    if (op.out_bf16) op.out_bf16[i] = __float2bfloat16_rn(v);
}

// One block per token. Work items per head: rot_dim/2 rotated pairs, then
// head_dim - rot_dim pass-through values; a pair is one item so in-place
// rotation needs no barrier.
__global__ void rope_kernel(RopeOp op) {
    const int t = blockIdx.x;
    const int half = op.rot_dim / 2;
    const int items_per_head = half + (op.head_dim - op.rot_dim);
    const float* in = op.in + static_cast<size_t>(t) * op.ld_in;
    const size_t out_row = static_cast<size_t>(t) * op.heads * op.head_dim;
    const float* cs = op.cos + static_cast<size_t>(t) * half;
    const float* sn = op.sin + static_cast<size_t>(t) * half;
    for (int item = threadIdx.x; item < op.heads * items_per_head; item += blockDim.x) {
        const int h = item / items_per_head, j = item % items_per_head;
        const int base = h * op.head_dim;
        if (j < half) {
            float a = in[base + j], b = in[base + j + half];
            if (op.bias) {
                a += op.bias[base + j];
                b += op.bias[base + j + half];
            }
            // Same expressions as the CPU (a*c - b*s, b*c + a*s).
            store(op, out_row + base + j, a * cs[j] - b * sn[j]);
            store(op, out_row + base + j + half, b * cs[j] + a * sn[j]);
        } else {
            const int c = op.rot_dim + (j - half);
            float a = in[base + c];
            if (op.bias) a += op.bias[base + c];
            store(op, out_row + base + c, a);
        }
    }
}

}  // namespace

void rope_launch(const RopeOp& op, cudaStream_t stream) {
    if (op.n_tokens <= 0) return;
    if (op.heads <= 0 || op.head_dim <= 0 || op.rot_dim < 0 || op.rot_dim % 2 || op.rot_dim > op.head_dim ||
        (!op.out && !op.out_bf16) || (op.rot_dim > 0 && (!op.cos || !op.sin)))
        throw std::invalid_argument("rope: bad op");
    rope_kernel<<<op.n_tokens, 128, 0, stream>>>(op);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
