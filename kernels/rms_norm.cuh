#pragma once
// RMSNorm over rows: y = x / sqrt(mean(x^2) + eps) * w, statistics in fp32.
//
// A "row" is one head of one token, so the same op serves the model's norms
// (heads = 1, n = hidden) and the trained index branch's per-head norms
// (heads = G, n = dI, rows inside a wider projection row): row (t, h) reads
// x + t * ldx + h * n and writes y + t * ldy + h * n.
#include <cuda_runtime.h>

#include <cuda_bf16.h>

namespace msa::kern {

using bf16 = __nv_bfloat16;  // as in mma_utils.cuh; this header stays host-compilable (tests include it)

struct RmsNormOp {
    const float* x = nullptr;
    long ldx = 0;                   // floats between tokens
    const float* weight = nullptr;  // [n], or [heads, n] when weight_per_head
    bool weight_per_head = false;
    float* y_f32 = nullptr;         // exactly one of y_f32 / y_bf16
    bf16* y_bf16 = nullptr;         // (bf16: the next op is a GEMM operand)
    long ldy = 0;
    int n_tokens = 0;
    int heads = 1;
    int n = 0;
    float eps = 1e-5f;
};

void rms_norm_launch(const RmsNormOp& op, cudaStream_t stream);

}  // namespace msa::kern
