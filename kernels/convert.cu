#include "kernels/convert.cuh"

#include <cstdint>

#include "kernels/cuda_check.h"

namespace msa::kern {
namespace {

// Grid-stride over pairs: one 8-byte load and one 4-byte store per pair
// (__floats2bfloat162_rn). Pointers from cudaMalloc are 256-byte aligned; the
// launcher only takes the pair path when `in` and `out` are 8/4-aligned.
__global__ void convert_pairs_kernel(const float2* in, __nv_bfloat162* out, size_t pairs) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < pairs;
         i += static_cast<size_t>(gridDim.x) * blockDim.x) {
        const float2 v = in[i];
        out[i] = __floats2bfloat162_rn(v.x, v.y);
    }
}

__global__ void convert_kernel(const float* in, bf16* out, size_t n) {
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<size_t>(gridDim.x) * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

}  // namespace

void convert_f32_bf16_launch(const ConvertOp& op, cudaStream_t stream) {
    if (op.count == 0) return;
    const bool pairs = op.count % 2 == 0 && reinterpret_cast<uintptr_t>(op.in) % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(op.out) % 4 == 0;
    const size_t work = pairs ? op.count / 2 : op.count;
    const int threads = 256;
    const size_t want = (work + threads - 1) / threads;
    const int blocks = static_cast<int>(want < 4096 ? want : 4096);
    if (pairs)
        convert_pairs_kernel<<<blocks, threads, 0, stream>>>(reinterpret_cast<const float2*>(op.in),
                                                             reinterpret_cast<__nv_bfloat162*>(op.out), work);
    else
        convert_kernel<<<blocks, threads, 0, stream>>>(op.in, op.out, op.count);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
