// The forward on the GPU (cuda_forward.h). One stream (the legacy default
// stream, which the msa::cuda attention ops a hook may call also use, so no
// cross-stream ordering is needed), one cuBLAS handle, weights cached per model.
//
// Per layer (shapes for SmolLM2-135M: D 576, Hq 9, Hkv 3, d 64, F 1536):
//   x (fp32 residual) -> rms_norm -> xn (bf16)
//   xn . [Wq|Wk|Wv]^T -> qkv (fp32 [N, (Hq+2Hkv) d])        one GEMM for all three
//   rope (+bias) -> q, k, v (fp32 contiguous; bf16 copies for the device attention)
//   attention -> attn (bf16 [N, Hq d])
//   x += attn . Wo^T                                         GEMM with beta = 1
//   x -> rms_norm -> xn;  xn . [Wgate|Wup]^T -> h (fp32 [N, 2F]);  swiglu -> act (bf16)
//   x += act . Wdown^T
// then the final norm and the LM head in row chunks, each chunk's logits
// reduced at once to nll and argmax (logits_stats.cuh).
#include "kernels/cuda_forward.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

#include "core/rope.h"
#include "core/errors.h"
#include "core/msa.h"
#include "kernels/convert.cuh"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_check.h"
#include "kernels/cupti_collector.h"
#include "kernels/dense_attention.cuh"
#include "kernels/embedding.cuh"
#include "kernels/logits_stats.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"

namespace msa::cuda {

using kern::bf16;

namespace {

// ---- checks -------------------------------------------------------------------------
void cublas_check(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error(std::string("cuBLAS error ") + cublasGetStatusName(s) + " in " + what);
}

// ---- fingerprint of a model's weights ----------------------------------------------
// Decides whether the cached device copy is this model. Shapes plus ~257
// sampled values per tensor: a different file, a different seed of a test
// model, or a different quantization all change it; a model edited in place
// at unsampled positions would not (nothing in msascope does that).
struct Fnv {
    uint64_t h = 1469598103934665603ull;
    void add(const void* p, size_t n) {
        const unsigned char* b = static_cast<const unsigned char*>(p);
        for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    }
    void add_int(long long v) { add(&v, sizeof v); }
    void add_floats(const std::vector<float>& v) {
        add_int(static_cast<long long>(v.size()));
        if (v.empty()) return;
        const size_t step = std::max<size_t>(1, v.size() / 257);
        for (size_t i = 0; i < v.size(); i += step) add(&v[i], sizeof(float));
        add(&v.back(), sizeof(float));
    }
    void add_matrix(const Matrix& m) {
        add_int(m.rows);
        add_int(m.cols);
        add_floats(m.data);
    }
};

uint64_t fingerprint(const Model& model) {
    Fnv f;
    const ModelConfig& c = model.config;
    for (long long v : {c.n_layers, c.hidden, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn, c.vocab})
        f.add_int(v);
    f.add(model.file_hash.data(), model.file_hash.size());
    f.add_matrix(model.token_embedding);
    f.add_matrix(model.output);
    f.add_floats(model.output_norm);
    for (const LayerWeights& w : model.layers) {
        for (const Matrix* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down, &w.index_wq, &w.index_wk})
            f.add_matrix(*m);
        for (const std::vector<float>* v :
             {&w.attn_norm, &w.ffn_norm, &w.bq, &w.bk, &w.bv, &w.index_q_norm, &w.index_k_norm})
            f.add_floats(*v);
    }
    return f.h;
}

double causal_pairs(long n) { return static_cast<double>(n) * (n + 1) / 2.0; }

void grow(DeviceBuffer& b, size_t bytes) {
    if (b.bytes() < bytes) b = DeviceBuffer(bytes);
}

}  // namespace

// ---- device weights ---------------------------------------------------------------------
struct DeviceLayer {
    DeviceBuffer wqkv, wo, w_gate_up, w_down;  // bf16, rows concatenated as the fused GEMMs read them
    DeviceBuffer bqkv;                         // fp32 [qd + 2 kvd], empty without biases
    DeviceBuffer attn_norm, ffn_norm;          // fp32 [D]
    DeviceBuffer index_w;                      // bf16 [(G+1) dI, D]: index_wq rows then index_wk
    DeviceBuffer index_q_norm, index_k_norm;   // fp32
};

struct ForwardEngine::Impl {
    std::mutex mutex;
    cublasHandle_t cublas = nullptr;

    // cached model
    bool loaded = false;
    uint64_t fp = 0;
    size_t bytes = 0;
    DeviceBuffer embedding, head, output_norm;  // head empty when tied
    // LM head precision. The logits feed the nll directly, with no later layer
    // to average their rounding out: on a SmolLM2-shaped random model the
    // all-bf16 forward shifted the mean nll by +8.5e-4 relative, nearly all of
    // it from the GEMMs. precise_head keeps an fp32 copy of the head (113 MB
    // for SmolLM2) and runs it on TF32 tensor cores (10-bit mantissa, 8x finer
    // than bf16) on the fp32 final-norm output; it costs ~2x the bf16 head
    // GEMM, a few percent of the forward.
    bool precise_head = true;
    DeviceBuffer head_f32;  // fp32 [V, D] when precise_head
    std::vector<DeviceLayer> layers;
    int index_dim = 0;
    bool index_q_norm_per_head = false;

    // work buffers (grown as needed, kept between forwards)
    DeviceBuffer staging;  // fp32 staging for uploads
    DeviceBuffer tokens, targets, x, xn, qkv, q, k, v, qb, kb, vb, attn, attn_f32, h, act, logits, nll, argmax;
    DeviceBuffer rope_cos, rope_sin, idx_cos, idx_sin, idx_proj, idx_q, idx_k, attn_scratch;

    std::vector<KernelRecord> gemm_log;

    ~Impl() {
        if (cublas) cublasDestroy(cublas);
    }

    void ensure_handle() {
        if (cublas) return;
        cublas_check(cublasCreate(&cublas), "cublasCreate");
        cublas_check(cublasSetStream(cublas, nullptr), "cublasSetStream");
    }

    // fp32 host parts -> one bf16 device matrix (rows concatenated), through the staging buffer.
    DeviceBuffer upload_bf16(const std::vector<const Matrix*>& parts) {
        size_t count = 0;
        for (const Matrix* m : parts) count += m->data.size();
        DeviceBuffer out(count * sizeof(bf16));
        grow(staging, count * sizeof(float));
        size_t offset = 0;
        for (const Matrix* m : parts) {
            staging.upload(m->data.data(), m->data.size() * sizeof(float), offset * sizeof(float));
            offset += m->data.size();
        }
        kern::ConvertOp op;
        op.in = static_cast<const float*>(staging.data());
        op.out = static_cast<bf16*>(out.data());
        op.count = count;
        {
            LaunchTag tag("upload", "weights_to_bf16", 0, 6.0 * count, nullptr, -1);
            kern::convert_f32_bf16_launch(op, nullptr);
        }
        MSA_CUDA_CHECK(cudaDeviceSynchronize());  // staging is reused by the next upload
        bytes += out.bytes();
        return out;
    }
    DeviceBuffer upload_f32_matrix(const Matrix& m) {
        DeviceBuffer out(m.data.size() * sizeof(float));
        out.upload(m.data.data(), out.bytes());
        bytes += out.bytes();
        return out;
    }
    DeviceBuffer upload_f32(const std::vector<const std::vector<float>*>& parts) {
        std::vector<float> joined;
        for (const auto* p : parts) joined.insert(joined.end(), p->begin(), p->end());
        DeviceBuffer out(joined.size() * sizeof(float));
        out.upload(joined.data(), joined.size() * sizeof(float));
        bytes += out.bytes();
        return out;
    }

    void load(const Model& model) {
        const uint64_t f = fingerprint(model) ^ (precise_head ? 0x9e3779b97f4a7c15ull : 0);
        if (loaded && f == fp) return;
        release_weights();
        const ModelConfig& c = model.config;
        embedding = upload_bf16({&model.token_embedding});
        if (!model.output.empty()) head = upload_bf16({&model.output});
        if (precise_head) head_f32 = upload_f32_matrix(model.lm_head());
        output_norm = upload_f32({&model.output_norm});
        const bool trained = model.has_index_weights();
        if (trained) {
            const Matrix& iq = model.layers[0].index_wq;
            if (iq.rows % c.n_kv_heads != 0)
                throw InputError("index query weight has " + std::to_string(iq.rows) + " rows, not a multiple of " +
                                 std::to_string(c.n_kv_heads) + " groups");
            index_dim = iq.rows / c.n_kv_heads;
            if (index_dim % 4 != 0)
                throw InputError("index head dim " + std::to_string(index_dim) + " is not a multiple of 4");
            index_q_norm_per_head =
                model.layers[0].index_q_norm.size() == static_cast<size_t>(c.n_kv_heads) * index_dim;
        }
        layers.clear();
        layers.resize(c.n_layers);
        const int qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
        for (int l = 0; l < c.n_layers; ++l) {
            const LayerWeights& w = model.layers[l];
            DeviceLayer& d = layers[l];
            d.wqkv = upload_bf16({&w.wq, &w.wk, &w.wv});
            d.wo = upload_bf16({&w.wo});
            d.w_gate_up = upload_bf16({&w.w_gate, &w.w_up});
            d.w_down = upload_bf16({&w.w_down});
            d.attn_norm = upload_f32({&w.attn_norm});
            d.ffn_norm = upload_f32({&w.ffn_norm});
            if (!w.bq.empty() || !w.bk.empty() || !w.bv.empty()) {
                // A missing part of the bias is zeros (the CPU's pack_weights does the same).
                std::vector<float> bq = w.bq, bk = w.bk, bv = w.bv;
                bq.resize(qd, 0.f);
                bk.resize(kvd, 0.f);
                bv.resize(kvd, 0.f);
                d.bqkv = upload_f32({&bq, &bk, &bv});
            }
            if (trained) {
                d.index_w = upload_bf16({&w.index_wq, &w.index_wk});
                d.index_q_norm = upload_f32({&w.index_q_norm});
                d.index_k_norm = upload_f32({&w.index_k_norm});
            }
        }
        staging = DeviceBuffer();  // 113 MB for a 49K x 576 embedding: not worth keeping
        fp = f;
        loaded = true;
    }

    void release_weights() {
        embedding = DeviceBuffer();
        head = DeviceBuffer();
        head_f32 = DeviceBuffer();
        output_norm = DeviceBuffer();
        layers.clear();
        loaded = false;
        bytes = 0;
    }

    // y[n, out] (+)= x[n, in] . W[out, in]^T: bf16 operands, fp32 accumulate and output.
    // cuBLAS is column-major: the row-major W is a column-major [in, out] matrix,
    // so C^T = op_T(W) . X^T with lda = in, ldb = ldx, ldc = ldy.
    void gemm(const bf16* xin, int n, int in, long ldx, const DeviceBuffer& w, int out, float* y, long ldy,
              bool accumulate, const char* name, int layer) {
        if (n <= 0) return;
        const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        const double flops = 2.0 * n * out * static_cast<double>(in);
        const double bytes_moved = 2.0 * (static_cast<double>(n) * in + static_cast<double>(out) * in) +
                                   4.0 * n * static_cast<double>(out) * (accumulate ? 2 : 1);
        if (KernelCollector::active()) {
            KernelRecord r;
            r.name = name;
            r.phase = "gemm";
            r.flops = flops;
            r.bytes = bytes_moved;
            r.layer = layer;
            gemm_log.push_back(std::move(r));
        }
        LaunchTag tag("gemm", name, flops, bytes_moved, nullptr, layer);
        cublas_check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w.data(), CUDA_R_16BF, in,
                                  xin, CUDA_R_16BF, static_cast<int>(ldx), &beta, y, CUDA_R_32F,
                                  static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     name);
    }

    // Same product on fp32 operands with TF32 tensor-core math (the precise LM head).
    void gemm_tf32(const float* xin, int n, int in, const DeviceBuffer& w, int out, float* y, const char* name) {
        if (n <= 0) return;
        const float alpha = 1.0f, beta = 0.0f;
        const double flops = 2.0 * n * out * static_cast<double>(in);
        const double bytes_moved = 4.0 * (static_cast<double>(n) * in + static_cast<double>(out) * in) +
                                   4.0 * n * static_cast<double>(out);
        if (KernelCollector::active()) {
            KernelRecord r;
            r.name = name;
            r.phase = "gemm";
            r.flops = flops;
            r.bytes = bytes_moved;
            gemm_log.push_back(std::move(r));
        }
        LaunchTag tag("gemm", name, flops, bytes_moved, nullptr, -1);
        cublas_check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w.data(), CUDA_R_32F, in, xin,
                                  CUDA_R_32F, in, &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F_FAST_TF32,
                                  CUBLAS_GEMM_DEFAULT),
                     name);
    }

    void norm(const float* xin, const DeviceBuffer& weight, int n_tokens, int dim, float eps, bf16* out, int layer) {
        kern::RmsNormOp op;
        op.x = xin;
        op.ldx = dim;
        op.weight = static_cast<const float*>(weight.data());
        op.y_bf16 = out;
        op.ldy = dim;
        op.n_tokens = n_tokens;
        op.n = dim;
        op.eps = eps;
        LaunchTag tag("norm", "rms_norm", 4.0 * n_tokens * dim, 4.0 * n_tokens * dim + 2.0 * n_tokens * dim, nullptr,
                      layer);
        kern::rms_norm_launch(op, nullptr);
    }

    void rope(const float* in, long ld_in, const float* bias, float* out, bf16* out_bf16, int n, int heads, int hd,
              int rot_dim, const DeviceBuffer& cs, const DeviceBuffer& sn, int layer, const char* name) {
        kern::RopeOp op;
        op.in = in;
        op.ld_in = ld_in;
        op.bias = bias;
        op.out = out;
        op.out_bf16 = out_bf16;
        op.n_tokens = n;
        op.heads = heads;
        op.head_dim = hd;
        op.rot_dim = rot_dim;
        op.cos = static_cast<const float*>(cs.data());
        op.sin = static_cast<const float*>(sn.data());
        const double elems = static_cast<double>(n) * heads * hd;
        LaunchTag tag("rope", name, 3.0 * elems * rot_dim / hd, elems * (4.0 + (out ? 4 : 0) + (out_bf16 ? 2 : 0)),
                      nullptr, layer);
        kern::rope_launch(op, nullptr);
    }

    ForwardResult run(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options);
};

ForwardResult ForwardEngine::Impl::run(const Model& model, const std::vector<int>& toks, const ForwardOptions& options) {
    validate_forward_inputs(model, toks);
    ensure_handle();
    load(model);
    const ModelConfig& c = model.config;
    const int n = static_cast<int>(toks.size());
    const int D = c.hidden, Hq = c.n_heads, Hkv = c.n_kv_heads, d = c.head_dim, F = c.ffn, L = c.n_layers;
    const int qd = Hq * d, kvd = Hkv * d, W = qd + 2 * kvd;
    const int V = model.lm_head().rows;
    const int threads = std::max(1, options.threads);
    const bool hook = static_cast<bool>(options.attention);
    const bool trained_index = hook && model.has_index_weights();
    // The device flash attention handles these head sizes; others use the CPU's on downloaded Q/K/V.
    const bool device_attention = !hook && (d == 64 || d == 128);
    const size_t N = static_cast<size_t>(n);

    ForwardResult result;
    auto report = [&](double fraction, const std::string& stage) {
        if (!options.progress) return true;
        // The launches are asynchronous: wait for the work reported as done.
        MSA_CUDA_CHECK(cudaDeviceSynchronize());
        if (!options.progress(fraction, stage)) {
            result.cancelled = true;
            return false;
        }
        return true;
    };

    // Buffers.
    grow(tokens, N * 4);
    grow(targets, N * 4);
    grow(x, N * D * 4);
    grow(xn, N * D * 2);
    grow(qkv, N * W * 4);
    grow(q, N * qd * 4);
    grow(k, N * kvd * 4);
    grow(v, N * kvd * 4);
    if (device_attention) {
        grow(qb, N * qd * 2);
        grow(kb, N * kvd * 2);
        grow(vb, N * kvd * 2);
    }
    grow(attn, N * qd * 2);
    if (!device_attention) grow(attn_f32, N * qd * 4);
    grow(h, N * 2 * F * 4);
    grow(act, N * F * 2);
    grow(nll, N * 4);
    grow(argmax, N * 4);

    std::vector<int32_t> host_targets(n, -1);
    for (int t = 0; t + 1 < n; ++t) host_targets[t] = toks[t + 1];
    tokens.upload(toks.data(), N * 4);
    targets.upload(host_targets.data(), N * 4);
    {
        // The CPU forward's own tables, so both rotate by the same float angles.
        const RopeTable rope = make_rope_table(c, d, n);
        grow(rope_cos, rope.cos.size() * 4);
        grow(rope_sin, rope.sin.size() * 4);
        rope_cos.upload(rope.cos.data(), rope.cos.size() * 4);
        rope_sin.upload(rope.sin.data(), rope.sin.size() * 4);
        if (trained_index) {
            const RopeTable index_rope = make_rope_table(c, index_dim / 2, n);
            grow(idx_cos, index_rope.cos.size() * 4);
            grow(idx_sin, index_rope.sin.size() * 4);
            idx_cos.upload(index_rope.cos.data(), index_rope.cos.size() * 4);
            idx_sin.upload(index_rope.sin.data(), index_rope.sin.size() * 4);
            grow(idx_proj, N * (Hkv + 1) * index_dim * 4);
            grow(idx_q, N * Hkv * index_dim * 4);
            grow(idx_k, N * index_dim * 4);
        }
    }

    float* xp = static_cast<float*>(x.data());
    bf16* xnp = static_cast<bf16*>(xn.data());
    float* qkvp = static_cast<float*>(qkv.data());
    float* qp = static_cast<float*>(q.data());
    float* kp = static_cast<float*>(k.data());
    float* vp = static_cast<float*>(v.data());
    bf16* attnp = static_cast<bf16*>(attn.data());

    {
        kern::EmbeddingOp op;
        op.table = static_cast<const bf16*>(embedding.data());
        op.tokens = static_cast<const int32_t*>(tokens.data());
        op.out = xp;
        op.n_tokens = n;
        op.dim = D;
        op.vocab = model.token_embedding.rows;
        LaunchTag tag("embedding", "embedding", 0, N * D * 6.0, nullptr, -1);
        kern::embedding_launch(op, nullptr);
    }

    // Host copies for the hook.
    std::vector<float> hq, hk, hv, hout;
    QKV host_qkv;
    host_qkv.shape.n_tokens = n;
    host_qkv.shape.n_heads = Hq;
    host_qkv.shape.n_kv_heads = Hkv;
    host_qkv.shape.head_dim = d;
    if (!device_attention) {
        hq.resize(N * qd);
        hk.resize(N * kvd);
        hv.resize(N * kvd);
        hout.resize(N * qd);
        host_qkv.q = hq.data();
        host_qkv.k = hk.data();
        host_qkv.v = hv.data();
    }

    for (int l = 0; l < L; ++l) {
        if (!report(static_cast<double>(l) / (L + 1), "layer " + std::to_string(l + 1) + "/" + std::to_string(L)))
            return result;
        DeviceLayer& w = layers[l];

        // Attention block.
        norm(xp, w.attn_norm, n, D, c.rms_eps, xnp, l);
        gemm(xnp, n, D, D, w.wqkv, W, qkvp, W, false, "attn_qkv", l);
        const float* bias = static_cast<const float*>(w.bqkv.data());
        rope(qkvp, W, bias, qp, device_attention ? static_cast<bf16*>(qb.data()) : nullptr, n, Hq, d, d, rope_cos,
             rope_sin, l, "rope_q");
        rope(qkvp + qd, W, bias ? bias + qd : nullptr, kp, device_attention ? static_cast<bf16*>(kb.data()) : nullptr,
             n, Hkv, d, d, rope_cos, rope_sin, l, "rope_k");
        rope(qkvp + qd + kvd, W, bias ? bias + qd + kvd : nullptr, vp,
             device_attention ? static_cast<bf16*>(vb.data()) : nullptr, n, Hkv, d, 0, rope_cos, rope_sin, l, "copy_v");

        if (device_attention) {
            kern::DenseAttentionOp op;
            op.q = static_cast<const bf16*>(qb.data());
            op.k = static_cast<const bf16*>(kb.data());
            op.v = static_cast<const bf16*>(vb.data());
            op.out = attnp;
            op.n_q = op.n_kv = n;
            op.n_heads = Hq;
            op.n_kv_heads = Hkv;
            op.head_dim = d;
            op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
            const size_t scratch = kern::dense_attention_scratch_bytes(op);
            grow(attn_scratch, scratch);
            op.scratch = scratch ? attn_scratch.data() : nullptr;
            op.scratch_bytes = attn_scratch.bytes();
            const double flops = 4.0 * Hq * d * causal_pairs(n);
            const double bytes_moved = 2.0 * (2.0 * N * qd + 2.0 * N * kvd);
            LaunchTag tag("dense", "dense_attention", flops, bytes_moved, nullptr, l);
            kern::dense_attention_launch(op, nullptr);
        } else {
            q.download(hq.data(), N * qd * 4);
            k.download(hk.data(), N * kvd * 4);
            v.download(hv.data(), N * kvd * 4);
            if (!hook) {
                msa::dense_attention(host_qkv, hout.data(), threads);
            } else if (trained_index) {
                // Index branch: q_idx = RMSNorm(W_q xn) per group, k_idx = RMSNorm(W_k xn), partial RoPE on the
                // first dI/2 dims (the CPU's run_index_branch layout).
                const int G = Hkv, dI = index_dim, width = (G + 1) * dI;
                float* proj = static_cast<float*>(idx_proj.data());
                gemm(xnp, n, D, D, w.index_w, width, proj, width, false, "index_qk", l);
                kern::RmsNormOp nq;
                nq.x = proj;
                nq.ldx = width;
                nq.weight = static_cast<const float*>(w.index_q_norm.data());
                nq.weight_per_head = index_q_norm_per_head;
                nq.y_f32 = static_cast<float*>(idx_q.data());
                nq.ldy = static_cast<long>(G) * dI;
                nq.n_tokens = n;
                nq.heads = G;
                nq.n = dI;
                nq.eps = c.rms_eps;
                kern::RmsNormOp nk = nq;
                nk.x = proj + static_cast<size_t>(G) * dI;
                nk.weight = static_cast<const float*>(w.index_k_norm.data());
                nk.weight_per_head = false;
                nk.y_f32 = static_cast<float*>(idx_k.data());
                nk.ldy = dI;
                nk.heads = 1;
                {
                    LaunchTag tag("index", "index_norm", 4.0 * N * width, 8.0 * N * width, nullptr, l);
                    kern::rms_norm_launch(nq, nullptr);
                    kern::rms_norm_launch(nk, nullptr);
                }
                float* iq = static_cast<float*>(idx_q.data());
                float* ik = static_cast<float*>(idx_k.data());
                rope(iq, static_cast<long>(G) * dI, nullptr, iq, nullptr, n, G, dI, dI / 2, idx_cos, idx_sin, l,
                     "index_rope_q");
                rope(ik, dI, nullptr, ik, nullptr, n, 1, dI, dI / 2, idx_cos, idx_sin, l, "index_rope_k");
                IndexInputs index;
                index.n_tokens = n;
                index.n_groups = G;
                index.n_key_heads = 1;
                index.dim = dI;
                index.scale = 1.0f / std::sqrt(static_cast<float>(dI));
                index.q.resize(N * G * dI);
                index.k.resize(N * dI);
                idx_q.download(index.q.data(), index.q.size() * 4);
                idx_k.download(index.k.data(), index.k.size() * 4);
                options.attention(l, host_qkv, &index, hout.data());
            } else {
                options.attention(l, host_qkv, nullptr, hout.data());
            }
            attn_f32.upload(hout.data(), N * qd * 4);
            kern::ConvertOp op;
            op.in = static_cast<const float*>(attn_f32.data());
            op.out = attnp;
            op.count = N * qd;
            LaunchTag tag("convert", "attn_out_to_bf16", 0, 6.0 * N * qd, nullptr, l);
            kern::convert_f32_bf16_launch(op, nullptr);
        }
        gemm(attnp, n, qd, qd, w.wo, D, xp, D, true, "attn_out", l);

        // Feed-forward block.
        norm(xp, w.ffn_norm, n, D, c.rms_eps, xnp, l);
        float* hp = static_cast<float*>(h.data());
        bf16* actp = static_cast<bf16*>(act.data());
        gemm(xnp, n, D, D, w.w_gate_up, 2 * F, hp, 2 * F, false, "ffn_gate_up", l);
        {
            kern::SwigluOp op;
            op.gate_up = hp;
            op.ld_in = 2 * F;
            op.out = actp;
            op.ld_out = F;
            op.n_tokens = n;
            op.ffn = F;
            LaunchTag tag("swiglu", "swiglu", 5.0 * N * F, 10.0 * N * F, nullptr, l);
            kern::swiglu_launch(op, nullptr);
        }
        gemm(actp, n, F, F, w.w_down, D, xp, D, true, "ffn_down", l);
    }
    if (!report(static_cast<double>(L) / (L + 1), "lm head")) return result;

    // Final norm and LM head, in row chunks whose fp32 logits stay under 256 MB.
    const DeviceBuffer& head_w = head.bytes() ? head : embedding;
    float* xn_f32 = nullptr;
    if (precise_head) {
        // The fp32 final-norm output reuses the gate|up buffer (free after the last layer).
        grow(h, N * std::max(2 * F, D) * 4);
        xn_f32 = static_cast<float*>(h.data());
        kern::RmsNormOp op;
        op.x = xp;
        op.ldx = D;
        op.weight = static_cast<const float*>(output_norm.data());
        op.y_f32 = xn_f32;
        op.ldy = D;
        op.n_tokens = n;
        op.n = D;
        op.eps = c.rms_eps;
        LaunchTag tag("norm", "rms_norm", 4.0 * N * D, 8.0 * N * D, nullptr, -1);
        kern::rms_norm_launch(op, nullptr);
    } else {
        norm(xp, output_norm, n, D, c.rms_eps, xnp, -1);
    }
    const int chunk = static_cast<int>(std::clamp<size_t>((256u << 20) / (static_cast<size_t>(V) * 4), 1, N));
    grow(logits, static_cast<size_t>(chunk) * V * 4);
    if (options.keep_logits) result.logits.resize(N * V);
    float* lp = static_cast<float*>(logits.data());
    for (int r0 = 0; r0 < n; r0 += chunk) {
        const int rows = std::min(chunk, n - r0);
        if (precise_head)
            gemm_tf32(xn_f32 + static_cast<size_t>(r0) * D, rows, D, head_f32, V, lp, "lm_head");
        else
            gemm(xnp + static_cast<size_t>(r0) * D, rows, D, D, head_w, V, lp, V, false, "lm_head", -1);
        kern::LogitsStatsOp op;
        op.logits = lp;
        op.ld = V;
        op.rows = rows;
        op.vocab = V;
        op.targets = static_cast<const int32_t*>(targets.data()) + r0;
        op.nll = static_cast<float*>(nll.data()) + r0;
        op.argmax = static_cast<int32_t*>(argmax.data()) + r0;
        {
            LaunchTag tag("lm_head", "logits_stats", 4.0 * rows * static_cast<double>(V), 4.0 * rows * static_cast<double>(V),
                          nullptr, -1);
            kern::logits_stats_launch(op, nullptr);
        }
        if (options.keep_logits)
            logits.download(result.logits.data() + static_cast<size_t>(r0) * V, static_cast<size_t>(rows) * V * 4);
        if (!report((L + static_cast<double>(r0 + rows) / n) / (L + 1), "lm head")) return result;
    }
    result.argmax.resize(n);
    argmax.download(result.argmax.data(), N * 4);
    if (n > 1) {
        result.nll.resize(n - 1);
        nll.download(result.nll.data(), (N - 1) * 4);
    }
    MSA_CUDA_CHECK(cudaGetLastError());
    return result;
}

// ---- public ---------------------------------------------------------------------------------
ForwardEngine::ForwardEngine() : impl_(std::make_unique<Impl>()) {}
ForwardEngine::~ForwardEngine() = default;

ForwardResult ForwardEngine::forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options) {
    std::string why;
    if (!cuda_available(&why)) throw InputError("no CUDA device: " + why);
    std::lock_guard<std::mutex> lock(impl_->mutex);
    return impl_->run(model, tokens, options);
}

size_t ForwardEngine::weight_bytes() const { return impl_->loaded ? impl_->bytes : 0; }

void ForwardEngine::set_precise_lm_head(bool on) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->precise_head = on;  // the next forward re-uploads (the fingerprint includes it)
}

void ForwardEngine::release() {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    Impl& m = *impl_;
    m.release_weights();
    for (DeviceBuffer* b : {&m.staging, &m.tokens, &m.targets, &m.x, &m.xn, &m.qkv, &m.q, &m.k, &m.v, &m.qb, &m.kb,
                            &m.vb, &m.attn, &m.attn_f32, &m.h, &m.act, &m.logits, &m.nll, &m.argmax, &m.rope_cos,
                            &m.rope_sin, &m.idx_cos, &m.idx_sin, &m.idx_proj, &m.idx_q, &m.idx_k, &m.attn_scratch})
        *b = DeviceBuffer();
}

std::vector<KernelRecord> ForwardEngine::take_gemm_log() {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    std::vector<KernelRecord> out;
    out.swap(impl_->gemm_log);
    return out;
}

ForwardEngine& default_forward_engine() {
    // Never destroyed: freeing device memory and the cuBLAS handle from a static
    // destructor can run after the CUDA runtime has shut down.
    static ForwardEngine* engine = new ForwardEngine();
    return *engine;
}

ForwardResult forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options) {
    return default_forward_engine().forward(model, tokens, options);
}

}  // namespace msa::cuda
