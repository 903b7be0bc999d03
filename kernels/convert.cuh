#pragma once
// float -> bf16 (round to nearest even) on the device. The weight upload
// copies each fp32 matrix to a staging buffer and converts it here: a host
// loop over the model's 135M floats would cost more than the extra PCIe
// bytes. Attention outputs that come back from a host hook are converted the
// same way, so every bf16 GEMM operand of the forward is rounded by one rule.
#include <cuda_runtime.h>

#include <cstddef>

#include <cuda_bf16.h>

namespace msa::kern {

using bf16 = __nv_bfloat16;  // as in mma_utils.cuh; this header stays host-compilable (tests include it)

struct ConvertOp {
    const float* in = nullptr;
    bf16* out = nullptr;
    size_t count = 0;
};

void convert_f32_bf16_launch(const ConvertOp& op, cudaStream_t stream);

}  // namespace msa::kern
