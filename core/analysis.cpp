#include "core/clock.h"
#include "core/analysis.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <sstream>

#include "core/backend.h"
#include "core/errors.h"
#include "core/flops.h"

namespace msa {
namespace {



void validate(const Model& model, const std::vector<int>& tokens, const AnalysisOptions& options) {
    const auto& c = options.config;
    if (c.k < 1) throw InputError("k must be at least 1 (got " + std::to_string(c.k) + ")");
    if (c.block < 1) throw InputError("block size must be at least 1 (got " + std::to_string(c.block) + ")");
    if (c.sink != 0 && c.sink != 1) throw InputError("sink must be 0 or 1 (got " + std::to_string(c.sink) + ")");
    if (tokens.size() < 2) throw InputError("need at least 2 tokens to analyse (got " + std::to_string(tokens.size()) + ")");
    if (c.index == IndexKind::trained && !model.has_index_weights())
        throw InputError("--index trained: the model has no trained index weights; use --index free");
    for (int layer : options.layers)
        if (layer < 0 || layer >= model.config.n_layers)
            throw InputError("layer " + std::to_string(layer) + " is out of range (the model has " +
                             std::to_string(model.config.n_layers) + " layers)");
}

// One layer's diagnostics on the dense forward's own Q/K/V: what MSA would
// select there, how much dense mass that keeps, and how far its output is.
// The selection and the MSA output come from the backend; the dense block mass
// and recall are CPU functions of the same Q/K/V.
LayerResult diagnose_layer(int layer, const QKV& qkv, const IndexInputs& index, const float* dense_out,
                           const AnalysisOptions& options, const ComputeBackend& backend, CaptureLevel capture,
                           LayerCapture* captured) {
    const AttentionShape& s = qkv.shape;
    const size_t out_size = static_cast<size_t>(s.n_tokens) * s.n_heads * s.head_dim;
    std::vector<float> msa_out(out_size);
    MsaLayerOutput msa_layer;
    msa_layer.selection = backend.select_blocks(index, options.config,
                                                capture == CaptureLevel::full ? &msa_layer.scores : nullptr,
                                                options.threads);
    backend.sparse_attention(qkv, msa_layer.selection, options.config.block, msa_out.data(), options.threads);
    BlockMass mass = dense_block_mass(qkv, options.config.block, options.threads);
    std::vector<float> recall = attention_recall(mass, msa_layer.selection, s.group_size());

    LayerResult r;
    r.layer = layer;
    double sum = 0;
    for (float x : recall) sum += x;
    r.recall_mean = sum / recall.size();
    r.recall_p5 = quantile(recall, 0.05);
    r.recall_p50 = quantile(recall, 0.50);
    r.output_rel_error = relative_error(msa_out.data(), dense_out, out_size);

    r.head_recall_mean.assign(s.n_heads, 0.0);
    r.head_rel_error.assign(s.n_heads, 0.0);
    r.group_recall_mean.assign(s.n_kv_heads, 0.0);
    std::vector<double> diff2(s.n_heads, 0.0), ref2(s.n_heads, 0.0);
    for (int t = 0; t < s.n_tokens; ++t) {
        for (int h = 0; h < s.n_heads; ++h) {
            r.head_recall_mean[h] += recall[static_cast<size_t>(t) * s.n_heads + h];
            const size_t base = (static_cast<size_t>(t) * s.n_heads + h) * s.head_dim;
            for (int i = 0; i < s.head_dim; ++i) {
                double d = static_cast<double>(msa_out[base + i]) - dense_out[base + i];
                diff2[h] += d * d;
                ref2[h] += static_cast<double>(dense_out[base + i]) * dense_out[base + i];
            }
        }
    }
    for (int h = 0; h < s.n_heads; ++h) {
        r.head_recall_mean[h] /= s.n_tokens;
        r.head_rel_error[h] = ref2[h] > 0 ? std::sqrt(diff2[h] / ref2[h]) : (diff2[h] > 0 ? INFINITY : 0.0);
        r.group_recall_mean[h / s.group_size()] += r.head_recall_mean[h] / s.group_size();
    }

    if (captured && capture != CaptureLevel::none) {
        captured->layer = layer;
        captured->selection = std::move(msa_layer.selection);
        if (capture == CaptureLevel::full) {
            captured->scores = std::move(msa_layer.scores);
            captured->mass = std::move(mass);
            captured->recall = std::move(recall);
            if (options.keep_qkv) {
                captured->q.assign(qkv.q, qkv.q + out_size);
                const size_t kv_size = static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim;
                captured->k.assign(qkv.k, qkv.k + kv_size);
                captured->v.assign(qkv.v, qkv.v + kv_size);
                captured->qkv_shape = s;
            }
        }
    }
    return r;
}

}  // namespace

double needle_hit_rate(const std::vector<LayerCapture>& captures, const std::vector<Needle>& needles, int block) {
    long hits = 0, total = 0;
    for (const LayerCapture& c : captures) {
        const Selection& sel = c.selection;
        if (sel.n_tokens == 0) continue;
        for (const Needle& needle : needles) {
            if (needle.question_token < 0 || needle.question_token >= sel.n_tokens) continue;
            const int first = needle.token_begin / block;
            const int last = std::max(needle.token_begin, needle.token_end - 1) / block;
            for (int g = 0; g < sel.n_groups; ++g) {
                const int32_t* row = sel.row(needle.question_token, g);
                bool hit = false;
                for (int i = 0; i < sel.slots && !hit; ++i) hit = row[i] >= first && row[i] <= last;
                hits += hit;
                ++total;
            }
        }
    }
    return total ? static_cast<double>(hits) / total : NAN;
}

AttentionFn msa_attention_hook(const ComputeBackend& backend, const MsaConfig& config, int threads) {
    return [&backend, config, threads](int, const QKV& qkv, const IndexInputs* index, float* out) {
        IndexInputs free_index;
        if (config.index == IndexKind::free || !index) {
            free_index = free_index_inputs(qkv);
            index = &free_index;
        }
        Selection selection = backend.select_blocks(*index, config, nullptr, threads);
        backend.sparse_attention(qkv, selection, config.block, out, threads);
    };
}

RunResult make_run_identity(const Model& model, const std::vector<int>& tokens, const std::string& text,
                            const AnalysisOptions& options) {
    const ModelConfig& mc = model.config;
    const MsaConfig& config = options.config;
    RunResult result;
    result.model_path = model.path;
    result.model_hash = model.file_hash;
    result.model_format = model.format;
    result.quantization = model.quantization;
    result.model_config = mc;
    result.text = text;
    result.tokens = tokens;
    result.config = config;
    const ComputeBackend& backend = options.backend ? *options.backend : cpu_backend();
    result.backend = backend.name();
    result.device = backend.device();
    result.threads = options.threads;
    result.started_unix_ms = unix_ms();
    if (!budget_has_free_slot(config)) {
        result.warnings.push_back("k = " + std::to_string(config.k) + " with sink = " + std::to_string(config.sink) +
                                  " leaves no free slot: only the forced blocks are kept, so retrieval of distant "
                                  "facts is impossible (the budget floor)");
    }
    if (mc.context_length > 0 && static_cast<int>(tokens.size()) > mc.context_length) {
        result.warnings.push_back(std::to_string(tokens.size()) + " tokens exceed the model's trained context of " +
                                  std::to_string(mc.context_length) + ": perplexity past it says little");
    }

    return result;
}

RunResult analyze(const Model& model, const std::vector<int>& tokens, const std::string& text,
                  const AnalysisOptions& options) {
    validate(model, tokens, options);
    const ModelConfig& mc = model.config;
    const MsaConfig& config = options.config;

    RunResult result = make_run_identity(model, tokens, text, options);
    const ComputeBackend& backend = options.backend ? *options.backend : cpu_backend();
    backend.take_kernel_records();  // drop launches made before this run
    backend.take_warnings();

    std::set<int> analysed;
    if (options.layers.empty())
        for (int l = 0; l < mc.n_layers; ++l) analysed.insert(l);
    else
        analysed.insert(options.layers.begin(), options.layers.end());
    std::set<int> full_capture;
    if (options.capture == CaptureLevel::full) {
        if (options.capture_layers.empty())
            full_capture = analysed;
        else
            full_capture.insert(options.capture_layers.begin(), options.capture_layers.end());
    }

    // Progress: the diagnostic pass costs about twice a plain forward (dense
    // attention, the MSA branch and the dense block mass per layer).
    const int n_forwards = 1 + (options.perplexity ? 1 : 0) +
                           (options.perplexity && options.random_control && config.scorer != Scorer::random ? 1 : 0);
    const double weights_total = 2.0 + (n_forwards - 1);
    double progress_done = 0;
    auto stage_progress = [&](double weight) -> ProgressFn {
        double base = progress_done;
        return [&options, base, weight, weights_total](double f, const std::string& stage) {
            if (!options.progress) return true;
            return options.progress((base + weight * f) / weights_total, stage);
        };
    };

    // 1. Dense forward: the model runs on dense attention; each analysed layer
    //    also runs the MSA branch on the same Q/K/V for recall and error.
    ForwardOptions dense_options;
    dense_options.threads = options.threads;
    dense_options.progress = stage_progress(2.0);
    dense_options.attention = [&](int layer, const QKV& qkv, const IndexInputs* index, float* out) {
        backend.dense_attention(qkv, out, options.threads);
        if (!analysed.count(layer)) return;
        IndexInputs free_index;
        if (config.index == IndexKind::free || !index) {
            free_index = free_index_inputs(qkv);
            index = &free_index;
        }
        CaptureLevel level = options.capture;
        if (level == CaptureLevel::full && !full_capture.count(layer)) level = CaptureLevel::selections;
        LayerCapture capture;
        result.layers.push_back(diagnose_layer(layer, qkv, *index, out, options, backend, level, &capture));
        if (level != CaptureLevel::none) result.captures.push_back(std::move(capture));
    };
    double t0 = now_ms();
    ForwardResult dense = backend.forward(model, tokens, dense_options);
    result.timings.push_back({"dense forward + diagnostics", now_ms() - t0});
    if (dense.cancelled) throw std::runtime_error("cancelled");
    result.perplexity_dense = dense.perplexity();
    progress_done += 2.0;

    // 2. Perplexity with MSA in every attention layer, and with the random control.
    auto msa_forward = [&](const MsaConfig& msa_config, const std::string& stage_name) {
        ForwardOptions o;
        o.threads = options.threads;
        o.progress = stage_progress(1.0);
        o.attention = msa_attention_hook(backend, msa_config, options.threads);
        double start = now_ms();
        ForwardResult r = backend.forward(model, tokens, o);
        result.timings.push_back({stage_name, now_ms() - start});
        if (r.cancelled) throw std::runtime_error("cancelled");
        progress_done += 1.0;
        return r.perplexity();
    };
    if (options.perplexity) {
        result.perplexity_msa = msa_forward(config, "msa forward");
        if (options.random_control && config.scorer != Scorer::random) {
            MsaConfig random_config = config;
            random_config.scorer = Scorer::random;
            result.perplexity_random = msa_forward(random_config, "random-control forward");
        } else if (config.scorer == Scorer::random) {
            result.perplexity_random = result.perplexity_msa;
        }
    }

    // Analytic attention FLOPs of the whole run (all layers, one prefill).
    const int n = static_cast<int>(tokens.size());
    const int index_heads = mc.n_kv_heads;  // training-free: one index head per group, dim = head_dim
    result.dense_attention_flops = mc.n_layers * dense_attention_flops(n, mc.n_heads, mc.head_dim);
    result.msa_attention_flops =
        mc.n_layers * (sparse_attention_flops(n, mc.n_heads, mc.head_dim, config.k, config.block) +
                       index_flops(n, index_heads, mc.head_dim));
    result.needles = options.needles;
    if (!options.needles.empty()) {
        if (options.capture == CaptureLevel::none)
            result.warnings.push_back("needle hit rate needs captured selections (capture level none)");
        result.needle_hit_rate = needle_hit_rate(result.captures, options.needles, config.block);
    }
    result.kernels = backend.take_kernel_records();
    for (std::string& w : backend.take_warnings()) result.warnings.push_back(std::move(w));
    result.finished_unix_ms = unix_ms();
    return result;
}

}  // namespace msa
