#include "core/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MSA_GEMM_AVX2 1
#else
#define MSA_GEMM_AVX2 0
#endif

namespace msa {

namespace {

// Register tile: 6 rows x 16 outputs = 12 ymm accumulators + 2 for the W row
// + 1 broadcast = 15 of the 16 AVX2 registers. Per k step it issues 12 FMAs
// against 2 vector loads and 6 broadcasts, so on Zen (2 FMA pipes, 2-3 loads per
// cycle) the FMA pipes, not the loads, are the limit. 4x24 (12 acc, 3 W loads,
// 4 broadcasts) has the same FMA:load balance but pads `out` to 24, which none
// of the model's widths (576, 192, 1536, 49152) divide better than 16.
constexpr int kMr = 6;
constexpr int kNr = kGemmPanel;

// Rows of x packed per work item: the packed block (kMc x kKc floats, 96 KB at
// kKc = 256) stays in the 512 KB L2 while every W panel of the item streams
// past it; each W micro-panel (kKc x 16 floats, 16 KB) stays in the 32 KB L1
// across the kMc / 6 = 16 row tiles that reuse it.
constexpr int kMc = 96;
// k is split so a W micro-panel stays near L1: 576 is taken whole (36 KB;
// splitting it 2 x 288 measured the same within the +-15% noise of the shared
// 2-core machine, and whole saves a read-modify-write pass over y), 1536 is
// taken as 3 x 512.
constexpr int kKcMax = 640;
constexpr int kKcSplit = 512;
// Outputs per work item at most (48 panels): enough items for 2+ threads even
// when n is a single row block, small enough that an item is a few ms.
constexpr int kNcPanels = 48;

int k_chunk(int in) { return in <= kKcMax ? in : kKcSplit; }

#if MSA_GEMM_AVX2
// c[6][16] (row stride ldc) = (load_c ? c : 0) + bias + a_panel · b_panel
// a: [kc][6], b: [kc][16] (stride 16), bias: 16 floats or null.
inline void kernel_6x16(int kc, const float* a, const float* b, float* c, long ldc, bool load_c,
                        const float* bias) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load_c) {
        c00 = _mm256_loadu_ps(c + 0 * ldc); c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
        c10 = _mm256_loadu_ps(c + 1 * ldc); c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc); c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc); c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc); c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc); c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    if (bias) {
        const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
        c00 = _mm256_add_ps(c00, b0); c01 = _mm256_add_ps(c01, b1);
        c10 = _mm256_add_ps(c10, b0); c11 = _mm256_add_ps(c11, b1);
        c20 = _mm256_add_ps(c20, b0); c21 = _mm256_add_ps(c21, b1);
        c30 = _mm256_add_ps(c30, b0); c31 = _mm256_add_ps(c31, b1);
        c40 = _mm256_add_ps(c40, b0); c41 = _mm256_add_ps(c41, b1);
        c50 = _mm256_add_ps(c50, b0); c51 = _mm256_add_ps(c51, b1);
    }
    for (int k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(b);
        const __m256 b1 = _mm256_load_ps(b + 8);
        __m256 av;
        av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
        a += kMr;
        b += kNr;
    }
    _mm256_storeu_ps(c + 0 * ldc, c00); _mm256_storeu_ps(c + 0 * ldc + 8, c01);
    _mm256_storeu_ps(c + 1 * ldc, c10); _mm256_storeu_ps(c + 1 * ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20); _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30); _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40); _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50); _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}
#else
// Same contract as the AVX2 kernel; plain loops the compiler may vectorize.
inline void kernel_6x16(int kc, const float* a, const float* b, float* c, long ldc, bool load_c,
                        const float* bias) {
    float acc[kMr][kNr];
    for (int r = 0; r < kMr; ++r)
        for (int j = 0; j < kNr; ++j) acc[r][j] = (load_c ? c[r * ldc + j] : 0.0f) + (bias ? bias[j] : 0.0f);
    for (int k = 0; k < kc; ++k) {
        for (int r = 0; r < kMr; ++r) {
            const float av = a[r];
            for (int j = 0; j < kNr; ++j) acc[r][j] += av * b[j];
        }
        a += kMr;
        b += kNr;
    }
    for (int r = 0; r < kMr; ++r)
        for (int j = 0; j < kNr; ++j) c[r * ldc + j] = acc[r][j];
}
#endif

// Edge tiles (fewer than 6 rows or 16 columns left) go through a full-size
// scratch tile so the kernel itself never branches on bounds.
inline void kernel_edge(int kc, const float* a, const float* b, float* c, long ldc, int rows, int cols, bool load_c,
                        const float* bias) {
    alignas(32) float tile[kMr * kNr];
    if (load_c) {
        for (int r = 0; r < rows; ++r) std::memcpy(tile + r * kNr, c + r * ldc, sizeof(float) * cols);
    }
    kernel_6x16(kc, a, b, tile, kNr, load_c, bias);
    for (int r = 0; r < rows; ++r) std::memcpy(c + r * ldc, tile + r * kNr, sizeof(float) * cols);
}

// x rows [r0, r0 + rows) -> [ceil(rows/6)][in][6], zero rows past the end so
// the kernel's padded rows add nothing.
void pack_rows(const float* x, long ldx, int r0, int rows, int in, float* dst) {
    for (int t = 0; t < rows; t += kMr) {
        const int live = std::min(kMr, rows - t);
        const float* src[kMr];
        for (int r = 0; r < kMr; ++r) src[r] = r < live ? x + static_cast<long>(r0 + t + r) * ldx : nullptr;
        float* d = dst + static_cast<size_t>(t / kMr) * in * kMr;
        if (live == kMr) {
            for (int k = 0; k < in; ++k) {
                d[0] = src[0][k]; d[1] = src[1][k]; d[2] = src[2][k];
                d[3] = src[3][k]; d[4] = src[4][k]; d[5] = src[5][k];
                d += kMr;
            }
        } else {
            for (int k = 0; k < in; ++k) {
                for (int r = 0; r < kMr; ++r) d[r] = src[r] ? src[r][k] : 0.0f;
                d += kMr;
            }
        }
    }
}

}  // namespace

void AlignedFloats::Free::operator()(float* p) const { std::free(p); }

AlignedFloats::AlignedFloats(size_t n) : size_(n) {
    if (n == 0) return;
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    ptr_.reset(static_cast<float*>(p));
}

PackedWeights pack_weights(const std::vector<const Matrix*>& parts, const std::vector<const std::vector<float>*>& biases,
                           int threads) {
    if (parts.empty()) throw std::invalid_argument("pack_weights: no matrices");
    if (!biases.empty() && biases.size() != parts.size())
        throw std::invalid_argument("pack_weights: one bias entry per matrix expected");
    PackedWeights p;
    p.in = parts[0]->cols;
    // Row source per output, so the fused matrix packs without first being concatenated.
    std::vector<const float*> row_src;
    bool any_bias = false;
    for (size_t i = 0; i < parts.size(); ++i) {
        const Matrix& m = *parts[i];
        if (m.cols != p.in || m.rows <= 0 || m.data.size() != static_cast<size_t>(m.rows) * m.cols)
            throw std::invalid_argument("pack_weights: matrix " + std::to_string(i) + " is " + std::to_string(m.rows) +
                                        "x" + std::to_string(m.cols) + ", expected ?x" + std::to_string(p.in));
        for (int r = 0; r < m.rows; ++r) row_src.push_back(m.row(r));
        if (!biases.empty() && biases[i] && !biases[i]->empty()) {
            if (biases[i]->size() != static_cast<size_t>(m.rows))
                throw std::invalid_argument("pack_weights: bias " + std::to_string(i) + " has the wrong length");
            any_bias = true;
        }
    }
    p.out = static_cast<int>(row_src.size());
    p.n_panels = (p.out + kNr - 1) / kNr;
    p.panels = AlignedFloats(static_cast<size_t>(p.n_panels) * p.in * kNr);
    if (any_bias) {
        p.bias.assign(static_cast<size_t>(p.n_panels) * kNr, 0.0f);
        size_t o = 0;
        for (size_t i = 0; i < parts.size(); ++i) {
            if (biases[i] && !biases[i]->empty()) std::copy(biases[i]->begin(), biases[i]->end(), p.bias.begin() + o);
            o += parts[i]->rows;
        }
    }
    const int in = p.in;
    float* base = p.panels.data();
    // Transpose 16 rows at a time, reading each source row sequentially: writes
    // stride 16 floats, which stays within the panel's lines in L1/L2.
    parallel_for(p.n_panels, threads, [&](long pb, long pe) {
        for (long pi = pb; pi < pe; ++pi) {
            float* dst = base + static_cast<size_t>(pi) * in * kNr;
            for (int j = 0; j < kNr; ++j) {
                const long o = pi * kNr + j;
                if (o < p.out) {
                    const float* src = row_src[o];
                    for (int k = 0; k < in; ++k) dst[static_cast<size_t>(k) * kNr + j] = src[k];
                } else {
                    for (int k = 0; k < in; ++k) dst[static_cast<size_t>(k) * kNr + j] = 0.0f;
                }
            }
        }
    });
    return p;
}

PackedWeights pack_weights(const Matrix& w, const std::vector<float>* bias, int threads) {
    if (bias) return pack_weights({&w}, {bias}, threads);
    return pack_weights(std::vector<const Matrix*>{&w}, {}, threads);
}

void gemm(const float* x, int n, long ldx, const PackedWeights& w, const GemmOutput& out, int threads) {
    const int col_end = out.col_end < 0 ? w.out : out.col_end;
    if (out.col_begin % kNr != 0 || out.col_begin < 0 || col_end > w.out || out.col_begin > col_end)
        throw std::invalid_argument("gemm: bad column range");
    if (n <= 0 || col_end == out.col_begin) return;
    if (ldx < w.in) throw std::invalid_argument("gemm: ldx < in");
    const int in = w.in;
    const int kc_max = k_chunk(in);
    const int panel_begin = out.col_begin / kNr;
    const int panel_end = (col_end + kNr - 1) / kNr;
    const int panels = panel_end - panel_begin;
    const int row_blocks = (n + kMc - 1) / kMc;
    // Split columns only as far as needed for load balance (each column block
    // re-packs its rows of x: cheap next to its FLOPs, but not free).
    const int want_items = std::max(1, threads) * 4;
    int col_blocks = std::max((panels + kNcPanels - 1) / kNcPanels, (want_items + row_blocks - 1) / row_blocks);
    col_blocks = std::min(col_blocks, panels);
    const long items = static_cast<long>(row_blocks) * col_blocks;
    const float* bias = w.bias.empty() ? nullptr : w.bias.data();

    auto worker = [&](std::atomic<long>& next) {
        AlignedFloats apack(static_cast<size_t>(kMc) * in);
        for (long item = next.fetch_add(1); item < items; item = next.fetch_add(1)) {
            const int rb = static_cast<int>(item / col_blocks), cb = static_cast<int>(item % col_blocks);
            const int r0 = rb * kMc, rows = std::min(kMc, n - r0);
            const int p0 = panel_begin + static_cast<int>(static_cast<long>(panels) * cb / col_blocks);
            const int p1 = panel_begin + static_cast<int>(static_cast<long>(panels) * (cb + 1) / col_blocks);
            pack_rows(x, ldx, r0, rows, in, apack.data());
            for (int k0 = 0; k0 < in; k0 += kc_max) {
                const int kc = std::min(kc_max, in - k0);
                const bool first = k0 == 0;
                const bool load_c = !first || out.accumulate;
                for (int pi = p0; pi < p1; ++pi) {
                    const float* bp = w.panel(pi) + static_cast<size_t>(k0) * kNr;
                    const int c0 = pi * kNr;
                    const int cols = std::min(kNr, col_end - c0);
                    const float* bias_tile = (first && bias) ? bias + c0 : nullptr;
                    float* yc = out.y + (c0 - out.col_begin);
                    for (int t = 0; t < rows; t += kMr) {
                        const float* ap = apack.data() + static_cast<size_t>(t / kMr) * in * kMr + static_cast<size_t>(k0) * kMr;
                        float* c = yc + static_cast<long>(r0 + t) * out.ldy;
                        const int live = std::min(kMr, rows - t);
                        if (live == kMr && cols == kNr)
                            kernel_6x16(kc, ap, bp, c, out.ldy, load_c, bias_tile);
                        else
                            kernel_edge(kc, ap, bp, c, out.ldy, live, cols, load_c, bias_tile);
                    }
                }
            }
        }
    };
    std::atomic<long> next{0};
    const int workers = static_cast<int>(std::min<long>(std::max(1, threads), items));
    // One worker per thread (not one task per item) so each packs into a single buffer.
    parallel_for(workers, workers, [&](long, long) { worker(next); });
}

void gemm(const float* x, int n, const Matrix& w, const float* bias, float* y, int threads) {
    PackedWeights p = pack_weights(w, nullptr, threads);
    if (bias) p.bias.assign(bias, bias + w.rows), p.bias.resize(static_cast<size_t>(p.n_panels) * kNr, 0.0f);
    GemmOutput o;
    o.y = y;
    o.ldy = w.rows;
    gemm(x, n, w.cols, p, o, threads);
}

const char* gemm_kernel_name() { return MSA_GEMM_AVX2 ? "avx2-fma 6x16" : "portable 6x16"; }

}  // namespace msa
