#pragma once
// SwiGLU: out[t, i] = silu(gate[t, i]) * up[t, i], silu(g) = g / (1 + e^-g).
// Reads the fused gate|up GEMM output (fp32 [N, 2F]: gate in the first F
// columns) and writes the bf16 operand of the down projection, so the [N, F]
// product never exists in fp32.
#include <cuda_runtime.h>

#include <cuda_bf16.h>

namespace msa::kern {

using bf16 = __nv_bfloat16;  // as in mma_utils.cuh; this header stays host-compilable (tests include it)

struct SwigluOp {
    const float* gate_up = nullptr;  // row t: gate at gate_up + t * ld_in, up at + ffn
    long ld_in = 0;
    bf16* out = nullptr;             // [N, ffn], row t at out + t * ld_out
    long ld_out = 0;
    int n_tokens = 0;
    int ffn = 0;
};

void swiglu_launch(const SwigluOp& op, cudaStream_t stream);

}  // namespace msa::kern
