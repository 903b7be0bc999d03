#pragma once
// The LM head's epilogue: for each row of a logits chunk, a fused log-softmax
// that keeps only what the forward reports, nll = logsumexp(row) - row[target]
// and the argmax (ties to the lower token id, as the CPU). The chunk is the
// output of one cuBLAS GEMM over a slice of positions; the [N, vocab] matrix
// never exists (1.6 GB at 8K tokens for a 49K vocabulary).
#include <cuda_runtime.h>

#include <cstdint>

namespace msa::kern {

struct LogitsStatsOp {
    const float* logits = nullptr;    // [rows, vocab], rows ld floats apart
    long ld = 0;
    int rows = 0;
    int vocab = 0;
    const int32_t* targets = nullptr; // [rows]; -1: no target (nll left untouched)
    float* nll = nullptr;             // [rows]
    int32_t* argmax = nullptr;        // [rows]
};

void logits_stats_launch(const LogitsStatsOp& op, cudaStream_t stream);

}  // namespace msa::kern
