#include "core/forward.h"
#include "core/rope.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/errors.h"
#include "core/gemm.h"
#include "core/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MSA_FORWARD_AVX2 1
#else
#define MSA_FORWARD_AVX2 0
#endif

namespace msa {

namespace {

void check_matrix(const Matrix& m, int rows, int cols, const std::string& name) {
    if (m.rows != rows || m.cols != cols || m.data.size() != static_cast<size_t>(rows) * cols)
        throw InputError("model tensor " + name + " is " + std::to_string(m.rows) + "x" + std::to_string(m.cols) +
                         ", expected " + std::to_string(rows) + "x" + std::to_string(cols));
}

void check_vector(const std::vector<float>& v, size_t n, const std::string& name) {
    if (v.size() != n)
        throw InputError("model tensor " + name + " has " + std::to_string(v.size()) + " values, expected " +
                         std::to_string(n));
}


// ---------------------------------------------------------------------------
// exp for SiLU and the LM head's softmax. Both run it on every element of a
// large matrix (N x 1536 per layer, N x 49152 for the vocabulary): at 2K
// tokens that is ~200M calls, which scalar std::exp (~5-10 ns each) would turn
// into 1-2 s next to a ~4 s GEMM budget, so it is vectorized.
// Range reduction x = n ln2 + r, |r| <= ln2/2, then the Taylor series of e^r
// to degree 7 (truncation error r^8/8! < 1.2e-8 relative, below float's
// 6e-8 ulp), then scaling by 2^n through the exponent bits.
#if MSA_FORWARD_AVX2
inline __m256 exp_avx2(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-86.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // ln2 split in two so n * ln2_hi is exact for |n| < 2^10.
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}
#endif

// sum_i exp(v[i] - shift)
double sum_exp_shifted(const float* v, int n, float shift) {
    int i = 0;
    double total = 0;
#if MSA_FORWARD_AVX2
    __m256 acc = _mm256_setzero_ps();
    const __m256 s = _mm256_set1_ps(shift);
    for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(v + i), s)));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float l : lanes) total += l;
#endif
    for (; i < n; ++i) total += std::exp(static_cast<double>(v[i]) - shift);
    return total;
}

// gate[i] <- silu(gate[i]) * up[i]
void swiglu_inplace(float* gate, const float* up, int n) {
    int i = 0;
#if MSA_FORWARD_AVX2
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
#endif
    for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// y = x / sqrt(mean(x^2) + eps) * w. The mean of squares is summed in double:
// it is 1/hidden of the row's work and keeps the scale exact to float rounding.
void rms_norm(const float* x, const float* w, float eps, int n, float* y) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; ++i) y[i] = x[i] * inv * w[i];
}

// Rotates the first 2 * table.half floats of v in place for position pos.
inline void apply_rope(float* v, const RopeTable& table, int pos) {
    const int h = table.half;
    const float* cs = table.cos.data() + static_cast<size_t>(pos) * h;
    const float* sn = table.sin.data() + static_cast<size_t>(pos) * h;
    for (int i = 0; i < h; ++i) {
        const float a = v[i], b = v[i + h];
        v[i] = a * cs[i] - b * sn[i];
        v[i + h] = b * cs[i] + a * sn[i];
    }
}

// Trained index branch: q_idx = RMSNorm(W_q x) per group (G heads of dI),
// k_idx = RMSNorm(W_k x) (one head shared by the groups), then partial RoPE.
// Partial RoPE choice: the first dI/2 dims rotate (rotate_half within that
// span, frequencies theta^(-2i/(dI/2)), same theta and scaling as the main
// heads); the other half carries position-free content. This is the layout
// of MiniMax's partial rotary (rotary_dim = head_dim / 2, leading dims).
struct IndexBranch {
    int groups = 0;
    int dim = 0;
    RopeTable rope;
};

IndexBranch make_index_branch(const Model& model, int n_tokens) {
    const ModelConfig& c = model.config;
    IndexBranch b;
    b.groups = c.n_kv_heads;
    const LayerWeights& w0 = model.layers[0];
    b.dim = w0.index_wq.rows / b.groups;  // shapes checked by validate_forward_inputs
    b.rope = make_rope_table(c, b.dim / 2, n_tokens);
    return b;
}

IndexInputs run_index_branch(const IndexBranch& b, const LayerWeights& w, const float* xn, int n, int hidden,
                             float eps, int threads) {
    const int width = (b.groups + 1) * b.dim;
    std::vector<float> proj(static_cast<size_t>(n) * width);
    PackedWeights packed = pack_weights({&w.index_wq, &w.index_wk}, {}, threads);
    GemmOutput o;
    o.y = proj.data();
    o.ldy = width;
    gemm(xn, n, hidden, packed, o, threads);
    IndexInputs in;
    in.n_tokens = n;
    in.n_groups = b.groups;
    in.n_key_heads = 1;
    in.dim = b.dim;
    in.scale = 1.0f / std::sqrt(static_cast<float>(b.dim));
    in.q.resize(static_cast<size_t>(n) * b.groups * b.dim);
    in.k.resize(static_cast<size_t>(n) * b.dim);
    const bool per_head_norm = w.index_q_norm.size() == static_cast<size_t>(b.groups * b.dim);
    parallel_for(n, threads, [&](long t0, long t1) {
        for (long t = t0; t < t1; ++t) {
            const float* row = proj.data() + t * width;
            for (int g = 0; g < b.groups; ++g) {
                float* q = in.q.data() + (t * b.groups + g) * b.dim;
                rms_norm(row + g * b.dim, w.index_q_norm.data() + (per_head_norm ? g * b.dim : 0), eps, b.dim, q);
                apply_rope(q, b.rope, static_cast<int>(t));
            }
            float* k = in.k.data() + t * b.dim;
            rms_norm(row + b.groups * b.dim, w.index_k_norm.data(), eps, b.dim, k);
            apply_rope(k, b.rope, static_cast<int>(t));
        }
    }, 16);
    return in;
}

// ---------------------------------------------------------------------------
// LM head: logits are produced tile by tile ([kHeadRows x kHeadCols], 8 MB,
// L3-resident) and folded into per-position running softmax statistics, so the
// [N, vocab] matrix (1.6 GB at 8K tokens) never exists unless asked for.
constexpr int kHeadRows = 512;
constexpr int kHeadCols = 4096;  // multiple of kGemmPanel

struct RowStats {
    float max = -std::numeric_limits<float>::infinity();
    double sum = 0;  // sum of exp(logit - max)
    int argmax = 0;
    float target = std::numeric_limits<float>::quiet_NaN();
};

// Largest value of v (NaN ignored); -inf when there is none.
float max_of(const float* v, int n) {
    float m = -std::numeric_limits<float>::infinity();
    int i = 0;
#if MSA_FORWARD_AVX2
    // maxps returns its second operand when either is NaN, so NaN logits drop out.
    __m256 acc = _mm256_set1_ps(m);
    for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(_mm256_loadu_ps(v + i), acc);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float l : lanes) m = std::max(m, l);
#endif
    for (; i < n; ++i)
        if (v[i] > m) m = v[i];
    return m;
}

void fold_tile(RowStats& s, const float* logits, int width, int col0, int target) {
    // Vector max first, then the first index holding it (ties keep the lower
    // id): a scalar compare-and-branch argmax does not vectorize, and the LM
    // head scans N x 49152 logits.
    const float tmax = max_of(logits, width);
    if (!(tmax > -std::numeric_limits<float>::infinity())) return;  // all NaN / -inf
    const int targ = static_cast<int>(std::find(logits, logits + width, tmax) - logits);
    if (tmax > s.max) {
        s.sum = s.sum > 0 ? s.sum * std::exp(static_cast<double>(s.max) - tmax) : 0.0;
        s.max = tmax;
        s.argmax = col0 + targ;
    }
    s.sum += sum_exp_shifted(logits, width, s.max);
    if (target >= col0 && target < col0 + width) s.target = logits[target - col0];
}

ForwardResult run_forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options,
                          bool last_row_only) {
    validate_forward_inputs(model, tokens);
    const ModelConfig& c = model.config;
    const int n = static_cast<int>(tokens.size());
    const int D = c.hidden, Hq = c.n_heads, Hkv = c.n_kv_heads, d = c.head_dim, F = c.ffn;
    const int qd = Hq * d, kvd = Hkv * d, qkv_width = qd + 2 * kvd;
    const int threads = std::max(1, options.threads);
    const int L = c.n_layers;
    ForwardResult result;
    auto report = [&](double fraction, const std::string& stage) {
        if (options.progress && !options.progress(fraction, stage)) {
            result.cancelled = true;
            return false;
        }
        return true;
    };

    const RopeTable rope = make_rope_table(c, d, n);
    IndexBranch index_branch;
    const bool trained_index = model.has_index_weights();
    if (trained_index) index_branch = make_index_branch(model, n);

    std::vector<float> x(static_cast<size_t>(n) * D), xn(x.size());
    for (int t = 0; t < n; ++t)
        std::copy_n(model.token_embedding.row(tokens[t]), D, x.data() + static_cast<size_t>(t) * D);
    std::vector<float> qkv_rows(static_cast<size_t>(n) * qkv_width);
    std::vector<float> q(static_cast<size_t>(n) * qd), k(static_cast<size_t>(n) * kvd), v(k.size());
    std::vector<float> attn(static_cast<size_t>(n) * qd);
    std::vector<float> hidden(static_cast<size_t>(n) * 2 * F);  // [gate | up] per row

    QKV qkv;
    qkv.q = q.data();
    qkv.k = k.data();
    qkv.v = v.data();
    qkv.shape.n_tokens = n;
    qkv.shape.n_heads = Hq;
    qkv.shape.n_kv_heads = Hkv;
    qkv.shape.head_dim = d;

    auto norm_rows = [&](const std::vector<float>& weight) {
        parallel_for(n, threads, [&](long t0, long t1) {
            for (long t = t0; t < t1; ++t) rms_norm(x.data() + t * D, weight.data(), c.rms_eps, D, xn.data() + t * D);
        }, 64);
    };

    for (int l = 0; l < L; ++l) {
        if (!report(static_cast<double>(l) / (L + 1), "layer " + std::to_string(l + 1) + "/" + std::to_string(L)))
            return result;
        const LayerWeights& w = model.layers[l];

        // Attention block.
        norm_rows(w.attn_norm);
        {
            std::vector<const std::vector<float>*> biases;
            if (!w.bq.empty() || !w.bk.empty() || !w.bv.empty()) biases = {&w.bq, &w.bk, &w.bv};
            PackedWeights wqkv = pack_weights({&w.wq, &w.wk, &w.wv}, biases, threads);
            GemmOutput o;
            o.y = qkv_rows.data();
            o.ldy = qkv_width;
            gemm(xn.data(), n, D, wqkv, o, threads);
        }
        parallel_for(n, threads, [&](long t0, long t1) {
            for (long t = t0; t < t1; ++t) {
                const float* row = qkv_rows.data() + t * qkv_width;
                float* qt = q.data() + t * qd;
                float* kt = k.data() + t * kvd;
                std::copy_n(row, qd, qt);
                std::copy_n(row + qd, kvd, kt);
                std::copy_n(row + qd + kvd, kvd, v.data() + t * kvd);
                for (int h = 0; h < Hq; ++h) apply_rope(qt + h * d, rope, static_cast<int>(t));
                for (int h = 0; h < Hkv; ++h) apply_rope(kt + h * d, rope, static_cast<int>(t));
            }
        }, 64);
        if (options.attention) {
            if (trained_index) {
                IndexInputs idx = run_index_branch(index_branch, w, xn.data(), n, D, c.rms_eps, threads);
                options.attention(l, qkv, &idx, attn.data());
            } else {
                options.attention(l, qkv, nullptr, attn.data());
            }
        } else {
            dense_attention(qkv, attn.data(), threads);
        }
        {
            PackedWeights wo = pack_weights(w.wo, nullptr, threads);
            GemmOutput o;
            o.y = x.data();
            o.ldy = D;
            o.accumulate = true;  // residual
            gemm(attn.data(), n, qd, wo, o, threads);
        }

        // Feed-forward block.
        norm_rows(w.ffn_norm);
        {
            PackedWeights gate_up = pack_weights({&w.w_gate, &w.w_up}, {}, threads);
            GemmOutput o;
            o.y = hidden.data();
            o.ldy = 2 * F;
            gemm(xn.data(), n, D, gate_up, o, threads);
        }
        parallel_for(n, threads, [&](long t0, long t1) {
            for (long t = t0; t < t1; ++t) {
                float* row = hidden.data() + t * 2 * F;
                swiglu_inplace(row, row + F, F);
            }
        }, 64);
        {
            PackedWeights down = pack_weights(w.w_down, nullptr, threads);
            GemmOutput o;
            o.y = x.data();
            o.ldy = D;
            o.accumulate = true;  // residual
            gemm(hidden.data(), n, 2 * F, down, o, threads);
        }
    }
    if (!report(static_cast<double>(L) / (L + 1), "lm head")) return result;

    // Final norm and LM head.
    norm_rows(model.output_norm);
    const Matrix& head = model.lm_head();
    const int V = head.rows;
    const int first_row = last_row_only ? n - 1 : 0;
    const int rows_out = n - first_row;
    PackedWeights packed_head = pack_weights(head, nullptr, threads);
    std::vector<RowStats> stats(rows_out);
    if (options.keep_logits) result.logits.resize(static_cast<size_t>(rows_out) * V);
    const int tile_rows = std::min(kHeadRows, rows_out);
    std::vector<float> tile(static_cast<size_t>(tile_rows) * kHeadCols);
    for (int r0 = 0; r0 < rows_out; r0 += kHeadRows) {
        const int rows = std::min(kHeadRows, rows_out - r0);
        for (int c0 = 0; c0 < V; c0 += kHeadCols) {
            const int width = std::min(kHeadCols, V - c0);
            GemmOutput o;
            o.y = tile.data();
            o.ldy = kHeadCols;
            o.col_begin = c0;
            o.col_end = c0 + width;
            gemm(xn.data() + static_cast<size_t>(first_row + r0) * D, rows, D, packed_head, o, threads);
            parallel_for(rows, threads, [&](long i0, long i1) {
                for (long i = i0; i < i1; ++i) {
                    const int pos = first_row + r0 + static_cast<int>(i);
                    const int target = pos + 1 < n ? tokens[pos + 1] : -1;
                    const float* lg = tile.data() + i * kHeadCols;
                    fold_tile(stats[r0 + i], lg, width, c0, target);
                    if (options.keep_logits)
                        std::copy_n(lg, width, result.logits.data() + static_cast<size_t>(r0 + i) * V + c0);
                }
            }, 16);
        }
        if (!report((L + static_cast<double>(r0 + rows) / rows_out) / (L + 1), "lm head")) return result;
    }
    result.argmax.resize(rows_out);
    for (int i = 0; i < rows_out; ++i) result.argmax[i] = stats[i].argmax;
    if (!last_row_only) {
        result.nll.resize(n - 1);
        for (int t = 0; t + 1 < n; ++t) {
            const RowStats& s = stats[t];
            result.nll[t] = static_cast<float>(s.max + std::log(s.sum) - s.target);
        }
    }
    return result;
}

}  // namespace

void validate_forward_inputs(const Model& model, const std::vector<int>& tokens) {
    const ModelConfig& c = model.config;
    if (c.n_layers <= 0 || c.hidden <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 || c.ffn <= 0 ||
        c.n_heads % c.n_kv_heads != 0 || c.head_dim % 2 != 0)
        throw InputError("model config is not a usable transformer shape");
    if (static_cast<int>(model.layers.size()) != c.n_layers)
        throw InputError("model has " + std::to_string(model.layers.size()) + " layers, config says " +
                         std::to_string(c.n_layers));
    const int vocab = model.token_embedding.rows;
    check_matrix(model.token_embedding, vocab, c.hidden, "token_embd");
    check_matrix(model.lm_head(), model.lm_head().rows, c.hidden, "output");
    check_vector(model.output_norm, c.hidden, "output_norm");
    const int qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
    for (int l = 0; l < c.n_layers; ++l) {
        const LayerWeights& w = model.layers[l];
        const std::string p = "blk." + std::to_string(l) + ".";
        check_vector(w.attn_norm, c.hidden, p + "attn_norm");
        check_vector(w.ffn_norm, c.hidden, p + "ffn_norm");
        check_matrix(w.wq, qd, c.hidden, p + "attn_q");
        check_matrix(w.wk, kvd, c.hidden, p + "attn_k");
        check_matrix(w.wv, kvd, c.hidden, p + "attn_v");
        check_matrix(w.wo, c.hidden, qd, p + "attn_output");
        check_matrix(w.w_gate, c.ffn, c.hidden, p + "ffn_gate");
        check_matrix(w.w_up, c.ffn, c.hidden, p + "ffn_up");
        check_matrix(w.w_down, c.hidden, c.ffn, p + "ffn_down");
        if (!w.bq.empty()) check_vector(w.bq, qd, p + "attn_q.bias");
        if (!w.bk.empty()) check_vector(w.bk, kvd, p + "attn_k.bias");
        if (!w.bv.empty()) check_vector(w.bv, kvd, p + "attn_v.bias");
    }
    if (model.has_index_weights()) {
        const int groups = c.n_kv_heads;
        const int rows = model.layers[0].index_wq.rows;
        if (rows % groups != 0)
            throw InputError("index query weight has " + std::to_string(rows) + " rows, not a multiple of " +
                             std::to_string(groups) + " groups");
        const int dim = rows / groups;
        if (dim % 4 != 0) throw InputError("index head dim " + std::to_string(dim) + " is not a multiple of 4");
        for (int l = 0; l < c.n_layers; ++l) {
            const LayerWeights& w = model.layers[l];
            const std::string p = "blk." + std::to_string(l) + ".";
            check_matrix(w.index_wq, groups * dim, c.hidden, p + "index_q");
            check_matrix(w.index_wk, dim, c.hidden, p + "index_k");
            if (w.index_q_norm.size() != static_cast<size_t>(dim) &&
                w.index_q_norm.size() != static_cast<size_t>(groups * dim))
                throw InputError("model tensor " + p + "index_q_norm has " + std::to_string(w.index_q_norm.size()) +
                                 " values, expected " + std::to_string(dim));
            check_vector(w.index_k_norm, dim, p + "index_k_norm");
        }
    }
    if (tokens.empty()) throw InputError("no tokens to run");
    for (size_t t = 0; t < tokens.size(); ++t)
        if (tokens[t] < 0 || tokens[t] >= vocab)
            throw InputError("token id " + std::to_string(tokens[t]) + " at position " + std::to_string(t) +
                             " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
}


double ForwardResult::perplexity() const {
    if (nll.empty()) return std::numeric_limits<double>::quiet_NaN();
    double total = 0;
    for (float v : nll) total += v;
    return std::exp(total / nll.size());
}

ForwardResult forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options) {
    return run_forward(model, tokens, options, false);
}

std::vector<int> generate_greedy(const Model& model, const std::vector<int>& prompt, int max_new,
                                 const ForwardOptions& options, int stop_token) {
    std::vector<int> sequence = prompt;
    std::vector<int> generated;
    for (int step = 0; step < max_new; ++step) {
        ForwardOptions o = options;
        o.keep_logits = false;
        if (options.progress) {
            // One forward per new token: spread each over its share of the bar.
            o.progress = [&options, step, max_new](double f, const std::string& stage) {
                return options.progress((step + f) / max_new, "token " + std::to_string(step + 1) + ": " + stage);
            };
        }
        // Only the last position's logits are needed, so the LM head runs on one row.
        ForwardResult r = run_forward(model, sequence, o, true);
        if (r.cancelled) break;
        const int next = r.argmax.back();
        if (next == stop_token) break;
        generated.push_back(next);
        sequence.push_back(next);
    }
    return generated;
}

}  // namespace msa
