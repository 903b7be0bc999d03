// forward() against a plain double-precision transformer written out in this
// file, plus the properties the MSA engine relies on: the attention hook sees
// post-RoPE Q/K/V once per layer, RoPE makes q.k depend on position
// differences only, cancellation stops the run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/errors.h"
#include "core/forward.h"
#include "core/msa.h"

namespace {

using msa::Matrix;
using msa::Model;

Matrix random_matrix(int rows, int cols, float scale, std::mt19937& rng) {
    std::normal_distribution<float> g(0.0f, scale);
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.data.resize(static_cast<size_t>(rows) * cols);
    for (auto& v : m.data) v = g(rng);
    return m;
}

std::vector<float> norm_weight(int n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(0.8f, 1.2f);
    std::vector<float> v(n);
    for (auto& e : v) e = u(rng);
    return v;
}

std::vector<float> small_vector(int n, std::mt19937& rng) {
    std::normal_distribution<float> g(0.0f, 0.1f);
    std::vector<float> v(n);
    for (auto& e : v) e = g(rng);
    return v;
}

struct TinyShape {
    int layers = 2, hidden = 48, heads = 6, kv_heads = 2, head_dim = 8, ffn = 72, vocab = 97;
    bool bias = false;
    int index_dim = 0;  // > 0: trained index weights
};

Model make_model(const TinyShape& s, uint64_t seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    Model m;
    msa::ModelConfig& c = m.config;
    c.arch = s.bias ? "qwen2" : "llama";
    c.n_layers = s.layers;
    c.hidden = s.hidden;
    c.n_heads = s.heads;
    c.n_kv_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.ffn = s.ffn;
    c.vocab = s.vocab;
    c.context_length = 4096;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.qkv_bias = s.bias;
    c.tied_embeddings = false;
    const float in_scale = 1.0f / std::sqrt(static_cast<float>(s.hidden));
    m.token_embedding = random_matrix(s.vocab, s.hidden, 1.0f, rng);
    const int qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
    for (int l = 0; l < s.layers; ++l) {
        msa::LayerWeights w;
        w.attn_norm = norm_weight(s.hidden, rng);
        // Q/K larger than 1/sqrt(in) so the softmax is peaked, not near uniform:
        // a RoPE or masking mistake then moves the logits visibly.
        w.wq = random_matrix(qd, s.hidden, 3.0f * in_scale, rng);
        w.wk = random_matrix(kvd, s.hidden, 3.0f * in_scale, rng);
        w.wv = random_matrix(kvd, s.hidden, in_scale, rng);
        w.wo = random_matrix(s.hidden, qd, 1.0f / std::sqrt(static_cast<float>(qd)), rng);
        if (s.bias) {
            w.bq = small_vector(qd, rng);
            w.bk = small_vector(kvd, rng);
            w.bv = small_vector(kvd, rng);
        }
        w.ffn_norm = norm_weight(s.hidden, rng);
        w.w_gate = random_matrix(s.ffn, s.hidden, in_scale, rng);
        w.w_up = random_matrix(s.ffn, s.hidden, in_scale, rng);
        w.w_down = random_matrix(s.hidden, s.ffn, 1.0f / std::sqrt(static_cast<float>(s.ffn)), rng);
        if (s.index_dim > 0) {
            w.index_wq = random_matrix(s.kv_heads * s.index_dim, s.hidden, in_scale, rng);
            w.index_wk = random_matrix(s.index_dim, s.hidden, in_scale, rng);
            w.index_q_norm = norm_weight(s.index_dim, rng);
            w.index_k_norm = norm_weight(s.index_dim, rng);
        }
        m.layers.push_back(std::move(w));
    }
    m.output_norm = norm_weight(s.hidden, rng);
    m.output = random_matrix(s.vocab, s.hidden, in_scale, rng);
    return m;
}

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_int_distribution<int> u(0, vocab - 1);
    std::vector<int> t(n);
    for (auto& v : t) v = u(rng);
    return t;
}

// ---------------------------------------------------------------------------
// The reference: every step in double, in the order the formulas are written.
using Vec = std::vector<double>;

Vec matvec(const Matrix& w, const Vec& x, const std::vector<float>& bias) {
    Vec y(w.rows);
    for (int o = 0; o < w.rows; ++o) {
        double s = bias.empty() ? 0.0 : bias[o];
        for (int i = 0; i < w.cols; ++i) s += static_cast<double>(w.row(o)[i]) * x[i];
        y[o] = s;
    }
    return y;
}

Vec rmsnorm(const Vec& x, const std::vector<float>& w, double eps, size_t offset = 0, size_t n = 0) {
    if (n == 0) n = x.size();
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += x[offset + i] * x[offset + i];
    const double inv = 1.0 / std::sqrt(ss / n + eps);
    Vec y(n);
    for (size_t i = 0; i < n; ++i) y[i] = x[offset + i] * inv * w[i];
    return y;
}

double inv_freq(const msa::ModelConfig& c, int i, int dim) {
    double f = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / dim);
    const msa::RopeScaling& s = c.rope_scaling;
    if (s.type == "linear") return f / s.factor;
    if (s.type == "llama3") {
        const double wavelen = 2 * M_PI / f;
        const double low = s.original_context / s.low_freq_factor, high = s.original_context / s.high_freq_factor;
        if (wavelen < high) return f;
        if (wavelen > low) return f / s.factor;
        const double smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        return (1 - smooth) * f / s.factor + smooth * f;
    }
    return f;
}

// Rotate v[off .. off+dim) in the rotate_half convention: out = v*cos + rotate_half(v)*sin.
void rope(Vec& v, size_t off, int dim, int pos, const msa::ModelConfig& c) {
    Vec r(dim);
    for (int i = 0; i < dim; ++i) {
        const int f = i % (dim / 2);
        const double a = pos * inv_freq(c, f, dim);
        const double rotated = i < dim / 2 ? -v[off + i + dim / 2] : v[off + i - dim / 2];
        r[i] = v[off + i] * std::cos(a) + rotated * std::sin(a);
    }
    for (int i = 0; i < dim; ++i) v[off + i] = r[i];
}

struct Reference {
    std::vector<Vec> logits;        // [N][vocab]
    std::vector<Vec> layer0_q;      // [N][Hq*d] post-RoPE
    std::vector<Vec> layer0_index_q;  // [N][G*dI] when index weights exist
};

Reference reference_forward(const Model& m, const std::vector<int>& tokens) {
    const msa::ModelConfig& c = m.config;
    const int n = static_cast<int>(tokens.size()), d = c.head_dim, Hq = c.n_heads, Hkv = c.n_kv_heads;
    const int r = Hq / Hkv;
    Reference out;
    std::vector<Vec> x(n);
    for (int t = 0; t < n; ++t) x[t] = Vec(m.token_embedding.row(tokens[t]), m.token_embedding.row(tokens[t]) + c.hidden);
    for (int l = 0; l < c.n_layers; ++l) {
        const msa::LayerWeights& w = m.layers[l];
        std::vector<Vec> q(n), k(n), v(n);
        for (int t = 0; t < n; ++t) {
            Vec h = rmsnorm(x[t], w.attn_norm, c.rms_eps);
            q[t] = matvec(w.wq, h, w.bq);
            k[t] = matvec(w.wk, h, w.bk);
            v[t] = matvec(w.wv, h, w.bv);
            for (int hh = 0; hh < Hq; ++hh) rope(q[t], hh * d, d, t, c);
            for (int hh = 0; hh < Hkv; ++hh) rope(k[t], hh * d, d, t, c);
            if (l == 0 && !w.index_wq.empty()) {
                const int dI = w.index_wk.rows;
                Vec iq = matvec(w.index_wq, h, {});
                Vec normed;
                for (int g = 0; g < Hkv; ++g) {
                    Vec part = rmsnorm(iq, w.index_q_norm, c.rms_eps, g * dI, dI);
                    rope(part, 0, dI / 2, t, c);
                    normed.insert(normed.end(), part.begin(), part.end());
                }
                out.layer0_index_q.push_back(normed);
            }
        }
        if (l == 0) out.layer0_q = q;
        for (int t = 0; t < n; ++t) {
            Vec attn(Hq * d, 0.0);
            for (int hh = 0; hh < Hq; ++hh) {
                const int g = hh / r;
                Vec score(t + 1);
                double mx = -1e300;
                for (int j = 0; j <= t; ++j) {
                    double s = 0;
                    for (int i = 0; i < d; ++i) s += q[t][hh * d + i] * k[j][g * d + i];
                    score[j] = s / std::sqrt(static_cast<double>(d));
                    mx = std::max(mx, score[j]);
                }
                double z = 0;
                for (double& s : score) z += (s = std::exp(s - mx));
                for (int j = 0; j <= t; ++j)
                    for (int i = 0; i < d; ++i) attn[hh * d + i] += score[j] / z * v[j][g * d + i];
            }
            Vec o = matvec(w.wo, attn, {});
            for (int i = 0; i < c.hidden; ++i) x[t][i] += o[i];
            Vec h = rmsnorm(x[t], w.ffn_norm, c.rms_eps);
            Vec gate = matvec(w.w_gate, h, {}), up = matvec(w.w_up, h, {});
            Vec act(c.ffn);
            for (int i = 0; i < c.ffn; ++i) act[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
            Vec down = matvec(w.w_down, act, {});
            for (int i = 0; i < c.hidden; ++i) x[t][i] += down[i];
        }
    }
    for (int t = 0; t < n; ++t) out.logits.push_back(matvec(m.lm_head(), rmsnorm(x[t], m.output_norm, c.rms_eps), {}));
    return out;
}

msa::ForwardResult run(const Model& m, const std::vector<int>& tokens, int threads = 2) {
    msa::ForwardOptions o;
    o.threads = threads;
    o.keep_logits = true;
    return msa::forward(m, tokens, o);
}

// Compares logits, nll and argmax with the reference; returns the max abs logit error.
double compare_with_reference(const Model& m, const std::vector<int>& tokens) {
    const msa::ForwardResult got = run(m, tokens);
    const Reference ref = reference_forward(m, tokens);
    const int n = static_cast<int>(tokens.size()), V = m.lm_head().rows;
    EXPECT_EQ(got.logits.size(), static_cast<size_t>(n) * V);
    EXPECT_EQ(got.nll.size(), static_cast<size_t>(n - 1));
    EXPECT_EQ(got.argmax.size(), static_cast<size_t>(n));
    double worst = 0, scale = 0;
    for (int t = 0; t < n; ++t) {
        int best = 0;
        double mx = -1e300, z = 0;
        for (int j = 0; j < V; ++j) {
            worst = std::max(worst, std::fabs(got.logits[static_cast<size_t>(t) * V + j] - ref.logits[t][j]));
            scale = std::max(scale, std::fabs(ref.logits[t][j]));
            if (ref.logits[t][j] > mx) mx = ref.logits[t][j], best = j;
        }
        for (int j = 0; j < V; ++j) z += std::exp(ref.logits[t][j] - mx);
        EXPECT_EQ(got.argmax[t], best) << "position " << t;
        if (t + 1 < n) {
            const double nll = mx + std::log(z) - ref.logits[t][tokens[t + 1]];
            EXPECT_NEAR(got.nll[t], nll, 1e-4 * std::max(1.0, nll)) << "position " << t;
        }
    }
    EXPECT_GT(scale, 0.5) << "degenerate test model: logits are all near zero";
    EXPECT_LT(worst / scale, 2e-5) << "max abs logit error " << worst << " at logit scale " << scale;
    return worst;
}

TEST(Forward, MatchesDoublePrecisionReference) {
    TinyShape s;
    Model m = make_model(s, 11);
    compare_with_reference(m, random_tokens(45, s.vocab, 3));
}

TEST(Forward, MatchesReferenceWithQkvBias) {
    TinyShape s;
    s.bias = true;
    s.heads = 4;
    s.kv_heads = 4;  // plain multi-head attention (group size 1)
    Model m = make_model(s, 12);
    compare_with_reference(m, random_tokens(30, s.vocab, 4));
}

TEST(Forward, MatchesReferenceWithRopeScaling) {
    TinyShape s;
    s.head_dim = 16;
    Model m = make_model(s, 13);
    m.config.rope_scaling.type = "linear";
    m.config.rope_scaling.factor = 4.0f;
    compare_with_reference(m, random_tokens(40, s.vocab, 5));
    // llama3: with original_context 64 and theta 1e4, the 8 frequencies of a
    // 16-dim head fall in all three bands (kept, blended, divided).
    m.config.rope_scaling = msa::RopeScaling{};
    m.config.rope_scaling.type = "llama3";
    m.config.rope_scaling.factor = 8.0f;
    m.config.rope_scaling.low_freq_factor = 1.0f;
    m.config.rope_scaling.high_freq_factor = 4.0f;
    m.config.rope_scaling.original_context = 64;
    compare_with_reference(m, random_tokens(40, s.vocab, 6));
    m.config.rope_scaling.type = "yarn";
    EXPECT_THROW(run(m, {1, 2, 3}), msa::InputError);
}

TEST(Forward, LargerThanOneGemmBlockAndOddSizes) {
    // Rows past one 96-row GEMM block and an LM head past one 4096-column tile,
    // with a vocabulary that is not a multiple of 16.
    TinyShape s;
    s.layers = 1;
    s.vocab = 4133;
    s.ffn = 50;
    Model m = make_model(s, 14);
    compare_with_reference(m, random_tokens(101, s.vocab, 7));
}

TEST(Forward, HookSeesPostRopeQkvOncePerLayerAndDenseHookMatches) {
    TinyShape s;
    Model m = make_model(s, 21);
    const std::vector<int> tokens = random_tokens(37, s.vocab, 8);
    const msa::ForwardResult plain = run(m, tokens);
    const Reference ref = reference_forward(m, tokens);

    std::vector<int> layers_seen;
    msa::ForwardOptions o;
    o.threads = 2;
    o.keep_logits = true;
    o.attention = [&](int layer, const msa::QKV& qkv, const msa::IndexInputs* index, float* out) {
        layers_seen.push_back(layer);
        EXPECT_EQ(index, nullptr) << "no index weights: the hook must get nullptr";
        EXPECT_EQ(qkv.shape.n_tokens, 37);
        EXPECT_EQ(qkv.shape.n_heads, s.heads);
        EXPECT_EQ(qkv.shape.n_kv_heads, s.kv_heads);
        EXPECT_EQ(qkv.shape.head_dim, s.head_dim);
        if (layer == 0) {
            double worst = 0;
            for (int t = 0; t < 37; ++t)
                for (int i = 0; i < s.heads * s.head_dim; ++i)
                    worst = std::max(worst, std::fabs(qkv.q[t * s.heads * s.head_dim + i] - ref.layer0_q[t][i]));
            EXPECT_LT(worst, 1e-4) << "layer-0 Q differs from the reference's post-RoPE Q";
        }
        msa::dense_attention(qkv, out, 2);
    };
    const msa::ForwardResult hooked = msa::forward(m, tokens, o);
    EXPECT_EQ(layers_seen, (std::vector<int>{0, 1}));
    EXPECT_EQ(hooked.logits, plain.logits) << "a hook running dense attention must reproduce the default path";
    EXPECT_EQ(hooked.argmax, plain.argmax);
}

TEST(Forward, HookOutputIsUsed) {
    // A hook that zeroes attention must change the logits (its output is not ignored).
    TinyShape s;
    Model m = make_model(s, 22);
    const std::vector<int> tokens = random_tokens(20, s.vocab, 9);
    const msa::ForwardResult plain = run(m, tokens);
    msa::ForwardOptions o;
    o.keep_logits = true;
    o.attention = [&](int, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        std::fill(out, out + static_cast<size_t>(qkv.shape.n_tokens) * qkv.shape.n_heads * qkv.shape.head_dim, 0.0f);
    };
    const msa::ForwardResult zeroed = msa::forward(m, tokens, o);
    EXPECT_NE(zeroed.logits, plain.logits);
}

TEST(Forward, RopeScoresDependOnPositionDifferenceOnly) {
    // One token repeated: pre-RoPE Q and K are the same at every position in
    // layer 0, so q_t . k_s after RoPE must be a function of t - s.
    TinyShape s;
    s.head_dim = 16;
    Model m = make_model(s, 31);
    const int n = 24, d = s.head_dim;
    const std::vector<int> tokens(n, 5);
    std::vector<float> q, k;
    msa::ForwardOptions o;
    o.attention = [&](int layer, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        if (layer == 0) {
            q.assign(qkv.q, qkv.q + static_cast<size_t>(n) * s.heads * d);
            k.assign(qkv.k, qkv.k + static_cast<size_t>(n) * s.kv_heads * d);
        }
        msa::dense_attention(qkv, out, 1);
    };
    msa::forward(m, tokens, o);
    ASSERT_EQ(q.size(), static_cast<size_t>(n) * s.heads * d);
    auto dot = [&](int t, int h, int j) {
        double r = 0;
        const int g = h / (s.heads / s.kv_heads);
        for (int i = 0; i < d; ++i) r += q[(t * s.heads + h) * d + i] * k[(j * s.kv_heads + g) * d + i];
        return r;
    };
    double varied = 0;
    for (int h = 0; h < s.heads; ++h)
        for (int delta = 0; delta < n; ++delta) {
            const double base = dot(delta, h, 0);
            for (int j = 1; j + delta < n; ++j) EXPECT_NEAR(dot(j + delta, h, j), base, 1e-4 * (1 + std::fabs(base)));
            varied = std::max(varied, std::fabs(base - dot(0, h, 0)));
        }
    EXPECT_GT(varied, 1e-2) << "scores do not change with distance: RoPE was not applied";
}

TEST(Forward, TrainedIndexInputsReachTheHook) {
    TinyShape s;
    s.index_dim = 16;
    Model m = make_model(s, 41);
    ASSERT_TRUE(m.has_index_weights());
    const int n = 19;
    const std::vector<int> tokens = random_tokens(n, s.vocab, 10);
    const Reference ref = reference_forward(m, tokens);
    int calls = 0;
    msa::ForwardOptions o;
    o.attention = [&](int layer, const msa::QKV& qkv, const msa::IndexInputs* index, float* out) {
        ++calls;
        ASSERT_NE(index, nullptr);
        EXPECT_EQ(index->n_tokens, n);
        EXPECT_EQ(index->n_groups, s.kv_heads);
        EXPECT_EQ(index->n_key_heads, 1);
        EXPECT_EQ(index->dim, 16);
        EXPECT_FLOAT_EQ(index->scale, 0.25f);
        ASSERT_EQ(index->q.size(), static_cast<size_t>(n) * s.kv_heads * 16);
        ASSERT_EQ(index->k.size(), static_cast<size_t>(n) * 16);
        if (layer == 0) {
            for (int t = 0; t < n; ++t)
                for (int i = 0; i < s.kv_heads * 16; ++i)
                    EXPECT_NEAR(index->q[t * s.kv_heads * 16 + i], ref.layer0_index_q[t][i], 1e-4);
        }
        msa::dense_attention(qkv, out, 1);
    };
    msa::forward(m, tokens, o);
    EXPECT_EQ(calls, s.layers);
}

TEST(Forward, CancellationStopsBeforeTheNextLayer) {
    TinyShape s;
    s.layers = 4;
    Model m = make_model(s, 51);
    std::vector<int> hooked;
    std::vector<double> fractions;
    msa::ForwardOptions o;
    o.attention = [&](int layer, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        hooked.push_back(layer);
        msa::dense_attention(qkv, out, 1);
    };
    o.progress = [&](double f, const std::string&) {
        fractions.push_back(f);
        return fractions.size() < 3;  // cancel when layer 2 is about to start
    };
    const msa::ForwardResult r = msa::forward(m, random_tokens(16, s.vocab, 11), o);
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(hooked, (std::vector<int>{0, 1}));
    EXPECT_TRUE(r.nll.empty());

    fractions.clear();
    o.progress = [&](double f, const std::string&) {
        fractions.push_back(f);
        return true;
    };
    const msa::ForwardResult full = msa::forward(m, random_tokens(16, s.vocab, 11), o);
    EXPECT_FALSE(full.cancelled);
    ASSERT_GE(fractions.size(), 5u);
    for (size_t i = 1; i < fractions.size(); ++i) EXPECT_GE(fractions[i], fractions[i - 1]);
    EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
}

TEST(Forward, RejectsBadTokens) {
    TinyShape s;
    Model m = make_model(s, 61);
    EXPECT_THROW(run(m, {}), msa::InputError);
    EXPECT_THROW(run(m, {1, s.vocab}), msa::InputError);
    EXPECT_THROW(run(m, {-1, 2}), msa::InputError);
}

TEST(Forward, PerplexityAndThreadInvariance) {
    TinyShape s;
    Model m = make_model(s, 71);
    const std::vector<int> tokens = random_tokens(33, s.vocab, 12);
    const msa::ForwardResult a = run(m, tokens, 1), b = run(m, tokens, 3);
    double mean = 0;
    for (float v : a.nll) mean += v;
    mean /= a.nll.size();
    EXPECT_NEAR(a.perplexity(), std::exp(mean), 1e-9 * std::exp(mean));
    EXPECT_EQ(a.argmax, b.argmax);
    for (size_t i = 0; i < a.logits.size(); ++i) ASSERT_NEAR(a.logits[i], b.logits[i], 1e-5);
    EXPECT_TRUE(std::isnan(run(m, {3}).perplexity()));
}

TEST(Forward, GreedyGenerationFollowsArgmax) {
    TinyShape s;
    Model m = make_model(s, 81);
    const std::vector<int> prompt = random_tokens(9, s.vocab, 13);
    msa::ForwardOptions o;
    o.threads = 2;
    const std::vector<int> gen = msa::generate_greedy(m, prompt, 4, o);
    ASSERT_EQ(gen.size(), 4u);
    std::vector<int> seq = prompt;
    for (int tok : gen) {
        EXPECT_EQ(tok, msa::forward(m, seq, o).argmax.back());
        seq.push_back(tok);
    }
    // Stopping on the second generated token returns what came before its first occurrence.
    std::vector<int> before_stop;
    for (int tok : gen) {
        if (tok == gen[1]) break;
        before_stop.push_back(tok);
    }
    EXPECT_EQ(msa::generate_greedy(m, prompt, 4, o, gen[1]), before_stop);
}

}  // namespace
