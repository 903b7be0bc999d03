// The GPU forward (kernels/cuda_forward.h) and its ops against CPU references:
// each op on fresh random inputs (NMSE, outputs poisoned first so an unwritten
// element shows as NaN), then the whole model: a small random model written as
// GGUF and loaded back, run by both forwards, logits / nll / argmax compared at
// bf16 tolerance; then analyze() on the CUDA backend vs the CPU backend.
// Without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/analysis.h"
#include "core/backend.h"
#include "core/errors.h"
#include "core/forward.h"
#include "core/msa.h"
#include "core/parallel.h"
#include "kernels/convert.cuh"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_forward.h"
#include "kernels/embedding.cuh"
#include "kernels/logits_stats.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"
#include "tests/support/tiny_model.h"

namespace {

using msa::cuda::DeviceBuffer;

#define REQUIRE_GPU()                                                                        \
    do {                                                                                     \
        std::string why_;                                                                    \
        if (!msa::cuda::cuda_available(&why_)) GTEST_SKIP() << "no CUDA device: " << why_;   \
    } while (0)

std::vector<float> randn(size_t n, std::mt19937_64& rng, float mean = 0.f, float sd = 1.f) {
    std::normal_distribution<float> d(mean, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

double nmse(const std::vector<float>& a, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

bool all_finite(const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

DeviceBuffer upload(const std::vector<float>& v) {
    DeviceBuffer b(v.size() * 4);
    b.upload(v.data(), v.size() * 4);
    return b;
}
std::vector<float> download(const DeviceBuffer& b, size_t n) {
    std::vector<float> v(n);
    b.download(v.data(), n * 4);
    return v;
}
void sync() { ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess); }

// Worst NMSE per op, printed at the end (the summary the lead reads).
std::map<std::string, double>& worst() {
    static std::map<std::string, double> m;
    return m;
}
void note(const std::string& op, double v) { worst()[op] = std::max(worst()[op], v); }
struct PrintWorst : ::testing::Environment {
    void TearDown() override {
        if (worst().empty()) return;
        std::printf("\n[forward-ops] worst value per check:\n");
        for (auto& [op, v] : worst()) std::printf("  %-28s %.3e\n", op.c_str(), v);
    }
};
const auto* kEnv = ::testing::AddGlobalTestEnvironment(new PrintWorst);

// ---- ops ----------------------------------------------------------------------------------

TEST(ForwardOps, RmsNormRowsToBf16AndHeadsToF32) {
    REQUIRE_GPU();
    std::mt19937_64 rng(11);
    for (int rep = 0; rep < 3; ++rep) {
        // Plain rows, bf16 out (the model's norms).
        const int n_tok = 37 + rep, n = 576;
        auto x = randn(static_cast<size_t>(n_tok) * n, rng, 0.3f, 2.0f);
        auto w = randn(n, rng, 1.0f, 0.2f);
        DeviceBuffer dx = upload(x), dw = upload(w), dy(static_cast<size_t>(n_tok) * n * 2);
        dy.fill_bytes(0xFF);
        msa::kern::RmsNormOp op;
        op.x = static_cast<float*>(dx.data());
        op.ldx = n;
        op.weight = static_cast<float*>(dw.data());
        op.y_bf16 = static_cast<msa::kern::bf16*>(dy.data());
        op.ldy = n;
        op.n_tokens = n_tok;
        op.n = n;
        op.eps = 1e-5f;
        msa::kern::rms_norm_launch(op, nullptr);
        sync();
        std::vector<float> y(static_cast<size_t>(n_tok) * n);
        dy.download_bf16(y.data(), y.size());
        std::vector<double> ref(y.size());
        for (int t = 0; t < n_tok; ++t) {
            double ss = 0;
            for (int i = 0; i < n; ++i) ss += double(x[t * n + i]) * x[t * n + i];
            const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
            for (int i = 0; i < n; ++i) ref[t * n + i] = x[t * n + i] * inv * w[i];
        }
        ASSERT_TRUE(all_finite(y));
        const double e = nmse(y, ref);
        note("rms_norm bf16 (NMSE)", e);
        EXPECT_LT(e, 1e-5);  // bf16 output rounding: ~1e-6

        // Heads inside a wider row, per-head weights, fp32 out (the index branch).
        const int heads = 3, hd = 64, ldx = (heads + 1) * hd;
        auto xh = randn(static_cast<size_t>(n_tok) * ldx, rng);
        auto wh = randn(static_cast<size_t>(heads) * hd, rng, 1.0f, 0.2f);
        DeviceBuffer dxh = upload(xh), dwh = upload(wh), dyh(static_cast<size_t>(n_tok) * heads * hd * 4);
        dyh.fill_bytes(0xFF);
        msa::kern::RmsNormOp oh;
        oh.x = static_cast<float*>(dxh.data());
        oh.ldx = ldx;
        oh.weight = static_cast<float*>(dwh.data());
        oh.weight_per_head = true;
        oh.y_f32 = static_cast<float*>(dyh.data());
        oh.ldy = heads * hd;
        oh.n_tokens = n_tok;
        oh.heads = heads;
        oh.n = hd;
        oh.eps = 1e-5f;
        msa::kern::rms_norm_launch(oh, nullptr);
        sync();
        auto yh = download(dyh, static_cast<size_t>(n_tok) * heads * hd);
        std::vector<double> refh(yh.size());
        for (int t = 0; t < n_tok; ++t)
            for (int h = 0; h < heads; ++h) {
                const float* r = xh.data() + t * ldx + h * hd;
                double ss = 0;
                for (int i = 0; i < hd; ++i) ss += double(r[i]) * r[i];
                const double inv = 1.0 / std::sqrt(ss / hd + 1e-5);
                for (int i = 0; i < hd; ++i) refh[(t * heads + h) * hd + i] = r[i] * inv * wh[h * hd + i];
            }
        ASSERT_TRUE(all_finite(yh));
        const double eh = nmse(yh, refh);
        note("rms_norm heads f32 (NMSE)", eh);
        EXPECT_LT(eh, 1e-11);
    }
}

// CPU reference of the rope op, double arithmetic on float inputs.
std::vector<double> rope_ref(const std::vector<float>& in, long ld_in, const std::vector<float>* bias, int n,
                             int heads, int hd, int rot, const std::vector<float>& cs, const std::vector<float>& sn) {
    std::vector<double> out(static_cast<size_t>(n) * heads * hd);
    const int half = rot / 2;
    for (int t = 0; t < n; ++t)
        for (int h = 0; h < heads; ++h)
            for (int c = 0; c < hd; ++c) {
                auto val = [&](int cc) {
                    double v = in[t * ld_in + h * hd + cc];
                    if (bias) v += (*bias)[h * hd + cc];
                    return v;
                };
                double r;
                if (c < half)
                    r = val(c) * cs[t * half + c] - val(c + half) * sn[t * half + c];
                else if (c < rot)
                    r = val(c) * cs[t * half + c - half] + val(c - half) * sn[t * half + c - half];
                else
                    r = val(c);
                out[(static_cast<size_t>(t) * heads + h) * hd + c] = r;
            }
    return out;
}

TEST(ForwardOps, RopeRotateHalfWithBiasPartialAndInPlace) {
    REQUIRE_GPU();
    std::mt19937_64 rng(12);
    const int n = 53, heads = 3, hd = 64;
    for (int rot : {64, 32, 0}) {
        const long ld_in = 5L * hd;  // the slice sits inside a wider fused row
        auto in = randn(static_cast<size_t>(n) * ld_in, rng);
        auto bias = randn(static_cast<size_t>(heads) * hd, rng, 0.f, 0.1f);
        std::vector<float> cs(std::max(1, n * rot / 2)), sn(cs.size());
        std::uniform_real_distribution<double> ang(-3.14, 3.14);
        for (size_t i = 0; i < cs.size(); ++i) {
            const double a = ang(rng);
            cs[i] = static_cast<float>(std::cos(a));
            sn[i] = static_cast<float>(std::sin(a));
        }
        DeviceBuffer din = upload(in), dbias = upload(bias), dcs = upload(cs), dsn = upload(sn);
        DeviceBuffer dout(static_cast<size_t>(n) * heads * hd * 4), dout_b(static_cast<size_t>(n) * heads * hd * 2);
        dout.fill_bytes(0xFF);
        dout_b.fill_bytes(0xFF);
        msa::kern::RopeOp op;
        op.in = static_cast<float*>(din.data()) + hd;  // offset inside the row
        op.ld_in = ld_in;
        op.bias = static_cast<float*>(dbias.data());
        op.out = static_cast<float*>(dout.data());
        op.out_bf16 = static_cast<msa::kern::bf16*>(dout_b.data());
        op.n_tokens = n;
        op.heads = heads;
        op.head_dim = hd;
        op.rot_dim = rot;
        op.cos = static_cast<float*>(dcs.data());
        op.sin = static_cast<float*>(dsn.data());
        msa::kern::rope_launch(op, nullptr);
        sync();
        std::vector<float> shifted(in.begin() + hd, in.end());
        shifted.resize(in.size());
        auto ref = rope_ref(shifted, ld_in, &bias, n, heads, hd, rot, cs, sn);
        auto out = download(dout, ref.size());
        std::vector<float> out_b(ref.size());
        dout_b.download_bf16(out_b.data(), out_b.size());
        ASSERT_TRUE(all_finite(out));
        ASSERT_TRUE(all_finite(out_b));
        const double e = nmse(out, ref), eb = nmse(out_b, ref);
        note("rope f32 (NMSE)", e);
        note("rope bf16 copy (NMSE)", eb);
        EXPECT_LT(e, 1e-12) << "rot " << rot;
        EXPECT_LT(eb, 1e-5) << "rot " << rot;

        // In place, no bias (the index branch's use).
        if (rot > 0) {
            auto x = randn(static_cast<size_t>(n) * heads * hd, rng);
            DeviceBuffer dx = upload(x);
            msa::kern::RopeOp ip = op;
            ip.in = static_cast<float*>(dx.data());
            ip.ld_in = heads * hd;
            ip.bias = nullptr;
            ip.out = static_cast<float*>(dx.data());
            ip.out_bf16 = nullptr;
            msa::kern::rope_launch(ip, nullptr);
            sync();
            auto got = download(dx, x.size());
            const double ei = nmse(got, rope_ref(x, heads * hd, nullptr, n, heads, hd, rot, cs, sn));
            note("rope in place (NMSE)", ei);
            EXPECT_LT(ei, 1e-12);
        }
    }
}

TEST(ForwardOps, SwigluMatchesReference) {
    REQUIRE_GPU();
    std::mt19937_64 rng(13);
    for (int rep = 0; rep < 3; ++rep) {
        const int n = 29 + 7 * rep, F = 200 + rep;
        auto gu = randn(static_cast<size_t>(n) * 2 * F, rng, 0.f, 3.f);
        DeviceBuffer dgu = upload(gu), dout(static_cast<size_t>(n) * F * 2);
        dout.fill_bytes(0xFF);
        msa::kern::SwigluOp op;
        op.gate_up = static_cast<float*>(dgu.data());
        op.ld_in = 2 * F;
        op.out = static_cast<msa::kern::bf16*>(dout.data());
        op.ld_out = F;
        op.n_tokens = n;
        op.ffn = F;
        msa::kern::swiglu_launch(op, nullptr);
        sync();
        std::vector<float> out(static_cast<size_t>(n) * F);
        dout.download_bf16(out.data(), out.size());
        std::vector<double> ref(out.size());
        for (int t = 0; t < n; ++t)
            for (int i = 0; i < F; ++i) {
                const double g = gu[t * 2 * F + i], u = gu[t * 2 * F + F + i];
                ref[t * F + i] = g / (1.0 + std::exp(-g)) * u;
            }
        ASSERT_TRUE(all_finite(out));
        const double e = nmse(out, ref);
        note("swiglu (NMSE)", e);
        EXPECT_LT(e, 1e-5);
    }
}

TEST(ForwardOps, EmbeddingGathersRowsAndPoisonsBadIds) {
    REQUIRE_GPU();
    std::mt19937_64 rng(14);
    const int vocab = 1000, dim = 96, n = 64;
    auto table = randn(static_cast<size_t>(vocab) * dim, rng);
    for (auto& v : table) v = msa::cuda::round_bf16(v);
    DeviceBuffer dt(table.size() * 2);
    dt.upload_bf16(table.data(), table.size());
    std::vector<int32_t> ids(n);
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    for (auto& i : ids) i = pick(rng);
    ids[5] = ids[9];       // repeats
    ids[n - 1] = vocab;    // out of range -> NaN row
    DeviceBuffer dids(n * 4), dout(static_cast<size_t>(n) * dim * 4);
    dids.upload(ids.data(), n * 4);
    dout.fill_bytes(0x7F);
    msa::kern::EmbeddingOp op;
    op.table = static_cast<msa::kern::bf16*>(dt.data());
    op.tokens = static_cast<int32_t*>(dids.data());
    op.out = static_cast<float*>(dout.data());
    op.n_tokens = n;
    op.dim = dim;
    op.vocab = vocab;
    msa::kern::embedding_launch(op, nullptr);
    sync();
    auto out = download(dout, static_cast<size_t>(n) * dim);
    for (int t = 0; t + 1 < n; ++t)
        for (int i = 0; i < dim; ++i) ASSERT_EQ(out[t * dim + i], table[ids[t] * dim + i]) << t << "," << i;
    for (int i = 0; i < dim; ++i) EXPECT_TRUE(std::isnan(out[(n - 1) * dim + i]));
}

TEST(ForwardOps, ConvertRoundsToNearestEven) {
    REQUIRE_GPU();
    std::mt19937_64 rng(15);
    for (size_t count : {size_t(1), size_t(4097), size_t(100000)}) {
        auto x = randn(count, rng, 0.f, 10.f);
        DeviceBuffer dx = upload(x), dy(count * 2);
        dy.fill_bytes(0xFF);
        msa::kern::ConvertOp op;
        op.in = static_cast<float*>(dx.data());
        op.out = static_cast<msa::kern::bf16*>(dy.data());
        op.count = count;
        msa::kern::convert_f32_bf16_launch(op, nullptr);
        sync();
        std::vector<float> y(count);
        dy.download_bf16(y.data(), count);
        for (size_t i = 0; i < count; ++i) ASSERT_EQ(y[i], msa::cuda::round_bf16(x[i])) << i;
    }
}

TEST(ForwardOps, LogitsStatsNllAndArgmaxWithTies) {
    REQUIRE_GPU();
    std::mt19937_64 rng(16);
    const int rows = 9, V = 49152 / 4 + 3;
    const long ld = V + 5;
    auto logits = randn(static_cast<size_t>(rows) * ld, rng, 0.f, 4.f);
    // Row 0: a tie for the max at ids 700 and 9000 -> 700; row 1: the max at the last id.
    logits[700] = logits[9000] = 50.f;
    logits[ld + V - 1] = 60.f;
    std::vector<int32_t> targets(rows);
    std::uniform_int_distribution<int> pick(0, V - 1);
    for (auto& t : targets) t = pick(rng);
    targets[rows - 1] = -1;
    DeviceBuffer dl = upload(logits), dt(rows * 4), dnll(rows * 4), darg(rows * 4);
    dt.upload(targets.data(), rows * 4);
    std::vector<float> sentinel(rows, 12345.f);
    dnll.upload(sentinel.data(), rows * 4);
    msa::kern::LogitsStatsOp op;
    op.logits = static_cast<float*>(dl.data());
    op.ld = ld;
    op.rows = rows;
    op.vocab = V;
    op.targets = static_cast<int32_t*>(dt.data());
    op.nll = static_cast<float*>(dnll.data());
    op.argmax = static_cast<int32_t*>(darg.data());
    msa::kern::logits_stats_launch(op, nullptr);
    sync();
    auto nll = download(dnll, rows);
    std::vector<int32_t> arg(rows);
    darg.download(arg.data(), rows * 4);
    double worst_abs = 0;
    for (int r = 0; r < rows; ++r) {
        const float* row = logits.data() + r * ld;
        int best = 0;
        for (int j = 1; j < V; ++j)
            if (row[j] > row[best]) best = j;
        EXPECT_EQ(arg[r], best) << "row " << r;
        if (targets[r] < 0) {
            EXPECT_EQ(nll[r], 12345.f) << "a row without a target keeps its nll";
            continue;
        }
        double s = 0;
        for (int j = 0; j < V; ++j) s += std::exp(double(row[j]) - row[best]);
        const double ref = row[best] + std::log(s) - row[targets[r]];
        worst_abs = std::max(worst_abs, std::abs(nll[r] - ref));
    }
    EXPECT_EQ(arg[0], 700);
    EXPECT_EQ(arg[1], V - 1);
    note("logits_stats |nll diff|", worst_abs);
    EXPECT_LT(worst_abs, 1e-4);
}

// ---- whole model ------------------------------------------------------------------------

// A tiny llama whose attention the device kernels run (head_dim 64), written as
// GGUF in `type` and loaded back through the real loader.
msa::Model tiny_gguf_model(msa::WeightType type, uint64_t seed, int head_dim = 64, const std::string& arch = "llama",
                           bool llama3_rope = false) {
    msa::ModelConfig c = msa::tiny_config(arch);
    c.n_layers = 3;
    c.hidden = 128;
    c.head_dim = head_dim;
    c.ffn = 256;
    if (llama3_rope) {
        c.rope_scaling.type = "llama3";
        c.rope_scaling.factor = 8.0f;
        c.rope_scaling.original_context = 64;
    }
    msa::Model m = msa::make_random_model(c, seed);
    const std::string dir = msa::make_temp_dir("gpu_forward");
    const std::string path = dir + "/tiny.gguf";
    msa::write_gguf(m, path, type);
    return msa::load_model(path);
}

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    std::vector<int> t(n);
    for (auto& x : t) x = pick(rng);
    return t;
}

// Random models predict random tokens with huge confidence (mean nll ~30,
// perplexity ~1e12), so a relative perplexity gap there says little about a
// real model (nll ~2-3); the mean-nll shift relative to the mean nll is the
// scale-free measure the checks use, with the perplexity gap printed beside it.
struct Agreement {
    double logits_nmse = 0, max_logit_diff = 0, max_nll_diff = 0, ppl_rel = 0, argmax_agree = 0;
    double mean_nll = 0, nll_shift = 0;  // mean cpu nll, (mean gpu nll - mean cpu nll)
};

Agreement compare(const msa::ForwardResult& gpu, const msa::ForwardResult& cpu) {
    Agreement a;
    double num = 0, den = 0;
    for (size_t i = 0; i < cpu.logits.size(); ++i) {
        const double d = static_cast<double>(gpu.logits[i]) - cpu.logits[i];
        num += d * d;
        den += static_cast<double>(cpu.logits[i]) * cpu.logits[i];
        a.max_logit_diff = std::max(a.max_logit_diff, std::abs(d));
    }
    a.logits_nmse = den > 0 ? num / den : num;
    for (size_t i = 0; i < cpu.nll.size(); ++i)
        a.max_nll_diff = std::max(a.max_nll_diff, static_cast<double>(std::abs(gpu.nll[i] - cpu.nll[i])));
    a.ppl_rel = std::abs(gpu.perplexity() / cpu.perplexity() - 1);
    for (size_t i = 0; i < cpu.nll.size(); ++i) {
        a.mean_nll += cpu.nll[i];
        a.nll_shift += static_cast<double>(gpu.nll[i]) - cpu.nll[i];
    }
    if (!cpu.nll.empty()) {
        a.mean_nll /= cpu.nll.size();
        a.nll_shift /= cpu.nll.size();
    }
    int same = 0;
    for (size_t i = 0; i < cpu.argmax.size(); ++i) same += gpu.argmax[i] == cpu.argmax[i];
    a.argmax_agree = cpu.argmax.empty() ? 1.0 : static_cast<double>(same) / cpu.argmax.size();
    return a;
}

void expect_close(const Agreement& a, const std::string& what) {
    std::printf("[forward-ops] %-30s logits NMSE %.2e  max |dlogit| %.4f  max |dnll| %.4f  mean nll %.2f shift %+.2e"
                "  ppl rel %.2e  argmax %.4f\n",
                what.c_str(), a.logits_nmse, a.max_logit_diff, a.max_nll_diff, a.mean_nll, a.nll_shift, a.ppl_rel,
                a.argmax_agree);
    note(what + " logits NMSE", a.logits_nmse);
    note(what + " max |dlogit|", a.max_logit_diff);
    EXPECT_LT(a.logits_nmse, 1e-4) << what;  // bf16 weights and operands: ~1e-5
    EXPECT_LT(std::abs(a.nll_shift) / a.mean_nll, 1e-3) << what;
    EXPECT_GE(a.argmax_agree, 0.97) << what;
}

TEST(GpuForward, MatchesCpuOnTinyGgufModel) {
    REQUIRE_GPU();
    for (auto type : {msa::WeightType::F32, msa::WeightType::Q4_1}) {
        msa::Model model = tiny_gguf_model(type, 21);
        const auto tokens = random_tokens(300, model.config.vocab, 22);
        msa::ForwardOptions o;
        o.threads = msa::default_threads();
        o.keep_logits = true;
        msa::ForwardResult cpu = msa::forward(model, tokens, o);
        msa::ForwardResult gpu = msa::cuda::forward(model, tokens, o);  // device attention path
        ASSERT_EQ(gpu.logits.size(), cpu.logits.size());
        ASSERT_EQ(gpu.nll.size(), tokens.size() - 1);
        ASSERT_EQ(gpu.argmax.size(), tokens.size());
        ASSERT_TRUE(all_finite(gpu.logits));
        ASSERT_TRUE(all_finite(gpu.nll));
        expect_close(compare(gpu, cpu), std::string("tiny ") + msa::weight_type_name(type) + " device attn");

        // Without keep_logits the same nll / argmax come out (chunked LM head only).
        o.keep_logits = false;
        msa::ForwardResult gpu2 = msa::cuda::forward(model, tokens, o);
        EXPECT_TRUE(gpu2.logits.empty());
        EXPECT_EQ(gpu2.nll, gpu.nll);
        EXPECT_EQ(gpu2.argmax, gpu.argmax);
    }
}

TEST(GpuForward, HookSeesCpuLikeQkvAndItsOutputIsUsed) {
    REQUIRE_GPU();
    msa::Model model = tiny_gguf_model(msa::WeightType::F32, 31);
    const auto tokens = random_tokens(257, model.config.vocab, 32);
    const int threads = msa::default_threads();
    // Hook = the CPU's dense attention, recording layer 1's Q/K/V.
    auto make_hook = [&](std::vector<float>& q1, std::vector<float>& k1, std::vector<int>& layers) {
        return [&q1, &k1, &layers, threads](int layer, const msa::QKV& qkv, const msa::IndexInputs* index, float* out) {
            EXPECT_EQ(index, nullptr);
            layers.push_back(layer);
            const auto& s = qkv.shape;
            if (layer == 1) {
                q1.assign(qkv.q, qkv.q + static_cast<size_t>(s.n_tokens) * s.n_heads * s.head_dim);
                k1.assign(qkv.k, qkv.k + static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim);
            }
            msa::dense_attention(qkv, out, threads);
        };
    };
    std::vector<float> cq, ck, gq, gk;
    std::vector<int> cl, gl;
    msa::ForwardOptions o;
    o.threads = threads;
    o.keep_logits = true;
    o.attention = make_hook(cq, ck, cl);
    msa::ForwardResult cpu = msa::forward(model, tokens, o);
    o.attention = make_hook(gq, gk, gl);
    msa::ForwardResult gpu = msa::cuda::forward(model, tokens, o);
    EXPECT_EQ(gl, cl);
    ASSERT_EQ(gq.size(), cq.size());
    std::vector<double> cqd(cq.begin(), cq.end()), ckd(ck.begin(), ck.end());
    const double eq = nmse(gq, cqd), ek = nmse(gk, ckd);
    note("hook Q layer 1 (NMSE)", eq);
    note("hook K layer 1 (NMSE)", ek);
    EXPECT_LT(eq, 1e-4);
    EXPECT_LT(ek, 1e-4);
    expect_close(compare(gpu, cpu), "tiny F32 host hook");

    // A hook that zeroes attention changes the result: its output is what the layer uses.
    o.attention = [](int, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        std::fill(out, out + static_cast<size_t>(qkv.shape.n_tokens) * qkv.shape.n_heads * qkv.shape.head_dim, 0.f);
    };
    msa::ForwardResult zero_cpu = msa::forward(model, tokens, o);
    msa::ForwardResult zero_gpu = msa::cuda::forward(model, tokens, o);
    expect_close(compare(zero_gpu, zero_cpu), "tiny F32 zero-attention hook");
    EXPECT_GT(std::abs(zero_gpu.perplexity() - gpu.perplexity()), 1e-3);
}

TEST(GpuForward, BiasLlama3RopeAndCpuFallbackHeadDim) {
    REQUIRE_GPU();
    // qwen2 (Q/K/V biases), llama3 RoPE scaling, head_dim 16: the device attention
    // does not take d = 16, so the layer attention runs on the CPU on downloaded Q/K/V.
    msa::Model model = tiny_gguf_model(msa::WeightType::F32, 41, 16, "qwen2", true);
    ASSERT_TRUE(model.config.qkv_bias);
    ASSERT_FALSE(model.layers[0].bq.empty());
    const auto tokens = random_tokens(200, model.config.vocab, 42);
    msa::ForwardOptions o;
    o.threads = msa::default_threads();
    o.keep_logits = true;
    expect_close(compare(msa::cuda::forward(model, tokens, o), msa::forward(model, tokens, o)), "qwen2 llama3-rope d16");
}

TEST(GpuForward, TrainedIndexBranchMatchesCpu) {
    REQUIRE_GPU();
    msa::Model model = tiny_gguf_model(msa::WeightType::F32, 51);
    msa::add_random_index_weights(model, 64, 52);
    const auto tokens = random_tokens(150, model.config.vocab, 53);
    const int threads = msa::default_threads();
    auto hook_into = [threads](std::vector<msa::IndexInputs>& seen) {
        return [&seen, threads](int, const msa::QKV& qkv, const msa::IndexInputs* index, float* out) {
            EXPECT_NE(index, nullptr);
            if (index) seen.push_back(*index);
            msa::dense_attention(qkv, out, threads);
        };
    };
    std::vector<msa::IndexInputs> cpu_idx, gpu_idx;
    msa::ForwardOptions o;
    o.threads = threads;
    o.attention = hook_into(cpu_idx);
    msa::forward(model, tokens, o);
    o.attention = hook_into(gpu_idx);
    msa::cuda::forward(model, tokens, o);
    ASSERT_EQ(gpu_idx.size(), cpu_idx.size());
    for (size_t l = 0; l < cpu_idx.size(); ++l) {
        const auto& c = cpu_idx[l];
        const auto& g = gpu_idx[l];
        EXPECT_EQ(g.n_groups, c.n_groups);
        EXPECT_EQ(g.n_key_heads, 1);
        EXPECT_EQ(g.dim, c.dim);
        EXPECT_FLOAT_EQ(g.scale, c.scale);
        ASSERT_EQ(g.q.size(), c.q.size());
        ASSERT_EQ(g.k.size(), c.k.size());
        const double eq = nmse(g.q, std::vector<double>(c.q.begin(), c.q.end()));
        const double ek = nmse(g.k, std::vector<double>(c.k.begin(), c.k.end()));
        note("index q (NMSE)", eq);
        note("index k (NMSE)", ek);
        EXPECT_LT(eq, 1e-4) << "layer " << l;
        EXPECT_LT(ek, 1e-4) << "layer " << l;
    }
}

TEST(GpuForward, WeightCacheFollowsTheModel) {
    REQUIRE_GPU();
    msa::Model a = tiny_gguf_model(msa::WeightType::F32, 61);
    msa::Model b = tiny_gguf_model(msa::WeightType::F32, 62);
    const auto tokens = random_tokens(100, a.config.vocab, 63);
    msa::ForwardOptions o;
    o.threads = msa::default_threads();
    const double pa = msa::forward(a, tokens, o).perplexity(), pb = msa::forward(b, tokens, o).perplexity();
    ASSERT_GT(std::abs(pa / pb - 1), 1e-2) << "the two random models must differ";
    msa::cuda::ForwardEngine engine;
    for (int round = 0; round < 2; ++round) {
        EXPECT_NEAR(engine.forward(a, tokens, o).perplexity() / pa, 1.0, 5e-3);
        EXPECT_GT(engine.weight_bytes(), 0u);
        EXPECT_NEAR(engine.forward(b, tokens, o).perplexity() / pb, 1.0, 5e-3);
    }
    engine.release();
    EXPECT_EQ(engine.weight_bytes(), 0u);
    EXPECT_NEAR(engine.forward(a, tokens, o).perplexity() / pa, 1.0, 5e-3);
}

TEST(GpuForward, ProgressCancelsAndBadInputIsInputError) {
    REQUIRE_GPU();
    msa::Model model = tiny_gguf_model(msa::WeightType::F32, 71);
    const auto tokens = random_tokens(64, model.config.vocab, 72);
    msa::ForwardOptions o;
    std::vector<std::string> stages;
    o.progress = [&](double f, const std::string& stage) {
        EXPECT_GE(f, 0.0);
        EXPECT_LE(f, 1.0);
        stages.push_back(stage);
        return stages.size() < 2;  // cancel at layer 2
    };
    msa::ForwardResult r = msa::cuda::forward(model, tokens, o);
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(stages.size(), 2u);
    EXPECT_EQ(stages[0], "layer 1/3");
    EXPECT_TRUE(r.nll.empty());

    o.progress = nullptr;
    std::vector<int> bad = tokens;
    bad[3] = model.config.vocab + 7;
    EXPECT_THROW(msa::cuda::forward(model, bad, o), msa::InputError);
    EXPECT_THROW(msa::cuda::forward(model, {}, o), msa::InputError);
    // Still usable after refusing.
    EXPECT_FALSE(msa::cuda::forward(model, tokens, o).cancelled);
}

// SmolLM2-135M's shapes with random weights (the real file cannot travel to
// the GPU machine): GPU vs CPU perplexity over 30 layers of bf16 rounding, and
// the forward's wall time. Opt-in (MSASCOPE_GPU_BIG=1): it builds 135M random
// weights and runs the CPU forward at 2K tokens.
TEST(GpuForward, SmolLmShapeTimingAndPerplexity) {
    REQUIRE_GPU();
    if (!std::getenv("MSASCOPE_GPU_BIG")) GTEST_SKIP() << "set MSASCOPE_GPU_BIG=1";
    msa::ModelConfig c = msa::tiny_config();
    c.n_layers = 30;
    c.hidden = 576;
    c.n_heads = 9;
    c.n_kv_heads = 3;
    c.head_dim = 64;
    c.ffn = 1536;
    c.vocab = 49152;
    c.context_length = 8192;
    c.rope_theta = 100000.0f;
    c.tied_embeddings = true;
    const msa::Model model = msa::make_random_model(c, 91);
    const int n = 1024;
    const auto tokens = random_tokens(n, c.vocab, 92);
    msa::ForwardOptions o;
    o.threads = msa::default_threads();
    auto time_ms = [](auto&& f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    msa::ForwardResult cpu;
    const double cpu_ms = time_ms([&] { cpu = msa::forward(model, tokens, o); });
    msa::ForwardResult gpu;
    const double first_ms = time_ms([&] { gpu = msa::cuda::forward(model, tokens, o); });  // + weight upload
    std::vector<double> ms;
    for (int i = 0; i < 3; ++i) ms.push_back(time_ms([&] { gpu = msa::cuda::forward(model, tokens, o); }));
    std::sort(ms.begin(), ms.end());
    o.attention = [&](int, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        msa::cuda::dense_attention(qkv, out);
    };
    msa::ForwardResult hooked;
    const double hook_ms = time_ms([&] { hooked = msa::cuda::forward(model, tokens, o); });
    // fp32 CPU attention in the hook: what is left is the GEMMs' bf16 rounding.
    const int threads = msa::default_threads();
    o.attention = [threads](int, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        msa::dense_attention(qkv, out, threads);
    };
    msa::ForwardResult cpu_attn = msa::cuda::forward(model, tokens, o);
    // Every GEMM in bf16, the LM head included (set_precise_lm_head(false)).
    o.attention = nullptr;
    msa::cuda::ForwardEngine bf16_engine;
    bf16_engine.set_precise_lm_head(false);
    const msa::ForwardResult all_bf16 = bf16_engine.forward(model, tokens, o);
    std::printf("[forward-ops] SmolLM2 shape, N=%d: CPU forward %.0f ms; GPU first %.0f ms (with upload), median %.1f ms, "
                "host-hook attention %.0f ms\n", n, cpu_ms, first_ms, ms[1], hook_ms);
    const Agreement a = compare(gpu, cpu), ah = compare(hooked, cpu), ac = compare(cpu_attn, cpu),
                    ab = compare(all_bf16, cpu);
    for (auto [what, x] : {std::pair{"device attention", a}, {"hook cuda attention", ah}, {"hook fp32 CPU attention", ac},
                           {"bf16 LM head", ab}})
        std::printf("[forward-ops] SmolLM2 shape %-24s mean nll %.3f shift %+.3e (rel %.2e)  ppl rel %.2e  argmax %.4f\n",
                    what, x.mean_nll, x.nll_shift, x.nll_shift / x.mean_nll, x.ppl_rel, x.argmax_agree);
    note("smollm-shape nll shift rel", std::abs(a.nll_shift) / a.mean_nll);
    EXPECT_LT(std::abs(a.nll_shift) / a.mean_nll, 2e-3);
    EXPECT_LT(std::abs(ah.nll_shift) / ah.mean_nll, 2e-3);
    EXPECT_GE(a.argmax_agree, 0.97);
}

// ---- analyze() on the CUDA backend ----------------------------------------------------------

TEST(CudaBackend, AnalyzeMatchesCpuBackend) {
    REQUIRE_GPU();
    msa::Model model = tiny_gguf_model(msa::WeightType::Q4_1, 81);
    const auto tokens = random_tokens(400, model.config.vocab, 82);
    msa::AnalysisOptions opt;
    opt.threads = msa::default_threads();
    opt.config.k = 4;
    opt.config.block = 32;
    opt.capture = msa::CaptureLevel::full;
    msa::RunResult cpu = msa::analyze(model, tokens, "", opt);
    opt.backend = &msa::cuda::cuda_backend();
    msa::RunResult gpu = msa::analyze(model, tokens, "", opt);
    EXPECT_EQ(cpu.backend, "cpu");
    EXPECT_EQ(gpu.backend, "cuda");
    EXPECT_FALSE(gpu.device.empty());
    ASSERT_EQ(gpu.layers.size(), cpu.layers.size());
    double worst_recall = 0;
    for (size_t l = 0; l < cpu.layers.size(); ++l) {
        const double d = std::abs(gpu.layers[l].recall_mean - cpu.layers[l].recall_mean);
        worst_recall = std::max(worst_recall, d);
        std::printf("[forward-ops] layer %zu recall cpu %.5f gpu %.5f  err cpu %.4f gpu %.4f\n", l,
                    cpu.layers[l].recall_mean, gpu.layers[l].recall_mean, cpu.layers[l].output_rel_error,
                    gpu.layers[l].output_rel_error);
    }
    note("analyze |recall diff|", worst_recall);
    EXPECT_LT(worst_recall, 5e-3);
    const double ppl_d = std::abs(gpu.perplexity_dense / cpu.perplexity_dense - 1);
    const double ppl_m = std::abs(gpu.perplexity_msa / cpu.perplexity_msa - 1);
    std::printf("[forward-ops] ppl dense cpu %.4f gpu %.4f | msa cpu %.4f gpu %.4f | random cpu %.4f gpu %.4f\n",
                cpu.perplexity_dense, gpu.perplexity_dense, cpu.perplexity_msa, gpu.perplexity_msa,
                cpu.perplexity_random, gpu.perplexity_random);
    note("analyze ppl dense rel", ppl_d);
    note("analyze ppl msa rel", ppl_m);
    // log(ppl) is the mean nll: its shift relative to itself (see Agreement).
    EXPECT_LT(std::abs(std::log(gpu.perplexity_dense / cpu.perplexity_dense)) / std::log(cpu.perplexity_dense), 1e-3);
    EXPECT_LT(std::abs(std::log(gpu.perplexity_msa / cpu.perplexity_msa)) / std::log(cpu.perplexity_msa), 1e-3);
    // Selections agree on almost every (query, group) row.
    ASSERT_EQ(gpu.captures.size(), cpu.captures.size());
    long rows = 0, same = 0;
    for (size_t i = 0; i < cpu.captures.size(); ++i) {
        const auto& a = cpu.captures[i].selection;
        const auto& b = gpu.captures[i].selection;
        ASSERT_EQ(a.blocks.size(), b.blocks.size());
        for (int t = 0; t < a.n_tokens; ++t)
            for (int g = 0; g < a.n_groups; ++g, ++rows)
                same += std::equal(a.row(t, g), a.row(t, g) + a.slots, b.row(t, g));
        EXPECT_FALSE(gpu.captures[i].scores.values.empty());
        EXPECT_FALSE(gpu.captures[i].mass.values.empty());
    }
    note("analyze selection rows differing", 1.0 - static_cast<double>(same) / rows);
    EXPECT_GT(static_cast<double>(same) / rows, 0.95);

    // Kernel records: every launch of the run, GEMMs with 2*M*N*K.
    ASSERT_FALSE(gpu.kernels.empty());
    EXPECT_TRUE(cpu.kernels.empty());
    std::map<std::string, int> phases;
    double gemm_flops = 0;
    for (const auto& k : gpu.kernels) {
        phases[k.phase]++;
        if (k.phase == "gemm") gemm_flops += k.flops;
    }
    std::printf("[forward-ops] %zu kernel records:", gpu.kernels.size());
    for (auto& [p, c] : phases) std::printf(" %s=%d", p.empty() ? "(none)" : p.c_str(), c);
    std::printf("\n");
    for (const auto& w : gpu.warnings) std::printf("[forward-ops] warning: %s\n", w.c_str());
    std::map<std::string, int> untagged;
    for (const auto& k : gpu.kernels)
        if (k.phase.empty()) untagged[k.name.substr(0, 90)]++;
    for (auto& [name, count] : untagged) std::printf("[forward-ops] untagged x%d: %s\n", count, name.c_str());
    EXPECT_TRUE(untagged.empty()) << "every launch of the run has a phase";
    EXPECT_GT(phases["upload"], 0) << "the first forward uploads the weights";
    // Every GEMM kernel with a cost is a cuBLAS kernel, in its layer.
    for (const auto& k : gpu.kernels) {
        if (k.flops > 0 && k.phase == "gemm") {
            EXPECT_TRUE(k.name.find("nvjet") != std::string::npos || k.name.find("gemm") != std::string::npos ||
                        k.name.find("cutlass") != std::string::npos || k.name == "attn_qkv" || k.name == "lm_head" ||
                        k.name.rfind("attn_", 0) == 0 || k.name.rfind("ffn_", 0) == 0)
                << k.name;
        }
    }
    const auto& c = model.config;
    const double n = static_cast<double>(tokens.size());
    const double per_layer = 2.0 * n * c.hidden *
                             (c.n_heads * c.head_dim + 2.0 * c.n_kv_heads * c.head_dim + c.n_heads * c.head_dim +
                              3.0 * c.ffn);
    const double per_forward = c.n_layers * per_layer + 2.0 * n * c.hidden * c.vocab;
    EXPECT_NEAR(gemm_flops / (3 * per_forward), 1.0, 1e-9) << "3 forwards (dense, MSA, random control)";
    EXPECT_GT(phases["dense"], 0);
    EXPECT_GT(phases["index"], 0);
    EXPECT_GT(phases["sparse"], 0);
    int with_layer = 0;
    for (const auto& k : gpu.kernels) with_layer += k.layer >= 0;
    EXPECT_GT(with_layer, static_cast<int>(gpu.kernels.size()) / 2);
    // A second run starts from an empty record list.
    opt.perplexity = false;
    msa::RunResult again = msa::analyze(model, tokens, "", opt);
    double again_flops = 0;
    for (const auto& k : again.kernels)
        if (k.phase == "gemm") again_flops += k.flops;
    EXPECT_NEAR(again_flops / per_forward, 1.0, 1e-9);
}

}  // namespace
