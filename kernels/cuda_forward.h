#pragma once
// The whole model on the GPU, with the contract of core/forward.h: same
// ForwardOptions (attention hook, progress, cancellation, keep_logits), same
// ForwardResult (nll, argmax). Plain C++ header, no CUDA types.
//
// Precision: weights live on the device as bf16 (uploaded once per model and
// kept); every linear layer is a cuBLAS bf16 x bf16 GEMM with fp32
// accumulation and fp32 output; the residual stream, norms statistics, RoPE,
// SwiGLU and the log-softmax are fp32; the GEMM operands (normed activations,
// the attention output, the SwiGLU product) are rounded to bf16. The LM head
// is the exception (set_precise_lm_head): TF32 on fp32 operands by default.
//
// Attention per layer: with options.attention set, Q/K/V (post-RoPE, fp32)
// are downloaded, the hook runs on the host (it may call the msa::cuda
// attention ops itself), and its output is uploaded; without a hook the
// layer runs msa::kern's dense flash attention on the device (head_dim 64 or
// 128; other head sizes fall back to the CPU's dense attention on the
// downloaded Q/K/V).
//
// Throws msa::InputError for a model or tokens that cannot run (same checks as
// the CPU forward) and std::runtime_error for CUDA/cuBLAS failures.
#include <cstddef>
#include <memory>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/run_result.h"

namespace msa::cuda {

class ForwardEngine {
public:
    ForwardEngine();
    ~ForwardEngine();
    ForwardEngine(const ForwardEngine&) = delete;
    ForwardEngine& operator=(const ForwardEngine&) = delete;

    // Uploads the model's weights unless this engine already holds them (a
    // fingerprint of shapes and sampled weight values decides; one model is
    // cached at a time), then runs it. One forward at a time per engine.
    ForwardResult forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options);

    size_t weight_bytes() const;  // device bytes of the cached weights (0: none)
    // true (default): the LM head runs in TF32 on an fp32 copy of its weights
    // and the fp32 final-norm output; false: bf16 like every other GEMM.
    void set_precise_lm_head(bool on);
    void release();               // frees the cached weights and the work buffers

    // The GEMMs launched while a KernelCollector was active, oldest first, as
    // records without timing (name, phase "gemm", layer, analytic FLOPs and
    // bytes); cleared by the call. The CUDA backend uses them to cost cuBLAS
    // kernels that CUPTI reports without a launch tag (see cuda_backend.cpp).
    std::vector<KernelRecord> take_gemm_log();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// The process-wide engine that forward() below uses (created on first use).
ForwardEngine& default_forward_engine();

ForwardResult forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options);

}  // namespace msa::cuda
