#include "kernels/logits_stats.cuh"

#include <cmath>

#include "kernels/cuda_check.h"

namespace msa::kern {
namespace {

constexpr int kThreads = 256;

// Running (max, sum of exp(x - max), argmax) of a set of logits; merge is the
// online-softmax combination (FlashAttention's rescale), so one pass over the
// row suffices.
struct Stats {
    float max;
    float sum;
    int arg;
};

__device__ __forceinline__ Stats merge(Stats a, Stats b) {
    if (b.arg < 0) return a;
    if (a.arg < 0) return b;
    // Larger max wins the argmax; on equal values the lower id (CPU: strict '>' scanning up).
    const bool b_wins = b.max > a.max || (b.max == a.max && b.arg < a.arg);
    const float m = b_wins ? b.max : a.max;
    Stats r;
    r.max = m;
    r.arg = b_wins ? b.arg : a.arg;
    r.sum = a.sum * expf(a.max - m) + b.sum * expf(b.max - m);
    return r;
}

// One block per row. Each thread scans a strided slice with increasing ids
// (so a strict '>' keeps its lowest id among equal values), rescaling its sum
// only when its max grows; then a shuffle + shared-memory tree merges the
// threads. NaN logits never become the max (comparisons with NaN are false),
// as on the CPU.
__global__ void logits_stats_kernel(LogitsStatsOp op) {
    const int r = blockIdx.x;
    const float* row = op.logits + static_cast<size_t>(r) * op.ld;
    Stats s{-INFINITY, 0.f, -1};
    for (int j = threadIdx.x; j < op.vocab; j += kThreads) {
        const float x = row[j];
        if (x > s.max) {
            s.sum = (s.arg < 0 ? 0.f : s.sum * expf(s.max - x)) + 1.0f;
            s.max = x;
            s.arg = j;
        } else if (s.arg >= 0) {
            s.sum += expf(x - s.max);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        Stats other;
        other.max = __shfl_xor_sync(0xffffffffu, s.max, o);
        other.sum = __shfl_xor_sync(0xffffffffu, s.sum, o);
        other.arg = __shfl_xor_sync(0xffffffffu, s.arg, o);
        s = merge(s, other);
    }
    __shared__ Stats warp_stats[kThreads / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_stats[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        Stats total = warp_stats[0];
        for (int w = 1; w < kThreads / 32; ++w) total = merge(total, warp_stats[w]);
        op.argmax[r] = total.arg < 0 ? 0 : total.arg;
        const int target = op.targets ? op.targets[r] : -1;
        if (target >= 0 && target < op.vocab)
            op.nll[r] = total.max + logf(total.sum) - row[target];
    }
}

}  // namespace

void logits_stats_launch(const LogitsStatsOp& op, cudaStream_t stream) {
    if (op.rows <= 0) return;
    logits_stats_kernel<<<op.rows, kThreads, 0, stream>>>(op);
    MSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace msa::kern
