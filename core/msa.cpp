#include "core/msa.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/errors.h"
#include "core/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MSA_AVX2 1
#else
#define MSA_AVX2 0
#endif

namespace msa {

const char* to_string(Scorer s) {
    switch (s) {
        case Scorer::max: return "max";
        case Scorer::mean: return "mean";
        case Scorer::quest: return "quest";
        case Scorer::random: return "random";
    }
    return "?";
}

const char* to_string(IndexKind k) {
    switch (k) {
        case IndexKind::free: return "free";
        case IndexKind::trained: return "trained";
    }
    return "?";
}

Scorer parse_scorer(const std::string& s) {
    if (s == "max") return Scorer::max;
    if (s == "mean") return Scorer::mean;
    if (s == "quest") return Scorer::quest;
    if (s == "random") return Scorer::random;
    throw InputError("unknown scorer '" + s + "' (expected max, mean, quest or random)");
}

IndexKind parse_index_kind(const std::string& s) {
    if (s == "free") return IndexKind::free;
    if (s == "trained") return IndexKind::trained;
    throw InputError("unknown index kind '" + s + "' (expected free or trained)");
}

int Selection::count(int t, int g) const {
    const int32_t* r = row(t, g);
    int n = 0;
    for (int i = 0; i < slots; ++i) n += r[i] >= 0;
    return n;
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Keys per inner step. A key block longer than this is walked in chunks (each a
// separate online-softmax step) so that the per-thread score buffer stays in L2.
constexpr int kKeyChunk = 128;
// Query vectors per tile: enough to reuse each K/V chunk many times from cache,
// few enough that Q, the accumulators and the score tile fit in L2.
constexpr int kTileRows = 96;

void require(bool ok, const std::string& message) {
    if (!ok) throw InputError(message);
}

void check_shape(const QKV& qkv) {
    const AttentionShape& s = qkv.shape;
    require(s.n_tokens >= 0, "n_tokens must be >= 0, got " + std::to_string(s.n_tokens));
    require(s.n_heads >= 1 && s.n_kv_heads >= 1, "head counts must be >= 1");
    require(s.n_heads % s.n_kv_heads == 0, "n_heads (" + std::to_string(s.n_heads) + ") is not a multiple of n_kv_heads (" +
                                                std::to_string(s.n_kv_heads) + ")");
    require(s.head_dim >= 1, "head_dim must be >= 1, got " + std::to_string(s.head_dim));
    require(s.n_tokens == 0 || (qkv.q && qkv.k && qkv.v), "Q, K and V must not be null");
}

void check_block(int block) { require(block >= 1, "block must be >= 1, got " + std::to_string(block)); }

size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// ---------------------------------------------------------------------------
// Numerical kernels. Every value they produce depends only on its own row's
// inputs and on the order in which that row's key chunks are visited, never on
// which other rows share the call: that is what makes sparse-with-everything
// bit-identical to dense. Dot products are one fused multiply-add chain over
// the channels in order; P.V is one fma chain over keys in order per channel.

#if MSA_AVX2
inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
// 2^x for x <= 0 (also fine up to +127): 2^round(x) * poly(frac), frac in
// [-0.5, 0.5], degree-6 Taylor of 2^f (relative error ~1.5e-7, about 1 ulp).
// Inputs below -126 give exactly 0, so fully masked lanes (-inf) give 0 and
// denormals never appear in the probabilities.
inline __m256 exp2_ps(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-126.0f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(127.0f));
    __m256 n = _mm256_round_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(xc, n);
    __m256 p = _mm256_set1_ps(1.5403530393381606e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(underflow, r);
}
#endif

// Same function as exp2_ps lane by lane (identical operations, fma included).
inline float exp2_scalar(float x) {
    if (!(x >= -126.0f)) return x != x ? x : 0.0f;
    float xc = std::min(x, 127.0f);
    float n = std::nearbyint(xc);
    float f = xc - n;
    float p = 1.5403530393381606e-4f;
    p = std::fma(p, f, 1.3333558146428443e-3f);
    p = std::fma(p, f, 9.6181291076284772e-3f);
    p = std::fma(p, f, 5.5504108664821580e-2f);
    p = std::fma(p, f, 2.4022650695910071e-1f);
    p = std::fma(p, f, 6.9314718055994531e-1f);
    p = std::fma(p, f, 1.0f);
    return std::ldexp(p, static_cast<int>(n));
}

// Keys transposed into panels of kKeyChunk positions: [head][window][channel]
// [position in window]. One channel of 8 or 16 consecutive keys is one
// contiguous load, and a window's keys for all channels are one contiguous
// 32 KB (d = 64) run: few TLB pages and no cache-set conflicts between
// channels. Zero padded; 16 spare floats at the end absorb the widest read.
struct TransposedKeys {
    std::vector<float> data;
    int dim = 0;
    int windows = 0;
    // The first key of window w for key head h; consecutive channels kKeyChunk apart.
    const float* window(int h, int w) const {
        return data.data() + (static_cast<size_t>(h) * windows + w) * dim * kKeyChunk;
    }
};

TransposedKeys transpose_keys(const float* k, int n, int heads, int dim, int threads) {
    TransposedKeys t;
    t.dim = dim;
    t.windows = (n + kKeyChunk - 1) / kKeyChunk;
    t.data.assign(static_cast<size_t>(heads) * t.windows * dim * kKeyChunk + 16, 0.0f);
    parallel_for(static_cast<long>(t.windows) * heads, threads, [&](long begin, long end) {
        for (long item = begin; item < end; ++item) {
            const int h = static_cast<int>(item % heads), w = static_cast<int>(item / heads);
            const int j0 = w * kKeyChunk, j1 = std::min(n, j0 + kKeyChunk);
            float* dst = const_cast<float*>(t.window(h, w));
            for (int j = j0; j < j1; ++j) {
                const float* src = k + (static_cast<size_t>(j) * heads + h) * dim;
                for (int c = 0; c < dim; ++c) dst[static_cast<size_t>(c) * kKeyChunk + (j - j0)] = src[c];
            }
        }
    });
    return t;
}

// V regrouped as [group][position][channel]: a window's values for one group
// are one contiguous run instead of rows Hkv*d floats apart.
std::vector<float> values_by_group(const float* v, int n, int groups, int dim, int threads) {
    std::vector<float> out(static_cast<size_t>(n) * groups * dim);
    parallel_for(n, threads, [&](long begin, long end) {
        for (long j = begin; j < end; ++j)
            for (int g = 0; g < groups; ++g)
                std::memcpy(&out[(static_cast<size_t>(g) * n + j) * dim], v + (static_cast<size_t>(j) * groups + g) * dim,
                            sizeof(float) * dim);
    }, 64);
    return out;
}

#if MSA_AVX2
// 6 rows x 16 keys, accumulators in named registers (GCC keeps arrays of
// __m256 on the stack here). Fewer rows reuse it with dummy rows.
inline void qk_6x16(const float* const* q, int dim, const float* kt, size_t stride, float* const* s) {
    __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0, a4 = a0, b4 = a0,
           a5 = a0, b5 = a0;
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3], *q4 = q[4], *q5 = q[5];
    for (int c = 0; c < dim; ++c) {
        const float* kc = kt + static_cast<size_t>(c) * stride;
        const __m256 k0 = _mm256_loadu_ps(kc), k1 = _mm256_loadu_ps(kc + 8);
        __m256 x = _mm256_broadcast_ss(q0 + c);
        a0 = _mm256_fmadd_ps(x, k0, a0), b0 = _mm256_fmadd_ps(x, k1, b0);
        x = _mm256_broadcast_ss(q1 + c);
        a1 = _mm256_fmadd_ps(x, k0, a1), b1 = _mm256_fmadd_ps(x, k1, b1);
        x = _mm256_broadcast_ss(q2 + c);
        a2 = _mm256_fmadd_ps(x, k0, a2), b2 = _mm256_fmadd_ps(x, k1, b2);
        x = _mm256_broadcast_ss(q3 + c);
        a3 = _mm256_fmadd_ps(x, k0, a3), b3 = _mm256_fmadd_ps(x, k1, b3);
        x = _mm256_broadcast_ss(q4 + c);
        a4 = _mm256_fmadd_ps(x, k0, a4), b4 = _mm256_fmadd_ps(x, k1, b4);
        x = _mm256_broadcast_ss(q5 + c);
        a5 = _mm256_fmadd_ps(x, k0, a5), b5 = _mm256_fmadd_ps(x, k1, b5);
    }
    _mm256_storeu_ps(s[0], a0), _mm256_storeu_ps(s[0] + 8, b0);
    _mm256_storeu_ps(s[1], a1), _mm256_storeu_ps(s[1] + 8, b1);
    _mm256_storeu_ps(s[2], a2), _mm256_storeu_ps(s[2] + 8, b2);
    _mm256_storeu_ps(s[3], a3), _mm256_storeu_ps(s[3] + 8, b3);
    _mm256_storeu_ps(s[4], a4), _mm256_storeu_ps(s[4] + 8, b4);
    _mm256_storeu_ps(s[5], a5), _mm256_storeu_ps(s[5] + 8, b5);
}

inline void qk_6x8(const float* const* q, int dim, const float* kt, size_t stride, float* const* s) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3], *q4 = q[4], *q5 = q[5];
    for (int c = 0; c < dim; ++c) {
        const __m256 k0 = _mm256_loadu_ps(kt + static_cast<size_t>(c) * stride);
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q0 + c), k0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q1 + c), k0, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(q2 + c), k0, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(q3 + c), k0, a3);
        a4 = _mm256_fmadd_ps(_mm256_broadcast_ss(q4 + c), k0, a4);
        a5 = _mm256_fmadd_ps(_mm256_broadcast_ss(q5 + c), k0, a5);
    }
    _mm256_storeu_ps(s[0], a0), _mm256_storeu_ps(s[1], a1), _mm256_storeu_ps(s[2], a2);
    _mm256_storeu_ps(s[3], a3), _mm256_storeu_ps(s[4], a4), _mm256_storeu_ps(s[5], a5);
}
#endif

// Raw dot products s[r][j] = q[r] . k[j] for j in [0, round_up(nkeys, 8)).
// `kt` points at the chunk's first key in the transposed layout.
void qk_scores(const float* const* q, int nrows, int dim, const float* kt, size_t stride, int nkeys, float* const* s) {
    const int padded = static_cast<int>(round_up(nkeys, 8));
#if MSA_AVX2
    thread_local std::vector<float> dummy_q, dummy_s;
    dummy_q.assign(dim, 0.0f);
    dummy_s.resize(16);
    const float* qg[6];
    float* sg[6];
    for (int r0 = 0; r0 < nrows; r0 += 6) {
        for (int i = 0; i < 6; ++i) qg[i] = r0 + i < nrows ? q[r0 + i] : dummy_q.data();
        for (int j = 0; j < padded; j += 16) {
            for (int i = 0; i < 6 && r0 + i < nrows; ++i) sg[i] = s[r0 + i] + j;
            for (int i = nrows - r0; i < 6; ++i) sg[i] = dummy_s.data();
            if (j + 16 <= padded)
                qk_6x16(qg, dim, kt + j, stride, sg);
            else
                qk_6x8(qg, dim, kt + j, stride, sg);
        }
    }
#else
    for (int r = 0; r < nrows; ++r)
        for (int j = 0; j < padded; ++j) {
            float acc = 0.0f;
            for (int c = 0; c < dim; ++c) acc = std::fma(q[r][c], kt[static_cast<size_t>(c) * stride + j], acc);
            s[r][j] = acc;
        }
#endif
}

// acc[r][c] += sum_j p[r][j] * v[j][c] for j < nkeys (probabilities past a
// row's own visible keys are exact zeros, so adding them changes nothing).
#if MSA_AVX2
// 6 rows x 16 channels in named registers, like qk_6x16.
inline void pv_6x16(const float* const* p, int nkeys, const float* v, size_t vstride, int c0, float* const* acc) {
    __m256 a0 = _mm256_loadu_ps(acc[0] + c0), b0 = _mm256_loadu_ps(acc[0] + c0 + 8);
    __m256 a1 = _mm256_loadu_ps(acc[1] + c0), b1 = _mm256_loadu_ps(acc[1] + c0 + 8);
    __m256 a2 = _mm256_loadu_ps(acc[2] + c0), b2 = _mm256_loadu_ps(acc[2] + c0 + 8);
    __m256 a3 = _mm256_loadu_ps(acc[3] + c0), b3 = _mm256_loadu_ps(acc[3] + c0 + 8);
    __m256 a4 = _mm256_loadu_ps(acc[4] + c0), b4 = _mm256_loadu_ps(acc[4] + c0 + 8);
    __m256 a5 = _mm256_loadu_ps(acc[5] + c0), b5 = _mm256_loadu_ps(acc[5] + c0 + 8);
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4], *p5 = p[5];
    for (int j = 0; j < nkeys; ++j) {
        const float* vj = v + static_cast<size_t>(j) * vstride + c0;
        const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);
        __m256 x = _mm256_broadcast_ss(p0 + j);
        a0 = _mm256_fmadd_ps(x, v0, a0), b0 = _mm256_fmadd_ps(x, v1, b0);
        x = _mm256_broadcast_ss(p1 + j);
        a1 = _mm256_fmadd_ps(x, v0, a1), b1 = _mm256_fmadd_ps(x, v1, b1);
        x = _mm256_broadcast_ss(p2 + j);
        a2 = _mm256_fmadd_ps(x, v0, a2), b2 = _mm256_fmadd_ps(x, v1, b2);
        x = _mm256_broadcast_ss(p3 + j);
        a3 = _mm256_fmadd_ps(x, v0, a3), b3 = _mm256_fmadd_ps(x, v1, b3);
        x = _mm256_broadcast_ss(p4 + j);
        a4 = _mm256_fmadd_ps(x, v0, a4), b4 = _mm256_fmadd_ps(x, v1, b4);
        x = _mm256_broadcast_ss(p5 + j);
        a5 = _mm256_fmadd_ps(x, v0, a5), b5 = _mm256_fmadd_ps(x, v1, b5);
    }
    _mm256_storeu_ps(acc[0] + c0, a0), _mm256_storeu_ps(acc[0] + c0 + 8, b0);
    _mm256_storeu_ps(acc[1] + c0, a1), _mm256_storeu_ps(acc[1] + c0 + 8, b1);
    _mm256_storeu_ps(acc[2] + c0, a2), _mm256_storeu_ps(acc[2] + c0 + 8, b2);
    _mm256_storeu_ps(acc[3] + c0, a3), _mm256_storeu_ps(acc[3] + c0 + 8, b3);
    _mm256_storeu_ps(acc[4] + c0, a4), _mm256_storeu_ps(acc[4] + c0 + 8, b4);
    _mm256_storeu_ps(acc[5] + c0, a5), _mm256_storeu_ps(acc[5] + c0 + 8, b5);
}

inline void pv_6x8(const float* const* p, int nkeys, const float* v, size_t vstride, int c0, float* const* acc) {
    __m256 a0 = _mm256_loadu_ps(acc[0] + c0), a1 = _mm256_loadu_ps(acc[1] + c0), a2 = _mm256_loadu_ps(acc[2] + c0);
    __m256 a3 = _mm256_loadu_ps(acc[3] + c0), a4 = _mm256_loadu_ps(acc[4] + c0), a5 = _mm256_loadu_ps(acc[5] + c0);
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4], *p5 = p[5];
    for (int j = 0; j < nkeys; ++j) {
        const __m256 v0 = _mm256_loadu_ps(v + static_cast<size_t>(j) * vstride + c0);
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p0 + j), v0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(p1 + j), v0, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(p2 + j), v0, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(p3 + j), v0, a3);
        a4 = _mm256_fmadd_ps(_mm256_broadcast_ss(p4 + j), v0, a4);
        a5 = _mm256_fmadd_ps(_mm256_broadcast_ss(p5 + j), v0, a5);
    }
    _mm256_storeu_ps(acc[0] + c0, a0), _mm256_storeu_ps(acc[1] + c0, a1), _mm256_storeu_ps(acc[2] + c0, a2);
    _mm256_storeu_ps(acc[3] + c0, a3), _mm256_storeu_ps(acc[4] + c0, a4), _mm256_storeu_ps(acc[5] + c0, a5);
}
#endif

void pv_accumulate(const float* const* p, const int* nkeys, int nrows, const float* v, size_t vstride, int dim,
                   float* const* acc) {
#if MSA_AVX2
    // Missing rows of the last group of 6 read zero probabilities and write scratch.
    thread_local std::vector<float> dummy_p, dummy_acc;
    dummy_p.assign(kKeyChunk, 0.0f);
    dummy_acc.resize(dim);
    const float* pg[6];
    float* ag[6];
    for (int r0 = 0; r0 < nrows; r0 += 6) {
        int n = 0;
        for (int i = 0; i < 6; ++i) {
            const bool real = r0 + i < nrows;
            pg[i] = real ? p[r0 + i] : dummy_p.data();
            ag[i] = real ? acc[r0 + i] : dummy_acc.data();
            if (real) n = std::max(n, nkeys[r0 + i]);
        }
        int c = 0;
        for (; c + 16 <= dim; c += 16) pv_6x16(pg, n, v, vstride, c, ag);
        for (; c + 8 <= dim; c += 8) pv_6x8(pg, n, v, vstride, c, ag);
        for (; c < dim; ++c)
            for (int i = 0; i < 6; ++i) {
                float a = ag[i][c];
                for (int j = 0; j < n; ++j) a = std::fma(pg[i][j], v[static_cast<size_t>(j) * vstride + c], a);
                ag[i][c] = a;
            }
    }
#else
    for (int r = 0; r < nrows; ++r)
        for (int c = 0; c < dim; ++c) {
            float a = acc[r][c];
            for (int j = 0; j < nkeys[r]; ++j) a = std::fma(p[r][j], v[static_cast<size_t>(j) * vstride + c], a);
            acc[r][c] = a;
        }
#endif
}

// One online-softmax step for one row over scores s[a .. end) in log2 units,
// -inf where a key is masked (causal, or not selected). Overwrites them with
// probabilities relative to the new running max, updates m and l, and returns
// the factor by which the row's earlier accumulations must be rescaled. `a`
// and `end` are multiples of 8 relative to the window start; lane i of the
// partial sums always holds window positions = i (mod 8), so extra masked
// chunks before or after a row's keys add exact zeros and change nothing.
struct SoftmaxStep {
    float alpha;   // exp2(m_old - m_new)
    float sum;     // sum of this step's probabilities
    bool empty;    // every score was -inf: nothing changed
};

SoftmaxStep softmax_step(float* s, int a, int end, float& m, float& l) {
#if MSA_AVX2
    __m256 vmax = _mm256_set1_ps(kNegInf);
    for (int j = a; j < end; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
    float block_max = hmax8(vmax);
#else
    float block_max = kNegInf;
    for (int j = a; j < end; ++j) block_max = std::max(block_max, s[j]);
#endif
    float m_new = std::max(m, block_max);
    if (m_new == kNegInf) {
        std::fill(s + a, s + end, 0.0f);
        return {1.0f, 0.0f, true};
    }
#if MSA_AVX2
    __m256 vm = _mm256_set1_ps(m_new), vsum = _mm256_setzero_ps();
    for (int j = a; j < end; j += 8) {
        __m256 p = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, p);
        vsum = _mm256_add_ps(vsum, p);
    }
    float sum = hsum8(vsum);
    float alpha = exp2_scalar(m - m_new);
#else
    // Same lane-wise partial sums and reduction tree as the vector path.
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = a; j < end; ++j) {
        float p = exp2_scalar(s[j] - m_new);
        s[j] = p;
        lanes[j % 8] += p;
    }
    float h[4];
    for (int i = 0; i < 4; ++i) h[i] = lanes[i] + lanes[i + 4];
    float sum = (h[0] + h[2]) + (h[1] + h[3]);
    float alpha = exp2_scalar(m - m_new);
#endif
    l = l * alpha + sum;
    m = m_new;
    return {alpha, sum, false};
}

void scale_row(float* a, int dim, float alpha) {
    if (alpha == 1.0f) return;
    for (int c = 0; c < dim; ++c) a[c] *= alpha;
}

// ---------------------------------------------------------------------------
// The one routine behind dense_attention, sparse_attention and
// dense_block_mass. A tile is a run of consecutive queries of one GQA group;
// its rows are (query, head) pairs, head fastest. Keys are walked in windows
// of kKeyChunk positions aligned to multiples of kKeyChunk, whatever the block
// size: one online-softmax step per row and window, over the row's keys in
// that window (its selected blocks' keys, causally masked), everything else
// -inf. A row's arithmetic never depends on the other rows of the tile, so
// its result depends only on its own key set: selecting every visible block
// gives exactly the dense key set, hence bit-identical output for any B.

// Keys [lo, hi) (window-relative) that query tq of the tile attends to in window w.
struct Piece {
    int window;
    int tq;
    int lo, hi;
    bool operator<(const Piece& o) const {
        if (window != o.window) return window < o.window;
        if (tq != o.tq) return tq < o.tq;
        return lo < o.lo;
    }
};

struct TilePlan {
    std::vector<Piece> pieces;  // sorted, non-overlapping per (window, tq)
};

// Adds the keys [begin, end) for query tq, split at window boundaries.
void add_key_range(TilePlan& plan, int tq, int begin, int end) {
    while (begin < end) {
        int w = begin / kKeyChunk, ws = w * kKeyChunk;
        int stop = std::min(end, ws + kKeyChunk);
        plan.pieces.push_back({w, tq, begin - ws, stop - ws});
        begin = stop;
    }
}

// Sorts and merges touching or overlapping pieces (repeated block ids).
void finish_plan(TilePlan& plan) {
    std::sort(plan.pieces.begin(), plan.pieces.end());
    size_t kept = 0;
    for (size_t i = 0; i < plan.pieces.size(); ++i) {
        const Piece& p = plan.pieces[i];
        if (kept > 0) {
            Piece& last = plan.pieces[kept - 1];
            if (last.window == p.window && last.tq == p.tq && p.lo <= last.hi) {
                last.hi = std::max(last.hi, p.hi);
                continue;
            }
        }
        plan.pieces[kept++] = p;
    }
    plan.pieces.resize(kept);
}

struct AttentionJob {
    const QKV* qkv;
    const TransposedKeys* keys;
    const float* values;  // values_by_group, or null when only the mass is wanted
    int block;         // for the mass only: which block each key adds to
    float q_scale;     // 1/sqrt(d) * log2(e): scores come out in log2 units
    float* out;        // [N, Hq, d], or null
    BlockMass* mass;   // or null
};

struct TileBuffers {
    std::vector<float> q, acc, s, m, l, mass_ref;
    std::vector<const float*> q_rows, p_rows;
    std::vector<float*> s_rows, s_from_a, acc_rows;
    std::vector<int> rows, row_end;
};

TileBuffers& tile_buffers() {
    thread_local TileBuffers buffers;
    return buffers;
}

__attribute__((noinline)) void attend_tile(const AttentionJob& job, int g, int t0, int t1, const TilePlan& plan) {
    const AttentionShape& shape = job.qkv->shape;
    const int d = shape.head_dim, r = shape.group_size(), hq = shape.n_heads;
    const int rows = (t1 - t0) * r;
    const int nb = job.mass ? job.mass->n_blocks : 0;
    TileBuffers& buf = tile_buffers();
    buf.q.resize(static_cast<size_t>(rows) * d);
    buf.acc.assign(static_cast<size_t>(rows) * d, 0.0f);
    buf.s.resize(static_cast<size_t>(rows) * kKeyChunk);
    buf.m.assign(rows, kNegInf);
    buf.l.assign(rows, 0.0f);
    if (job.mass) buf.mass_ref.assign(static_cast<size_t>(rows) * nb, kNegInf);

    for (int t = t0; t < t1; ++t) {
        const float* src = job.qkv->q + (static_cast<size_t>(t) * hq + static_cast<size_t>(g) * r) * d;
        float* dst = buf.q.data() + static_cast<size_t>(t - t0) * r * d;
        for (int i = 0; i < r * d; ++i) dst[i] = src[i] * job.q_scale;
    }
    auto mass_row = [&](int row) {
        int t = t0 + row / r, h = g * r + row % r;
        return job.mass->values.data() + (static_cast<size_t>(t) * hq + h) * nb;
    };
    if (job.mass)
        for (int row = 0; row < rows; ++row) std::fill(mass_row(row), mass_row(row) + nb, 0.0f);

    const size_t vstride = static_cast<size_t>(d);
    const std::vector<Piece>& pieces = plan.pieces;
    for (size_t w_begin = 0; w_begin < pieces.size();) {
        const int window = pieces[w_begin].window, ws = window * kKeyChunk;
        size_t w_end = w_begin;
        int lo = kKeyChunk, hi = 0;
        while (w_end < pieces.size() && pieces[w_end].window == window) {
            lo = std::min(lo, pieces[w_end].lo);
            hi = std::max(hi, pieces[w_end].hi);
            ++w_end;
        }
        const int a = lo / 8 * 8, end = static_cast<int>(round_up(hi, 8));
        buf.rows.clear();
        buf.row_end.clear();
        for (size_t i = w_begin; i < w_end;) {
            const int tq = pieces[i].tq;
            size_t j = i;
            while (j < w_end && pieces[j].tq == tq) ++j;
            for (int hh = 0; hh < r; ++hh) {
                buf.rows.push_back(tq * r + hh);
                buf.row_end.push_back(pieces[j - 1].hi);
            }
            i = j;
        }
        const int nrows = static_cast<int>(buf.rows.size());
        buf.q_rows.resize(nrows);
        buf.s_rows.resize(nrows);
        for (int i = 0; i < nrows; ++i) {
            buf.q_rows[i] = buf.q.data() + static_cast<size_t>(buf.rows[i]) * d;
            buf.s_rows[i] = buf.s.data() + static_cast<size_t>(buf.rows[i]) * kKeyChunk;
        }
        buf.s_from_a.resize(nrows);
        for (int i = 0; i < nrows; ++i) buf.s_from_a[i] = buf.s_rows[i] + a;
        qk_scores(buf.q_rows.data(), nrows, d, job.keys->window(g, window) + a, kKeyChunk, end - a, buf.s_from_a.data());
        // Mask everything in [a, end) outside the row's pieces, then one softmax step per row.
        size_t piece = w_begin;
        for (int i = 0; i < nrows; ++i) {
            const int row = buf.rows[i], tq = row / r;
            while (pieces[piece].tq != tq) ++piece;
            size_t first = piece, last = piece;
            while (last < w_end && pieces[last].tq == tq) ++last;
            float* s = buf.s_rows[i];
            int pos = a;
            for (size_t p = first; p < last; ++p) {
                std::fill(s + pos, s + pieces[p].lo, kNegInf);
                pos = pieces[p].hi;
            }
            std::fill(s + pos, s + end, kNegInf);
            SoftmaxStep step = softmax_step(s, a, end, buf.m[row], buf.l[row]);
            if (step.empty) continue;
            scale_row(buf.acc.data() + static_cast<size_t>(row) * d, d, step.alpha);
            if (job.mass) {
                // Block sums are kept relative to the running max at the time they
                // were last touched; finalization brings them all to the final max.
                auto add_mass = [&](int b, float seg) {
                    float* ref = buf.mass_ref.data() + static_cast<size_t>(row) * nb + b;
                    float* val = mass_row(row) + b;
                    float carry = *ref == kNegInf ? 0.0f : *val * exp2_scalar(*ref - buf.m[row]);
                    *val = carry + seg;
                    *ref = buf.m[row];
                };
                // A step inside one block (always so when B is a multiple of the
                // window) adds its whole sum there: masked probabilities are zeros.
                const int first_block = (ws + pieces[first].lo) / job.block;
                if (first_block == (ws + pieces[last - 1].hi - 1) / job.block) {
                    add_mass(first_block, step.sum);
                    continue;
                }
                for (size_t p = first; p < last; ++p)
                    for (int j0 = pieces[p].lo, j1; j0 < pieces[p].hi; j0 = j1) {
                        const int b = (ws + j0) / job.block;
                        j1 = std::min(pieces[p].hi, (b + 1) * job.block - ws);
                        float seg = 0.0f;
                        for (int j = j0; j < j1; ++j) seg += s[j];
                        add_mass(b, seg);
                    }
            }
        }
        if (job.out) {
            buf.p_rows.resize(nrows);
            buf.acc_rows.resize(nrows);
            for (int i = 0; i < nrows; ++i) {
                buf.p_rows[i] = buf.s_rows[i] + a;
                buf.acc_rows[i] = buf.acc.data() + static_cast<size_t>(buf.rows[i]) * d;
                buf.row_end[i] -= a;
            }
            const float* v = job.values + (static_cast<size_t>(g) * shape.n_tokens + ws + a) * d;
            pv_accumulate(buf.p_rows.data(), buf.row_end.data(), nrows, v, vstride, d, buf.acc_rows.data());
        }
        w_begin = w_end;
    }

    for (int row = 0; row < rows; ++row) {
        const float l = buf.l[row];
        if (job.out) {
            int t = t0 + row / r, h = g * r + row % r;
            float* o = job.out + (static_cast<size_t>(t) * hq + h) * d;
            const float* acc = buf.acc.data() + static_cast<size_t>(row) * d;
            // A row that saw no key (an empty selection) outputs zeros.
            const float inv = l > 0 ? 1.0f / l : 0.0f;
            for (int c = 0; c < d; ++c) o[c] = acc[c] * inv;
        }
        if (job.mass && l > 0) {
            float* val = mass_row(row);
            const float* ref = buf.mass_ref.data() + static_cast<size_t>(row) * nb;
            for (int b = 0; b < nb; ++b)
                if (ref[b] != kNegInf) val[b] = val[b] * exp2_scalar(ref[b] - buf.m[row]) / l;
        }
    }
}

struct Tile {
    int g, t0, t1;
};

// Tiles never straddle a key window, so every query of a dense tile walks the
// same windows. Returned most expensive (latest) first for load balance.
std::vector<Tile> make_tiles(int n_tokens, int groups, int rows_per_query, int align = kKeyChunk) {
    const int per_tile = std::max(1, std::min(kTileRows / std::max(1, rows_per_query), 64));
    std::vector<Tile> tiles;
    for (int b0 = 0; b0 < n_tokens; b0 += align) {
        int b1 = std::min(n_tokens, b0 + align);
        for (int t0 = b0; t0 < b1; t0 += per_tile)
            for (int g = 0; g < groups; ++g) tiles.push_back({g, t0, std::min(b1, t0 + per_tile)});
    }
    std::reverse(tiles.begin(), tiles.end());
    return tiles;
}

float attention_q_scale(int head_dim) {
    return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)) * 1.4426950408889634);
}

TransposedKeys transpose_attention_keys(const QKV& qkv, int threads) {
    const AttentionShape& s = qkv.shape;
    return transpose_keys(qkv.k, s.n_tokens, s.n_kv_heads, s.head_dim, threads);
}

void run_dense(const QKV& qkv, int block, float* out, BlockMass* mass, int threads) {
    const AttentionShape& s = qkv.shape;
    TransposedKeys keys = transpose_attention_keys(qkv, threads);
    std::vector<float> values;
    if (out) values = values_by_group(qkv.v, s.n_tokens, s.n_kv_heads, s.head_dim, threads);
    AttentionJob job{&qkv, &keys, values.data(), block, attention_q_scale(s.head_dim), out, mass};
    std::vector<Tile> tiles = make_tiles(s.n_tokens, s.n_kv_heads, s.group_size());
    parallel_for_dynamic(static_cast<long>(tiles.size()), threads, [&](long i) {
        thread_local TilePlan plan;
        const Tile& tile = tiles[i];
        plan.pieces.clear();
        for (int t = tile.t0; t < tile.t1; ++t) add_key_range(plan, t - tile.t0, 0, t + 1);
        finish_plan(plan);
        attend_tile(job, tile.g, tile.t0, tile.t1, plan);
    });
}

// ---------------------------------------------------------------------------
// Index branch.

uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

float random_block_score(uint64_t seed, int t, int g, int b) {
    uint64_t h = mix64(seed);
    h = mix64(h ^ static_cast<uint32_t>(t));
    h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(g)) << 32 | static_cast<uint32_t>(b)));
    return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // 24 bits: exact, < 1
}

void check_index(const IndexInputs& index, bool need_arrays) {
    require(index.n_tokens >= 0, "index n_tokens must be >= 0");
    require(index.n_groups >= 1, "index n_groups must be >= 1");
    require(index.dim >= 1, "index dim must be >= 1");
    require(index.n_key_heads == index.n_groups || index.n_key_heads == 1,
            "index n_key_heads must be n_groups or 1, got " + std::to_string(index.n_key_heads));
    if (!need_arrays) return;
    const size_t n = static_cast<size_t>(index.n_tokens) * index.dim;
    require(index.q.size() == n * index.n_groups, "index q has " + std::to_string(index.q.size()) + " floats, expected " +
                                                      std::to_string(n * index.n_groups));
    require(index.k.size() == n * index.n_key_heads, "index k has " + std::to_string(index.k.size()) +
                                                         " floats, expected " + std::to_string(n * index.n_key_heads));
}

// max / mean pooling of explicit token scores, streamed per key chunk.
void pool_scores(const IndexInputs& index, int block, Scorer scorer, BlockScores& out, int threads) {
    const int N = index.n_tokens, G = index.n_groups, nk = index.n_key_heads, dim = index.dim, nb = out.n_blocks;
    TransposedKeys keys = transpose_keys(index.k.data(), N, nk, dim, threads);
    const int served = nk == 1 ? G : 1;  // groups scored against each key head
    std::vector<Tile> tiles = make_tiles(N, nk, served, block);
    parallel_for_dynamic(static_cast<long>(tiles.size()), threads, [&](long item) {
        const Tile& tile = tiles[item];
        const int kh = tile.g, t0 = tile.t0, t1 = tile.t1;
        const int rows = (t1 - t0) * served;
        thread_local std::vector<float> s, pooled;
        thread_local std::vector<const float*> q_rows;
        thread_local std::vector<float*> s_rows;
        s.resize(static_cast<size_t>(rows) * kKeyChunk);
        pooled.resize(rows);
        q_rows.resize(rows);
        s_rows.resize(rows);
        auto group_of = [&](int row) { return served == 1 ? kh : row % served; };
        for (int row = 0; row < rows; ++row) {
            int t = t0 + row / served;
            q_rows[row] = index.q.data() + (static_cast<size_t>(t) * G + group_of(row)) * dim;
            s_rows[row] = s.data() + static_cast<size_t>(row) * kKeyChunk;
        }
        const int local = t0 / block;
        for (int b = 0; b <= local; ++b) {
            const int b_begin = b * block, b_end = std::min(N, b_begin + block);
            std::fill(pooled.begin(), pooled.end(), scorer == Scorer::max ? kNegInf : 0.0f);
            // Chunks end at block and at key-window boundaries (the transposed layout's panels).
            for (int c0 = b_begin, c1; c0 < b_end; c0 = c1) {
                c1 = std::min(b_end, (c0 / kKeyChunk + 1) * kKeyChunk);
                // Rows are in ascending query order; later queries see more keys.
                int first_row = 0;
                while (first_row < rows && t0 + first_row / served < c0) ++first_row;
                if (first_row == rows) break;
                const int widest = std::min(c1, t1) - c0;
                qk_scores(q_rows.data() + first_row, rows - first_row, dim, keys.window(kh, c0 / kKeyChunk) + c0 % kKeyChunk, kKeyChunk, widest,
                          s_rows.data() + first_row);
                for (int row = first_row; row < rows; ++row) {
                    const int n = std::min(c1, t0 + row / served + 1) - c0;
                    const float* sr = s_rows[row];
                    float acc = pooled[row];
                    if (scorer == Scorer::max)
                        for (int j = 0; j < n; ++j) acc = std::max(acc, sr[j] * index.scale);
                    else
                        for (int j = 0; j < n; ++j) acc += sr[j] * index.scale;
                    pooled[row] = acc;
                }
            }
            for (int row = 0; row < rows; ++row) {
                const int t = t0 + row / served;
                float v = pooled[row];
                if (scorer == Scorer::mean) v /= static_cast<float>(std::min(b_end, t + 1) - b_begin);
                out.values[(static_cast<size_t>(t) * G + group_of(row)) * nb + b] = v;
            }
        }
    });
}

// Quest: an upper bound of q.k over the block from per-channel key min/max.
void quest_scores(const IndexInputs& index, int block, BlockScores& out, int threads) {
    const int N = index.n_tokens, G = index.n_groups, nk = index.n_key_heads, dim = index.dim, nb = out.n_blocks;
    // Full-block bounds [kh][b][2][dim] (min then max); partial blocks are only
    // ever a query's local block and get a running bound below.
    std::vector<float> bounds(static_cast<size_t>(nk) * nb * 2 * dim);
    auto bound = [&](int kh, int b) { return bounds.data() + (static_cast<size_t>(kh) * nb + b) * 2 * dim; };
    auto key = [&](int j, int kh) { return index.k.data() + (static_cast<size_t>(j) * nk + kh) * dim; };
    parallel_for(static_cast<long>(nk) * nb, threads, [&](long begin, long end) {
        for (long item = begin; item < end; ++item) {
            int kh = static_cast<int>(item / nb), b = static_cast<int>(item % nb);
            float* lo = bound(kh, b);
            float* hi = lo + dim;
            std::fill(lo, lo + dim, std::numeric_limits<float>::infinity());
            std::fill(hi, hi + dim, kNegInf);
            for (int j = b * block; j < std::min(N, (b + 1) * block); ++j)
                for (int c = 0; c < dim; ++c) {
                    lo[c] = std::min(lo[c], key(j, kh)[c]);
                    hi[c] = std::max(hi[c], key(j, kh)[c]);
                }
        }
    });
    auto upper = [&](const float* q, const float* lo, const float* hi) {
        float sum = 0.0f;
        for (int c = 0; c < dim; ++c) sum += std::max(q[c] * lo[c], q[c] * hi[c]);
        return sum * index.scale;
    };
    parallel_for_dynamic(static_cast<long>(nb) * nk, threads, [&](long item) {
        const int local = nb - 1 - static_cast<int>(item / nk), kh = static_cast<int>(item % nk);
        std::vector<float> lo(dim, std::numeric_limits<float>::infinity()), hi(dim, kNegInf);
        for (int t = local * block; t < std::min(N, (local + 1) * block); ++t) {
            for (int c = 0; c < dim; ++c) {
                lo[c] = std::min(lo[c], key(t, kh)[c]);
                hi[c] = std::max(hi[c], key(t, kh)[c]);
            }
            for (int g = 0; g < G; ++g) {
                if (nk != 1 && g != kh) continue;
                const float* q = index.q.data() + (static_cast<size_t>(t) * G + g) * dim;
                float* row = out.values.data() + (static_cast<size_t>(t) * G + g) * nb;
                for (int b = 0; b < local; ++b) row[b] = upper(q, bound(kh, b), bound(kh, b) + dim);
                row[local] = upper(q, lo.data(), hi.data());
            }
        }
    });
}

float ranked(float s) { return std::isnan(s) ? kNegInf : s; }

}  // namespace

IndexInputs free_index_inputs(const QKV& qkv) {
    check_shape(qkv);
    const AttentionShape& s = qkv.shape;
    const int N = s.n_tokens, G = s.n_kv_heads, r = s.group_size(), d = s.head_dim;
    IndexInputs index;
    index.n_tokens = N;
    index.n_groups = G;
    index.n_key_heads = G;
    index.dim = d;
    index.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    index.q.assign(static_cast<size_t>(N) * G * d, 0.0f);
    index.k.assign(qkv.k, qkv.k + static_cast<size_t>(N) * G * d);
    for (int t = 0; t < N; ++t)
        for (int g = 0; g < G; ++g) {
            float* dst = index.q.data() + (static_cast<size_t>(t) * G + g) * d;
            for (int hh = 0; hh < r; ++hh) {
                const float* src = qkv.q + (static_cast<size_t>(t) * s.n_heads + g * r + hh) * d;
                for (int c = 0; c < d; ++c) dst[c] += src[c];
            }
            for (int c = 0; c < d; ++c) dst[c] /= static_cast<float>(r);
        }
    return index;
}

BlockScores score_blocks(const IndexInputs& index, int block, Scorer scorer, uint64_t seed, int threads) {
    check_block(block);
    check_index(index, scorer != Scorer::random);
    BlockScores out;
    out.n_tokens = index.n_tokens;
    out.n_groups = index.n_groups;
    out.n_blocks = (index.n_tokens + block - 1) / block;
    out.values.assign(static_cast<size_t>(out.n_tokens) * out.n_groups * out.n_blocks, kNegInf);
    if (index.n_tokens == 0) return out;
    switch (scorer) {
        case Scorer::max:
        case Scorer::mean: pool_scores(index, block, scorer, out, threads); break;
        case Scorer::quest: quest_scores(index, block, out, threads); break;
        case Scorer::random:
            parallel_for(out.n_tokens, threads, [&](long begin, long end) {
                for (long t = begin; t < end; ++t)
                    for (int g = 0; g < out.n_groups; ++g)
                        for (int b = 0; b <= static_cast<int>(t) / block; ++b)
                            out.values[(static_cast<size_t>(t) * out.n_groups + g) * out.n_blocks + b] =
                                random_block_score(seed, static_cast<int>(t), g, b);
            });
            break;
    }
    return out;
}

Selection select_blocks(const BlockScores& scores, int k, int sink, int block) {
    require(k >= 1, "k must be >= 1, got " + std::to_string(k));
    check_block(block);
    require(sink == 0 || sink == 1, "sink must be 0 or 1, got " + std::to_string(sink));
    require(scores.n_blocks == (scores.n_tokens + block - 1) / block,
            "block scores have " + std::to_string(scores.n_blocks) + " blocks, expected " +
                std::to_string((scores.n_tokens + block - 1) / block) + " for block " + std::to_string(block));
    require(scores.values.size() == static_cast<size_t>(scores.n_tokens) * scores.n_groups * scores.n_blocks,
            "block scores array does not match its shape");
    Selection sel;
    sel.n_tokens = scores.n_tokens;
    sel.n_groups = scores.n_groups;
    sel.slots = std::max(k, (sink && scores.n_blocks > 1) ? 2 : 1);
    sel.blocks.assign(static_cast<size_t>(sel.n_tokens) * sel.n_groups * sel.slots, -1);
    std::vector<int> best;  // kept free blocks, best first
    auto better = [&](const float* s, int a, int b) {
        float sa = ranked(s[a]), sb = ranked(s[b]);
        return sa > sb || (sa == sb && a < b);
    };
    for (int t = 0; t < sel.n_tokens; ++t) {
        const int local = t / block, visible = local + 1;
        const int forced = forced_block_count(local, sink);
        for (int g = 0; g < sel.n_groups; ++g) {
            int32_t* out = sel.row(t, g);
            if (visible <= k) {
                for (int b = 0; b < visible; ++b) out[b] = b;
                continue;
            }
            const float* s = scores.row(t, g);
            const int free_slots = std::max(0, k - forced);
            best.clear();
            // Bounded insertion: keeps the `free_slots` best in order; most
            // candidates lose to the current worst with one comparison.
            for (int b = (forced == 2 ? 1 : 0); b < local && free_slots > 0; ++b) {
                if (static_cast<int>(best.size()) == free_slots && !better(s, b, best.back())) continue;
                if (static_cast<int>(best.size()) == free_slots) best.pop_back();
                auto at = std::upper_bound(best.begin(), best.end(), b, [&](int x, int y) { return better(s, x, y); });
                best.insert(at, b);
            }
            if (forced == 2) best.push_back(0);
            best.push_back(local);
            std::sort(best.begin(), best.end());
            std::copy(best.begin(), best.end(), out);
        }
    }
    return sel;
}

void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out, int threads) {
    check_shape(qkv);
    check_block(block);
    const AttentionShape& s = qkv.shape;
    require(selection.n_tokens == s.n_tokens && selection.n_groups == s.n_kv_heads,
            "selection is for " + std::to_string(selection.n_tokens) + " tokens x " +
                std::to_string(selection.n_groups) + " groups, attention has " + std::to_string(s.n_tokens) + " x " +
                std::to_string(s.n_kv_heads));
    require(selection.slots >= 0 &&
                selection.blocks.size() == static_cast<size_t>(selection.n_tokens) * selection.n_groups * selection.slots,
            "selection array does not match its shape");
    const int nb = s.n_blocks(block);
    for (int32_t b : selection.blocks)
        require(b >= -1 && b < nb, "selection holds block id " + std::to_string(b) + ", valid ids are -1 .. " +
                                       std::to_string(nb - 1));
    if (s.n_tokens == 0) return;
    TransposedKeys keys = transpose_attention_keys(qkv, threads);
    std::vector<float> values = values_by_group(qkv.v, s.n_tokens, s.n_kv_heads, s.head_dim, threads);
    AttentionJob job{&qkv, &keys, values.data(), block, attention_q_scale(s.head_dim), out, nullptr};
    std::vector<Tile> tiles = make_tiles(s.n_tokens, s.n_kv_heads, s.group_size());
    parallel_for_dynamic(static_cast<long>(tiles.size()), threads, [&](long i) {
        thread_local TilePlan plan;
        const Tile& tile = tiles[i];
        plan.pieces.clear();
        for (int t = tile.t0; t < tile.t1; ++t) {
            const int32_t* row = selection.row(t, tile.g);
            for (int slot = 0; slot < selection.slots; ++slot) {
                const int b = row[slot];
                // Keys after t are masked; a block after the local one adds nothing.
                if (b >= 0) add_key_range(plan, t - tile.t0, b * block, std::min((b + 1) * block, t + 1));
            }
        }
        finish_plan(plan);
        attend_tile(job, tile.g, tile.t0, tile.t1, plan);
    });
}

void dense_attention(const QKV& qkv, float* out, int threads) {
    check_shape(qkv);
    if (qkv.shape.n_tokens == 0) return;
    run_dense(qkv, 1, out, nullptr, threads);
}

BlockMass dense_block_mass(const QKV& qkv, int block, int threads) {
    check_shape(qkv);
    check_block(block);
    BlockMass mass;
    mass.n_tokens = qkv.shape.n_tokens;
    mass.n_heads = qkv.shape.n_heads;
    mass.n_blocks = qkv.shape.n_blocks(block);
    mass.values.assign(static_cast<size_t>(mass.n_tokens) * mass.n_heads * mass.n_blocks, 0.0f);
    if (mass.n_tokens == 0) return mass;
    run_dense(qkv, block, nullptr, &mass, threads);
    return mass;
}

std::vector<float> attention_recall(const BlockMass& mass, const Selection& selection, int group_size) {
    require(group_size >= 1, "group_size must be >= 1");
    require(mass.n_tokens == selection.n_tokens && mass.n_heads == selection.n_groups * group_size,
            "mass [" + std::to_string(mass.n_tokens) + " x " + std::to_string(mass.n_heads) +
                " heads] does not match selection [" + std::to_string(selection.n_tokens) + " x " +
                std::to_string(selection.n_groups) + " groups x " + std::to_string(group_size) + "]");
    std::vector<float> recall(static_cast<size_t>(mass.n_tokens) * mass.n_heads, 0.0f);
    for (int t = 0; t < mass.n_tokens; ++t)
        for (int h = 0; h < mass.n_heads; ++h) {
            const int32_t* sel = selection.row(t, h / group_size);
            const float* m = mass.row(t, h);
            double sum = 0;
            for (int i = 0; i < selection.slots; ++i) {
                int b = sel[i];
                if (b < 0 || b >= mass.n_blocks) continue;
                if (std::find(sel, sel + i, b) != sel + i) continue;  // a repeated id counts once
                sum += m[b];
            }
            recall[static_cast<size_t>(t) * mass.n_heads + h] = static_cast<float>(sum);
        }
    return recall;
}

double relative_error(const float* a, const float* b, size_t n) {
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = static_cast<double>(a[i]) - b[i];
        diff += d * d;
        ref += static_cast<double>(b[i]) * b[i];
    }
    if (diff == 0) return 0.0;
    return std::sqrt(diff) / std::sqrt(ref);  // inf when b is zero and a is not
}

double quantile(std::vector<float> v, double q) {
    // NaNs carry no order: they are dropped rather than poisoning the sort.
    v.erase(std::remove_if(v.begin(), v.end(), [](float x) { return std::isnan(x); }), v.end());
    if (v.empty() || std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
    std::sort(v.begin(), v.end());
    double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, v.size() - 1);
    double frac = pos - static_cast<double>(lo);
    return v[lo] + (static_cast<double>(v[hi]) - v[lo]) * frac;
}

MsaLayerOutput msa_attention(const QKV& qkv, const IndexInputs& index, const MsaConfig& config, float* out, int threads,
                             bool keep_scores) {
    check_shape(qkv);
    require(config.k >= 1, "k must be >= 1, got " + std::to_string(config.k));
    check_block(config.block);
    require(index.n_tokens == qkv.shape.n_tokens && index.n_groups == qkv.shape.n_kv_heads,
            "index inputs are for " + std::to_string(index.n_tokens) + " tokens x " + std::to_string(index.n_groups) +
                " groups, attention has " + std::to_string(qkv.shape.n_tokens) + " x " +
                std::to_string(qkv.shape.n_kv_heads));
    MsaLayerOutput result;
    BlockScores scores = score_blocks(index, config.block, config.scorer, config.seed, threads);
    result.selection = select_blocks(scores, config.k, config.sink, config.block);
    sparse_attention(qkv, result.selection, config.block, out, threads);
    if (keep_scores) result.scores = std::move(scores);
    return result;
}

}  // namespace msa
