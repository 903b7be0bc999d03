#pragma once
// The CPU matmul every linear layer of the forward runs on:
//   y[N, out] = x[N, in] · W[out, in]^T (+ bias)      float32, FMA accumulation.
//
// W is stored row-major [out, in] (model.h), so the 16 outputs a SIMD register
// holds live 'in' floats apart. pack_weights() transposes W once into panels of
// 16 outputs ([in][16] each, zero-padded past `out`), the layout the register
// kernel streams with unit stride. The forward packs each layer's weights right
// before use (a copy of the layer, ~2% of the layer's GEMM time at N = 2048) and
// can fuse several matrices sharing the same input (Q|K|V, gate|up) into one
// packed matrix, so one GEMM pass reads x once.
#include <cstddef>
#include <memory>
#include <vector>

#include "core/model.h"

namespace msa {

constexpr int kGemmPanel = 16;  // outputs per packed panel (two AVX2 registers)

// float buffer aligned to 64 bytes (cache line), uninitialized on allocation:
// the LM head alone packs to 113 MB and zero-filling it first would cost a pass.
class AlignedFloats {
public:
    AlignedFloats() = default;
    explicit AlignedFloats(size_t n);
    float* data() { return ptr_.get(); }
    const float* data() const { return ptr_.get(); }
    size_t size() const { return size_; }
private:
    struct Free { void operator()(float* p) const; };
    std::unique_ptr<float, Free> ptr_;
    size_t size_ = 0;
};

struct PackedWeights {
    int out = 0;           // total outputs (sum of the fused parts' rows)
    int in = 0;
    int n_panels = 0;      // ceil(out / kGemmPanel)
    AlignedFloats panels;  // [n_panels][in][kGemmPanel]
    std::vector<float> bias;  // empty, or [n_panels * kGemmPanel] (zero-padded)
    const float* panel(int p) const { return panels.data() + static_cast<size_t>(p) * in * kGemmPanel; }
};

// Packs the row-concatenation of `parts` (all with the same `in`). `biases` is
// empty (no bias) or one pointer per part; a null or empty entry means zeros.
// Throws std::invalid_argument on mismatched shapes.
PackedWeights pack_weights(const std::vector<const Matrix*>& parts,
                           const std::vector<const std::vector<float>*>& biases = {}, int threads = 1);
PackedWeights pack_weights(const Matrix& w, const std::vector<float>* bias = nullptr, int threads = 1);

// y[r, c - col_begin] (+)= x[r, :] · W[c, :] + bias[c]   for r < n, col_begin <= c < col_end.
// x rows are ldx floats apart, y rows ldy apart. col_begin must be a multiple of
// kGemmPanel; col_end <= w.out (-1 = w.out). accumulate: add to y instead of
// overwriting it (the residual stream adds its projections in place).
struct GemmOutput {
    float* y = nullptr;
    long ldy = 0;
    bool accumulate = false;
    int col_begin = 0;
    int col_end = -1;
};
void gemm(const float* x, int n, long ldx, const PackedWeights& w, const GemmOutput& out, int threads = 1);

// Convenience: packs W for this call only. y is [n, w.rows] contiguous.
void gemm(const float* x, int n, const Matrix& w, const float* bias, float* y, int threads = 1);

// Which register kernel this build uses ("avx2-fma 6x16" or "portable").
const char* gemm_kernel_name();

}  // namespace msa
