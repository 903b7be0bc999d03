#pragma once
// Where the work of an analysis runs. analyze() (core/analysis.h) does the
// same steps on any backend: a forward per pass, and per analysed layer the
// dense attention, the index + top-k and the main branch on the Q/K/V the
// forward hands its attention hook. The CPU backend is core's own functions;
// the CUDA backend (kernels/cuda_backend.h) runs the same calls on the GPU.
//
// The diagnostics that have no GPU op (dense block mass, recall, output error)
// stay with analyze() on the CPU: they read the hook's Q/K/V, whichever
// backend produced them, so both backends are judged by one ruler.
//
// Methods are const: one backend object serves several runs (the GUI keeps it
// for the session). An implementation with device state (weight caches, the
// kernel collector) keeps it behind `mutable` and a mutex.
#include <string>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/msa.h"
#include "core/run_result.h"

namespace msa {

class ComputeBackend {
public:
    virtual ~ComputeBackend() = default;

    virtual std::string name() const = 0;    // "cpu" | "cuda": RunResult::backend
    virtual std::string device() const = 0;  // e.g. "cpu (16 threads)" or "NVIDIA H100 80GB HBM3"

    // The whole model (core/forward.h contract): same hook, progress and
    // cancellation semantics on every backend.
    virtual ForwardResult forward(const Model& model, const std::vector<int>& tokens,
                                  const ForwardOptions& options) const = 0;

    // Attention ops on host arrays in core/msa.h layouts. `threads` is a hint
    // for CPU work (the CUDA backend ignores it).
    virtual void dense_attention(const QKV& qkv, float* out, int threads) const = 0;
    // Index scoring, pooling and top-k; scores (optional) gets the block scores.
    virtual Selection select_blocks(const IndexInputs& index, const MsaConfig& config, BlockScores* scores,
                                    int threads) const = 0;
    virtual void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out,
                                  int threads) const = 0;

    // Kernel launches recorded since the previous call, in launch order, with
    // analytic FLOPs/bytes where the launcher knows them. The CPU launches no
    // kernels: always empty there. analyze() calls it once before its first
    // pass (to drop anything older) and once at the end.
    virtual std::vector<KernelRecord> take_kernel_records() const { return {}; }
    // Notes for the run's warnings (e.g. "CUPTI unavailable: timing with CUDA events"); cleared by the call.
    virtual std::vector<std::string> take_warnings() const { return {}; }
};

// core's own functions (forward.h, msa.h). Stateless; lives for the program.
const ComputeBackend& cpu_backend();

}  // namespace msa
