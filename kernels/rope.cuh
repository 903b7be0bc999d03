#pragma once
// RoPE in the Hugging Face rotate_half convention, fused with what surrounds
// it in the forward: the fused Q|K|V GEMM writes one row per token, and this
// op takes one head slice of that row (+ bias, qwen2), rotates it, and writes
// it to its own contiguous [N, heads, head_dim] array (fp32 for the attention
// hook, and bf16 too when the device attention reads it).
//
// Inside a head, the first rot_dim values rotate: value i < rot_dim/2 pairs
// with i + rot_dim/2, both turned by pos * inv_freq[i]; values past rot_dim
// pass through (partial RoPE of the trained index branch). rot_dim = 0 is a
// plain copy (+ bias), used for V.
//
// The angles come from a host table (cos/sin [N, rot_dim/2]) computed in
// double exactly as the CPU forward computes them: on the device a float angle
// at position 8191 and the highest frequency would be off by ~5e-4 rad, and
// sincosf of large arguments differs from the host's libm.
#include <cuda_runtime.h>

#include <cuda_bf16.h>

namespace msa::kern {

using bf16 = __nv_bfloat16;  // as in mma_utils.cuh; this header stays host-compilable (tests include it)

struct RopeOp {
    const float* in = nullptr;    // row t of the slice starts at in + t * ld_in
    long ld_in = 0;
    const float* bias = nullptr;  // [heads * head_dim] or null
    float* out = nullptr;         // [N, heads, head_dim] fp32 (may be null if out_bf16 is set)
    bf16* out_bf16 = nullptr;     // same layout, optional
    int n_tokens = 0;
    int heads = 0;
    int head_dim = 0;
    int rot_dim = 0;              // even, <= head_dim; 0 = no rotation
    const float* cos = nullptr;   // [n_tokens, rot_dim / 2]
    const float* sin = nullptr;
};

// `in` may alias `out` (in place, same layout: ld_in = heads * head_dim): each
// thread reads both values of a pair before writing either.
void rope_launch(const RopeOp& op, cudaStream_t stream);

}  // namespace msa::kern
