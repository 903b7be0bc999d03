// load_model / load_model_config / load_vocabulary / default_model_path:
// GGUF files and Hugging Face folders, dequantized to float32 at load.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/dequant.h"
#include "core/errors.h"
#include "core/gguf.h"
#include "core/model.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "core/sha256.h"

namespace msa {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------
// paths

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string join_path(const std::string& dir, const std::string& name) {
    if (dir.empty() || dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

enum class Format { Gguf, HuggingFace };

// A file starting with "GGUF" is a GGUF model; a folder (or a file inside one,
// such as its config.json or a .safetensors shard) is a Hugging Face model.
Format detect_format(const std::string& path, std::string& hf_dir) {
    if (is_directory(path)) {
        hf_dir = path;
        return Format::HuggingFace;
    }
    if (!is_regular_file(path)) throw InputError(path + ": no such model file or folder");
    if (ends_with(path, ".safetensors") || ends_with(path, "config.json") || ends_with(path, ".safetensors.index.json")) {
        size_t slash = path.find_last_of('/');
        hf_dir = slash == std::string::npos ? "." : path.substr(0, slash);
        return Format::HuggingFace;
    }
    FileView view(path);
    if (view.size() >= 4 && std::memcmp(view.data(), "GGUF", 4) == 0) return Format::Gguf;
    throw InputError(path + ": not a GGUF file (bad magic) nor a Hugging Face model folder");
}

// ---------------------------------------------------------------------------
// config checks shared by both formats

void validate_config(ModelConfig& c, const std::string& label) {
    auto fail = [&](const std::string& what) { throw InputError(label + ": " + what); };
    if (c.n_layers < 1 || c.n_layers > 4096) fail("layer count " + std::to_string(c.n_layers) + " is out of range");
    if (c.hidden < 1 || c.hidden > (1 << 17)) fail("hidden size " + std::to_string(c.hidden) + " is out of range");
    if (c.n_heads < 1 || c.n_heads > 4096) fail("head count " + std::to_string(c.n_heads) + " is out of range");
    if (c.n_kv_heads < 1 || c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0)
        fail("KV head count " + std::to_string(c.n_kv_heads) + " does not divide the head count " + std::to_string(c.n_heads));
    if (c.head_dim < 2 || c.head_dim > 1024 || c.head_dim % 2 != 0)
        fail("head dimension " + std::to_string(c.head_dim) + " is out of range (even, 2..1024)");
    if (c.ffn < 1 || c.ffn > (1 << 20)) fail("feed-forward size " + std::to_string(c.ffn) + " is out of range");
    if (c.vocab < 1 || c.vocab > (1 << 22)) fail("vocabulary size " + std::to_string(c.vocab) + " is out of range");
    if (c.context_length < 1) fail("context length " + std::to_string(c.context_length) + " is out of range");
    if (!(c.rms_eps > 0) || !std::isfinite(c.rms_eps)) fail("RMSNorm epsilon is not a positive number");
    if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) fail("RoPE theta is not a positive number");
    if (c.rope_scaling.type != "none" && (!(c.rope_scaling.factor > 0) || !std::isfinite(c.rope_scaling.factor)))
        fail("RoPE scaling factor is not a positive number");
}

int checked_int(int64_t value, const std::string& label, const std::string& key) {
    if (value < 0 || value > std::numeric_limits<int>::max())
        throw InputError(label + ": " + key + " = " + std::to_string(value) + " is out of range");
    return static_cast<int>(value);
}

// ---------------------------------------------------------------------------
// tensors of either format, seen the same way

struct SourceTensor {
    std::string name;
    std::string file;            // for messages
    GgmlType type = GgmlType::F32;
    const uint8_t* data = nullptr;
    uint64_t rows = 1, cols = 0; // row-major view: rows x cols
    uint64_t row_bytes = 0;
};

// Where dequantized floats go, plus an optional row permutation.
struct WeightJob {
    SourceTensor source;
    std::vector<float>* destination = nullptr;
    // > 0: undo llama.cpp's Q/K row interleaving, per head of `permute_head_dim` rows.
    int permute_head_dim = 0;
};

class TensorTable {
public:
    virtual ~TensorTable() = default;
    virtual bool has(const std::string& name) const = 0;
    // The tensor `name` as a rows x cols matrix (or a vector of `length`);
    // throws InputError when missing, of the wrong shape, or of a type we cannot read.
    virtual SourceTensor matrix(const std::string& name, uint64_t rows, uint64_t cols) const = 0;
    virtual SourceTensor vector(const std::string& name, uint64_t length) const = 0;
    // rows x cols (row-major) of a 2-D tensor; false when absent or not 2-D.
    virtual bool matrix_shape(const std::string& name, uint64_t& rows, uint64_t& cols) const = 0;
};

std::string shape_text(uint64_t rows, uint64_t cols) {
    return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

class GgufTable : public TensorTable {
public:
    explicit GgufTable(const GgufFile& file) : file_(file) {}
    bool has(const std::string& name) const override { return file_.find_tensor(name) != nullptr; }

    SourceTensor matrix(const std::string& name, uint64_t rows, uint64_t cols) const override {
        const GgufTensorInfo& info = lookup(name);
        // GGUF lists dims fastest-first: [cols, rows].
        bool ok = info.dims.size() >= 2 && info.dims[0] == cols && info.dims[1] == rows;
        for (size_t d = 2; ok && d < info.dims.size(); ++d) ok = info.dims[d] == 1;
        if (!ok) throw InputError(file_.path() + ": tensor " + name + " has shape " + dims_text(info) +
                                  ", expected " + shape_text(cols, rows) + " (GGUF order)");
        return make(info, rows, cols);
    }

    SourceTensor vector(const std::string& name, uint64_t length) const override {
        const GgufTensorInfo& info = lookup(name);
        bool ok = !info.dims.empty() && info.dims[0] == length;
        for (size_t d = 1; ok && d < info.dims.size(); ++d) ok = info.dims[d] == 1;
        if (!ok) throw InputError(file_.path() + ": tensor " + name + " has shape " + dims_text(info) +
                                  ", expected [" + std::to_string(length) + "]");
        return make(info, 1, length);
    }

    bool matrix_shape(const std::string& name, uint64_t& rows, uint64_t& cols) const override {
        const GgufTensorInfo* info = file_.find_tensor(name);
        if (!info || info->dims.size() != 2) return false;
        cols = info->dims[0];
        rows = info->dims[1];
        return true;
    }

private:
    const GgufTensorInfo& lookup(const std::string& name) const {
        const GgufTensorInfo* info = file_.find_tensor(name);
        if (!info) throw InputError(file_.path() + ": required tensor " + name + " is missing");
        GgmlTypeTraits traits = ggml_type_traits(info->type);
        if (!traits.name) throw InputError(file_.path() + ": tensor " + name + " has unknown type id " + std::to_string(info->type));
        if (!traits.dequantizable)
            throw InputError(file_.path() + ": tensor " + name + " has type " + traits.name + ", which msascope cannot dequantize");
        return *info;
    }
    static std::string dims_text(const GgufTensorInfo& info) {
        std::string s = "[";
        for (size_t d = 0; d < info.dims.size(); ++d) s += (d ? ", " : "") + std::to_string(info.dims[d]);
        return s + "]";
    }
    SourceTensor make(const GgufTensorInfo& info, uint64_t rows, uint64_t cols) const {
        SourceTensor t;
        t.name = info.name;
        t.file = file_.path();
        t.type = static_cast<GgmlType>(info.type);
        t.data = file_.tensor_data(info);
        t.rows = rows;
        t.cols = cols;
        t.row_bytes = rows ? info.n_bytes / rows : 0;
        return t;
    }
    const GgufFile& file_;
};

bool safetensors_float_type(const std::string& dtype, GgmlType& type) {
    if (dtype == "F32") type = GgmlType::F32;
    else if (dtype == "F16") type = GgmlType::F16;
    else if (dtype == "BF16") type = GgmlType::BF16;
    else return false;
    return true;
}

class SafetensorsTable : public TensorTable {
public:
    // Shards in the order given; a tensor name may live in one shard only.
    explicit SafetensorsTable(const std::vector<std::unique_ptr<SafetensorsFile>>& shards) {
        for (const auto& shard : shards)
            for (const auto& tensor : shard->tensors())
                if (!where_.emplace(tensor.name, std::make_pair(shard.get(), &tensor)).second)
                    throw InputError(shard->path() + ": tensor " + tensor.name + " also appears in another shard");
    }
    bool has(const std::string& name) const override { return where_.count(name) != 0; }

    SourceTensor matrix(const std::string& name, uint64_t rows, uint64_t cols) const override {
        auto [file, tensor] = lookup(name);
        if (tensor->shape.size() != 2 || tensor->shape[0] != rows || tensor->shape[1] != cols)
            throw InputError(file->path() + ": tensor " + name + " has shape " + shape_of(*tensor) + ", expected " +
                             shape_text(rows, cols));
        return make(*file, *tensor, rows, cols);
    }
    SourceTensor vector(const std::string& name, uint64_t length) const override {
        auto [file, tensor] = lookup(name);
        if (tensor->shape.size() != 1 || tensor->shape[0] != length)
            throw InputError(file->path() + ": tensor " + name + " has shape " + shape_of(*tensor) + ", expected [" +
                             std::to_string(length) + "]");
        return make(*file, *tensor, 1, length);
    }

    bool matrix_shape(const std::string& name, uint64_t& rows, uint64_t& cols) const override {
        auto it = where_.find(name);
        if (it == where_.end() || it->second.second->shape.size() != 2) return false;
        rows = it->second.second->shape[0];
        cols = it->second.second->shape[1];
        return true;
    }

private:
    std::pair<const SafetensorsFile*, const SafetensorsTensor*> lookup(const std::string& name) const {
        auto it = where_.find(name);
        if (it == where_.end()) throw InputError("model folder: required tensor " + name + " is missing");
        GgmlType type;
        if (!safetensors_float_type(it->second.second->dtype, type))
            throw InputError(it->second.first->path() + ": tensor " + name + " has dtype " + it->second.second->dtype +
                             " (F32, F16 or BF16 expected)");
        return it->second;
    }
    static std::string shape_of(const SafetensorsTensor& t) {
        std::string s = "[";
        for (size_t d = 0; d < t.shape.size(); ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
        return s + "]";
    }
    static SourceTensor make(const SafetensorsFile& file, const SafetensorsTensor& tensor, uint64_t rows, uint64_t cols) {
        SourceTensor t;
        t.name = tensor.name;
        t.file = file.path();
        safetensors_float_type(tensor.dtype, t.type);
        t.data = file.tensor_data(tensor);
        t.rows = rows;
        t.cols = cols;
        t.row_bytes = cols * safetensors_dtype_size(tensor.dtype);
        return t;
    }
    std::unordered_map<std::string, std::pair<const SafetensorsFile*, const SafetensorsTensor*>> where_;
};

// Names of one layer's tensors in a file format.
struct LayerNames {
    std::string attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, w_gate, w_up, w_down;
    std::string index_wq, index_wk, index_q_norm, index_k_norm;
};

LayerNames gguf_layer_names(int layer) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    // Trained MSA index weights have no llama.cpp names; msascope reads (and
    // tests write) blk.N.index_q.weight, blk.N.index_k.weight,
    // blk.N.index_q_norm.weight, blk.N.index_k_norm.weight, stored unpermuted.
    return {p + "attn_norm.weight", p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight",
            p + "attn_output.weight", p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias",
            p + "ffn_norm.weight", p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight",
            p + "index_q.weight", p + "index_k.weight", p + "index_q_norm.weight", p + "index_k_norm.weight"};
}

LayerNames hf_layer_names(int layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    // Trained MSA index weights (optional): self_attn.index_q_proj.weight
    // [n_kv_heads * dI, hidden], self_attn.index_k_proj.weight [dI, hidden],
    // self_attn.index_q_norm.weight [dI], self_attn.index_k_norm.weight [dI].
    return {p + "input_layernorm.weight", p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
            p + "self_attn.v_proj.weight", p + "self_attn.o_proj.weight", p + "self_attn.q_proj.bias",
            p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias", p + "post_attention_layernorm.weight",
            p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight",
            p + "self_attn.index_q_proj.weight", p + "self_attn.index_k_proj.weight",
            p + "self_attn.index_q_norm.weight", p + "self_attn.index_k_norm.weight"};
}

struct GlobalNames {
    std::string embedding, output_norm, output;
};

// Collects one WeightJob per tensor of the model, with the shapes the config implies.
std::vector<WeightJob> plan_weights(Model& model, const TensorTable& table, const GlobalNames& globals,
                                    const std::function<LayerNames(int)>& layer_names, bool permute_qk,
                                    const std::string& label) {
    const ModelConfig& c = model.config;
    const uint64_t hidden = c.hidden, q_rows = uint64_t(c.n_heads) * c.head_dim,
                   kv_rows = uint64_t(c.n_kv_heads) * c.head_dim, ffn = c.ffn, vocab = c.vocab;
    std::vector<WeightJob> jobs;
    auto add_matrix = [&](Matrix& m, const std::string& name, uint64_t rows, uint64_t cols, int permute_hd = 0) {
        m.rows = static_cast<int>(rows);
        m.cols = static_cast<int>(cols);
        jobs.push_back({table.matrix(name, rows, cols), &m.data, permute_hd});
    };
    auto add_vector = [&](std::vector<float>& v, const std::string& name, uint64_t length, int permute_hd = 0) {
        jobs.push_back({table.vector(name, length), &v, permute_hd});
    };
    const int qk_permute = permute_qk ? c.head_dim : 0;

    add_matrix(model.token_embedding, globals.embedding, vocab, hidden);
    add_vector(model.output_norm, globals.output_norm, hidden);
    if (!c.tied_embeddings) add_matrix(model.output, globals.output, vocab, hidden);

    const LayerNames first = layer_names(0);
    const bool has_index = table.has(first.index_wq);
    uint64_t index_dim = 0;
    if (has_index) {
        // dI comes from the shared key head; the query holds one index head per KV group.
        const LayerNames n = first;
        if (!table.has(n.index_wk)) throw InputError(label + ": " + n.index_wq + " is present but " + n.index_wk + " is not");
        uint64_t rows = 0, cols = 0;
        if (table.matrix_shape(n.index_wk, rows, cols) && cols == hidden && rows >= 1 && rows <= 4096) index_dim = rows;
        if (!index_dim) throw InputError(label + ": " + n.index_wk + " is not an [dI, hidden] matrix");
    }

    model.layers.assign(c.n_layers, LayerWeights{});
    for (int l = 0; l < c.n_layers; ++l) {
        const LayerNames n = layer_names(l);
        LayerWeights& w = model.layers[l];
        add_vector(w.attn_norm, n.attn_norm, hidden);
        add_matrix(w.wq, n.wq, q_rows, hidden, qk_permute);
        add_matrix(w.wk, n.wk, kv_rows, hidden, qk_permute);
        add_matrix(w.wv, n.wv, kv_rows, hidden);
        add_matrix(w.wo, n.wo, hidden, q_rows);
        if (c.qkv_bias) {
            add_vector(w.bq, n.bq, q_rows, qk_permute);
            add_vector(w.bk, n.bk, kv_rows, qk_permute);
            add_vector(w.bv, n.bv, kv_rows);
        }
        add_vector(w.ffn_norm, n.ffn_norm, hidden);
        add_matrix(w.w_gate, n.w_gate, ffn, hidden);
        add_matrix(w.w_up, n.w_up, ffn, hidden);
        add_matrix(w.w_down, n.w_down, hidden, ffn);
        if (has_index) {
            add_matrix(w.index_wq, n.index_wq, uint64_t(c.n_kv_heads) * index_dim, hidden);
            add_matrix(w.index_wk, n.index_wk, index_dim, hidden);
            add_vector(w.index_q_norm, n.index_q_norm, index_dim);
            add_vector(w.index_k_norm, n.index_k_norm, index_dim);
        }
    }
    return jobs;
}

// llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the
// rows of Q and K for arch llama/mistral so that its "normal" RoPE, which
// rotates adjacent pairs (2i, 2i+1), computes what Hugging Face's rotate_half
// RoPE computes on pairs (i, i + d/2). Our forward uses the Hugging Face
// convention, so the rows are put back: within head h, GGUF row
// h*hd + 2*i + j holds HF row h*hd + j*(hd/2) + i (i < hd/2, j in {0, 1}).
// qwen2 GGUFs are not permuted: llama.cpp runs NEOX (rotate_half) RoPE for them.
inline uint64_t unpermuted_row(uint64_t gguf_row, int head_dim) {
    const uint64_t hd = static_cast<uint64_t>(head_dim);
    const uint64_t head = gguf_row / hd, within = gguf_row % hd;
    const uint64_t i = within / 2, j = within % 2;
    return head * hd + j * (hd / 2) + i;
}

// Allocates every destination, then dequantizes all tensors in row chunks over
// `threads` workers (the embedding alone is a fifth of SmolLM2, so whole-tensor
// jobs would leave cores idle).
void run_weight_jobs(std::vector<WeightJob>& jobs, int threads) {
    parallel_for_dynamic(static_cast<long>(jobs.size()), threads, [&](long j) {
        const SourceTensor& s = jobs[j].source;
        jobs[j].destination->resize(static_cast<size_t>(s.rows * s.cols));
    });
    struct Chunk {
        size_t job;
        uint64_t row_begin, row_end;
    };
    std::vector<Chunk> chunks;
    constexpr uint64_t kChunkElements = 1 << 18;
    for (size_t j = 0; j < jobs.size(); ++j) {
        const SourceTensor& s = jobs[j].source;
        if (jobs[j].permute_head_dim > 0 && s.rows == 1) {  // a bias vector: permute its elements
            chunks.push_back({j, 0, 1});
            continue;
        }
        uint64_t rows_per_chunk = std::max<uint64_t>(1, kChunkElements / std::max<uint64_t>(1, s.cols));
        for (uint64_t r = 0; r < s.rows; r += rows_per_chunk) chunks.push_back({j, r, std::min(s.rows, r + rows_per_chunk)});
    }
    parallel_for_dynamic(static_cast<long>(chunks.size()), threads, [&](long c) {
        const Chunk& chunk = chunks[c];
        const WeightJob& job = jobs[chunk.job];
        const SourceTensor& s = job.source;
        float* out = job.destination->data();
        if (job.permute_head_dim > 0 && s.rows == 1) {
            std::vector<float> plain(s.cols);
            dequantize(s.type, s.data, plain.data(), s.cols);
            for (uint64_t e = 0; e < s.cols; ++e) out[unpermuted_row(e, job.permute_head_dim)] = plain[e];
            return;
        }
        for (uint64_t r = chunk.row_begin; r < chunk.row_end; ++r) {
            uint64_t target = job.permute_head_dim > 0 ? unpermuted_row(r, job.permute_head_dim) : r;
            dequantize(s.type, s.data + r * s.row_bytes, out + target * s.cols, s.cols);
        }
    });
}

std::string dominant_type(const std::map<std::string, uint64_t>& elements_by_type) {
    std::string best;
    uint64_t most = 0;
    for (const auto& [name, count] : elements_by_type)
        if (count > most) best = name, most = count;
    return best;
}

// ---------------------------------------------------------------------------
// GGUF

bool gguf_arch_permutes_qk(const std::string& arch) { return arch == "llama" || arch == "mistral"; }

// llama.cpp stores Llama-3-style RoPE scaling as a per-frequency divisor
// tensor (rope_freqs.weight) instead of the parameters. Recover the parameters
// when the tensor matches the llama3 formula with the usual low/high factors.
void infer_llama3_scaling(const GgufFile& file, ModelConfig& c) {
    const GgufTensorInfo* info = file.find_tensor("rope_freqs.weight");
    if (!info) return;
    const uint64_t half = c.head_dim / 2;
    if (info->dims.size() != 1 || info->dims[0] != half || info->type != static_cast<uint32_t>(GgmlType::F32))
        throw InputError(file.path() + ": rope_freqs.weight should be an F32 vector of " + std::to_string(half));
    std::vector<float> divisors(half);
    dequantize(GgmlType::F32, file.tensor_data(*info), divisors.data(), half);
    RopeScaling s;
    s.type = "llama3";
    s.factor = *std::max_element(divisors.begin(), divisors.end());
    if (!(s.factor >= 1.0f) || !std::isfinite(s.factor))
        throw InputError(file.path() + ": rope_freqs.weight holds divisors below 1 or not finite");
    s.low_freq_factor = 1.0f;   // every Llama 3.x release uses these two
    s.high_freq_factor = 4.0f;
    // llama.cpp does not store the original context; try the stored key (if
    // any), the Llama 3.x value, and the values implied by the context length.
    std::vector<int64_t> candidates;
    const std::string arch = file.get_string("general.architecture", "");
    if (const GgufValue* orig = file.find(arch + ".rope.scaling.original_context_length"))
        candidates.push_back(orig->to_int(file.path(), "rope.scaling.original_context_length"));
    candidates.push_back(8192);
    candidates.push_back(static_cast<int64_t>(c.context_length / s.factor));
    candidates.push_back(c.context_length);
    for (int64_t original : candidates) {
        if (original < 1 || original > std::numeric_limits<int>::max()) continue;
        bool matches = true;
        for (uint64_t i = 0; i < half && matches; ++i) {
            const double freq = 1.0 / std::pow(double(c.rope_theta), double(2 * i) / c.head_dim);
            const double wavelen = 2 * M_PI / freq;
            const double low_wavelen = original / s.low_freq_factor, high_wavelen = original / s.high_freq_factor;
            double expected;
            if (wavelen < high_wavelen) expected = 1;
            else if (wavelen > low_wavelen) expected = s.factor;
            else {
                const double smooth = (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                expected = 1.0 / ((1 - smooth) / s.factor + smooth);
            }
            matches = std::fabs(expected - divisors[i]) <= 1e-3 * expected;
        }
        if (matches) {
            s.original_context = static_cast<int>(original);
            c.rope_scaling = s;
            return;
        }
    }
    throw InputError(file.path() + ": rope_freqs.weight does not follow the llama3 RoPE scaling formula");
}

ModelConfig gguf_config(const GgufFile& file) {
    const std::string& label = file.path();
    ModelConfig c;
    c.arch = file.get_string("general.architecture", "");
    if (c.arch.empty()) throw InputError(label + ": metadata general.architecture is missing");
    if (c.arch != "llama" && c.arch != "mistral" && c.arch != "qwen2")
        throw InputError(label + ": architecture " + c.arch + " is not supported (llama, mistral, qwen2)");
    const std::string a = c.arch + ".";
    auto per_layer_int = [&](const std::string& key, int64_t fallback, bool required) -> int {
        const GgufValue* v = file.find(key);
        if (!v) {
            if (required) throw InputError(label + ": metadata " + key + " is missing");
            return checked_int(fallback, label, key);
        }
        if (v->type != GgufValueType::ARRAY) return checked_int(v->to_int(label, key), label, key);
        // Some converters write one value per layer; we need them all equal.
        if (v->array.empty()) throw InputError(label + ": metadata " + key + " is an empty array");
        int64_t first = v->array[0].to_int(label, key);
        for (const auto& e : v->array)
            if (e.to_int(label, key) != first) throw InputError(label + ": metadata " + key + " differs between layers (not supported)");
        return checked_int(first, label, key);
    };
    c.n_layers = per_layer_int(a + "block_count", 0, true);
    c.hidden = per_layer_int(a + "embedding_length", 0, true);
    c.ffn = per_layer_int(a + "feed_forward_length", 0, true);
    c.n_heads = per_layer_int(a + "attention.head_count", 0, true);
    c.n_kv_heads = per_layer_int(a + "attention.head_count_kv", c.n_heads, false);
    if (c.n_heads < 1) throw InputError(label + ": head count is 0");
    c.head_dim = per_layer_int(a + "attention.key_length", c.hidden / c.n_heads, false);
    if (const GgufValue* v = file.find(a + "attention.value_length"))
        if (v->to_int(label, "attention.value_length") != c.head_dim)
            throw InputError(label + ": attention.value_length differs from key_length (not supported)");
    if (const GgufValue* v = file.find(a + "rope.dimension_count"))
        if (v->to_int(label, "rope.dimension_count") != c.head_dim)
            throw InputError(label + ": rope.dimension_count " + std::to_string(v->to_int(label, "")) +
                             " differs from the head dimension " + std::to_string(c.head_dim) + " (partial RoPE is not supported)");
    c.context_length = per_layer_int(a + "context_length", 0, true);
    c.rms_eps = static_cast<float>(file.get_double(a + "attention.layer_norm_rms_epsilon", 1e-5));
    c.rope_theta = static_cast<float>(file.get_double(a + "rope.freq_base", 10000.0));

    std::string scaling = file.get_string(a + "rope.scaling.type", "none");
    if (scaling == "linear") {
        c.rope_scaling.type = "linear";
        c.rope_scaling.factor = static_cast<float>(file.get_double(a + "rope.scaling.factor", 1.0));
    } else if (scaling != "none") {
        throw InputError(label + ": RoPE scaling type " + scaling + " is not supported (none, linear, llama3)");
    } else if (const GgufValue* v = file.find(a + "rope.scale_linear")) {  // older converters
        c.rope_scaling.type = "linear";
        c.rope_scaling.factor = static_cast<float>(v->to_double(label, "rope.scale_linear"));
    }

    const GgufTensorInfo* embedding = file.find_tensor("token_embd.weight");
    const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
    if (embedding && embedding->dims.size() >= 2) {
        if (embedding->dims[1] > uint64_t(1) << 22) throw InputError(label + ": token_embd.weight has an absurd row count");
        c.vocab = static_cast<int>(embedding->dims[1]);
    } else if (tokens && tokens->type == GgufValueType::ARRAY) {
        c.vocab = checked_int(static_cast<int64_t>(tokens->array.size()), label, "token count");
    }
    if (tokens && tokens->type == GgufValueType::ARRAY && tokens->array.size() > static_cast<uint64_t>(c.vocab))
        throw InputError(label + ": the tokenizer has " + std::to_string(tokens->array.size()) + " tokens but the embedding only " +
                         std::to_string(c.vocab) + " rows");
    c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
    c.qkv_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
    validate_config(c, label);
    infer_llama3_scaling(file, c);
    return c;
}

Vocabulary gguf_vocabulary(const GgufFile& file) {
    const std::string& label = file.path();
    Vocabulary v;
    v.model = file.get_string("tokenizer.ggml.model", "");
    if (v.model.empty()) throw InputError(label + ": the file holds no tokenizer (tokenizer.ggml.model is missing)");
    v.pre = file.get_string("tokenizer.ggml.pre", "default");
    const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
    if (!tokens) throw InputError(label + ": metadata tokenizer.ggml.tokens is missing");
    if (tokens->type != GgufValueType::ARRAY || tokens->element_type != GgufValueType::STRING)
        throw InputError(label + ": metadata tokenizer.ggml.tokens is not an array of strings");
    v.tokens.reserve(tokens->array.size());
    for (const auto& t : tokens->array) v.tokens.push_back(t.s);
    if (const GgufValue* types = file.find("tokenizer.ggml.token_type")) {
        if (types->type != GgufValueType::ARRAY || types->array.size() != v.tokens.size())
            throw InputError(label + ": metadata tokenizer.ggml.token_type does not have one entry per token");
        v.token_type.reserve(types->array.size());
        for (const auto& t : types->array) {
            int64_t value = t.to_int(label, "tokenizer.ggml.token_type");
            if (value < 0 || value > 6) throw InputError(label + ": token type " + std::to_string(value) + " is not a GGUF token type");
            v.token_type.push_back(static_cast<int>(value));
        }
    }
    if (const GgufValue* merges = file.find("tokenizer.ggml.merges")) {
        if (merges->type != GgufValueType::ARRAY || merges->element_type != GgufValueType::STRING)
            throw InputError(label + ": metadata tokenizer.ggml.merges is not an array of strings");
        v.merges.reserve(merges->array.size());
        for (size_t m = 0; m < merges->array.size(); ++m) {
            const std::string& text = merges->array[m].s;
            // Byte-level tokens never contain a plain space (it is encoded as 'Ġ'),
            // so the first space after the first character splits the pair.
            size_t space = text.size() > 1 ? text.find(' ', 1) : std::string::npos;
            if (space == std::string::npos || space + 1 >= text.size())
                throw InputError(label + ": merge " + std::to_string(m) + " (\"" + text.substr(0, 40) + "\") is not \"left right\"");
            v.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
        }
    }
    auto token_id = [&](const std::string& key) -> int {
        const GgufValue* id = file.find(key);
        if (!id) return -1;
        int64_t value = id->to_int(label, key);
        if (value < 0 || value >= static_cast<int64_t>(v.tokens.size()))
            throw InputError(label + ": " + key + " = " + std::to_string(value) + " is not a token id");
        return static_cast<int>(value);
    };
    v.bos_id = token_id("tokenizer.ggml.bos_token_id");
    v.eos_id = token_id("tokenizer.ggml.eos_token_id");
    v.unk_id = token_id("tokenizer.ggml.unknown_token_id");
    // llama.cpp's default when the key is absent: SentencePiece ("llama") adds BOS, BPE does not.
    v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token", v.model == "llama");
    return v;
}

// ---------------------------------------------------------------------------
// Hugging Face folder

json parse_json_file(const std::string& path) {
    std::string text = read_text_file(path);
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw InputError(path + ": not valid JSON (" + std::string(e.what()).substr(0, 120) + ")");
    }
}

const json* member(const json& object, const std::string& key) {
    auto it = object.find(key);
    return (it == object.end() || it->is_null()) ? nullptr : &*it;
}

int64_t json_int(const json& object, const std::string& key, const std::string& label, const int64_t* fallback) {
    const json* v = member(object, key);
    if (!v) {
        if (!fallback) throw InputError(label + ": " + key + " is missing");
        return *fallback;
    }
    if (!v->is_number_integer()) throw InputError(label + ": " + key + " should be an integer");
    return v->get<int64_t>();
}

double json_number(const json& object, const std::string& key, const std::string& label, double fallback) {
    const json* v = member(object, key);
    if (!v) return fallback;
    if (!v->is_number()) throw InputError(label + ": " + key + " should be a number");
    return v->get<double>();
}

bool json_bool(const json& object, const std::string& key, const std::string& label, bool fallback) {
    const json* v = member(object, key);
    if (!v) return fallback;
    if (!v->is_boolean()) throw InputError(label + ": " + key + " should be true or false");
    return v->get<bool>();
}

std::string json_string(const json& object, const std::string& key, const std::string& label, const std::string& fallback) {
    const json* v = member(object, key);
    if (!v) return fallback;
    if (!v->is_string()) throw InputError(label + ": " + key + " should be a string");
    return v->get<std::string>();
}

ModelConfig hf_config(const std::string& dir) {
    const std::string label = join_path(dir, "config.json");
    if (!is_regular_file(label)) throw InputError(dir + ": not a model folder (no config.json)");
    json j = parse_json_file(label);
    if (!j.is_object()) throw InputError(label + ": not a JSON object");
    ModelConfig c;
    c.arch = json_string(j, "model_type", label, "");
    if (c.arch != "llama" && c.arch != "mistral" && c.arch != "qwen2")
        throw InputError(label + ": model_type \"" + c.arch + "\" is not supported (llama, mistral, qwen2)");
    auto get = [&](const std::string& key, const int64_t* fallback) {
        return checked_int(json_int(j, key, label, fallback), label, key);
    };
    c.hidden = get("hidden_size", nullptr);
    c.ffn = get("intermediate_size", nullptr);
    c.n_layers = get("num_hidden_layers", nullptr);
    c.n_heads = get("num_attention_heads", nullptr);
    const int64_t heads = c.n_heads;
    c.n_kv_heads = get("num_key_value_heads", &heads);
    if (c.n_heads < 1) throw InputError(label + ": num_attention_heads is 0");
    const int64_t default_head_dim = c.hidden / c.n_heads;
    c.head_dim = get("head_dim", &default_head_dim);
    c.vocab = get("vocab_size", nullptr);
    const int64_t default_context = 2048;
    c.context_length = get("max_position_embeddings", &default_context);
    c.rms_eps = static_cast<float>(json_number(j, "rms_norm_eps", label, 1e-6));
    c.rope_theta = static_cast<float>(json_number(j, "rope_theta", label, 10000.0));
    c.tied_embeddings = json_bool(j, "tie_word_embeddings", label, false);
    c.qkv_bias = c.arch == "qwen2" || json_bool(j, "attention_bias", label, false);
    if (const json* scaling = member(j, "rope_scaling")) {
        if (!scaling->is_object()) throw InputError(label + ": rope_scaling should be an object");
        std::string type = json_string(*scaling, "rope_type", label, json_string(*scaling, "type", label, "default"));
        if (type == "linear" || type == "llama3") {
            c.rope_scaling.type = type;
            c.rope_scaling.factor = static_cast<float>(json_number(*scaling, "factor", label, 1.0));
            if (type == "llama3") {
                c.rope_scaling.low_freq_factor = static_cast<float>(json_number(*scaling, "low_freq_factor", label, 1.0));
                c.rope_scaling.high_freq_factor = static_cast<float>(json_number(*scaling, "high_freq_factor", label, 4.0));
                const int64_t orig = 8192;
                c.rope_scaling.original_context =
                    checked_int(json_int(*scaling, "original_max_position_embeddings", label, &orig), label, "original_max_position_embeddings");
                if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor))
                    throw InputError(label + ": rope_scaling high_freq_factor must exceed low_freq_factor");
            }
        } else if (type != "default") {
            throw InputError(label + ": rope_scaling type \"" + type + "\" is not supported (linear, llama3)");
        }
    }
    validate_config(c, label);
    return c;
}

// The safetensors files of a folder, in a fixed order (single file, or the
// shards named by the index in sorted order).
std::vector<std::string> hf_weight_files(const std::string& dir) {
    const std::string single = join_path(dir, "model.safetensors");
    if (is_regular_file(single)) return {single};
    const std::string index_path = join_path(dir, "model.safetensors.index.json");
    if (!is_regular_file(index_path))
        throw InputError(dir + ": no model.safetensors or model.safetensors.index.json in the folder");
    json index = parse_json_file(index_path);
    const json* map = index.is_object() ? member(index, "weight_map") : nullptr;
    if (!map || !map->is_object()) throw InputError(index_path + ": weight_map is missing or not an object");
    std::vector<std::string> names;
    for (const auto& entry : map->items()) {
        if (!entry.value().is_string()) throw InputError(index_path + ": weight_map entry " + entry.key() + " is not a file name");
        std::string file = entry.value().get<std::string>();
        // Shards live in the folder itself: refuse paths that would leave it.
        if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
            throw InputError(index_path + ": shard name \"" + file + "\" is not a plain file name");
        names.push_back(file);
    }
    if (names.empty()) throw InputError(index_path + ": weight_map is empty");
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::vector<std::string> paths;
    for (const auto& n : names) paths.push_back(join_path(dir, n));
    return paths;
}

std::string json_token_text(const json* value, const std::string& label, const std::string& key) {
    if (!value) return "";
    if (value->is_string()) return value->get<std::string>();
    if (value->is_object()) return json_string(*value, "content", label, "");
    throw InputError(label + ": " + key + " should be a string or an object with \"content\"");
}

// Names the tokenizer's pre-tokenizer after the llama.cpp "pre" names our
// tokenizer implements, from the shape of tokenizer.json's pre_tokenizer.
std::string detect_pre_tokenizer(const json* pre, const std::string& label) {
    if (!pre) throw InputError(label + ": pre_tokenizer is missing (only byte-level BPE tokenizers are supported)");
    std::vector<const json*> steps;
    if (pre->is_object() && json_string(*pre, "type", label, "") == "Sequence") {
        const json* list = member(*pre, "pretokenizers");
        if (!list || !list->is_array()) throw InputError(label + ": pre_tokenizer Sequence has no pretokenizers list");
        for (const auto& step : *list) steps.push_back(&step);
    } else {
        steps.push_back(pre);
    }
    std::vector<std::string> kinds;
    std::string split_regex;
    bool digits_individual = false, byte_level_regex = false;
    for (const json* step : steps) {
        if (!step->is_object()) throw InputError(label + ": pre_tokenizer step is not an object");
        std::string type = json_string(*step, "type", label, "");
        kinds.push_back(type);
        if (type == "Digits") digits_individual = json_bool(*step, "individual_digits", label, false);
        if (type == "ByteLevel") byte_level_regex = json_bool(*step, "use_regex", label, true);
        if (type == "Split") {
            const json* pattern = member(*step, "pattern");
            if (pattern && pattern->is_object()) split_regex = json_string(*pattern, "Regex", label, "");
        }
    }
    auto describe = [&] {
        std::string s;
        for (const auto& k : kinds) s += (s.empty() ? "" : "+") + k;
        return s;
    };
    if (kinds == std::vector<std::string>{"ByteLevel"} && byte_level_regex) return "gpt2";
    if (kinds == std::vector<std::string>{"Digits", "ByteLevel"} && digits_individual && byte_level_regex) return "smollm";
    if (kinds == std::vector<std::string>{"Split", "ByteLevel"} && !byte_level_regex) {
        // The Llama-3 and Qwen2 patterns differ only in how digits group:
        // \p{N}{1,3} (runs of up to three) versus \p{N} (one at a time).
        if (split_regex.find("\\p{N}{1,3}") != std::string::npos) return "llama-bpe";
        if (split_regex.find("\\p{N}") != std::string::npos && split_regex.find("\\p{L}+") != std::string::npos) return "qwen2";
    }
    throw InputError(label + ": pre_tokenizer " + describe() + " is not supported (gpt2, smollm, llama-bpe, qwen2)");
}

Vocabulary hf_vocabulary(const std::string& dir) {
    const std::string label = join_path(dir, "tokenizer.json");
    if (!is_regular_file(label)) throw InputError(dir + ": no tokenizer.json in the model folder");
    json j = parse_json_file(label);
    if (!j.is_object()) throw InputError(label + ": not a JSON object");
    const json* model = member(j, "model");
    if (!model || !model->is_object()) throw InputError(label + ": model is missing");
    std::string type = json_string(*model, "type", label, "");
    if (type != "BPE") throw InputError(label + ": tokenizer model " + (type.empty() ? "(none)" : type) + " is not supported (BPE)");
    Vocabulary v;
    v.model = "gpt2";
    v.pre = detect_pre_tokenizer(member(j, "pre_tokenizer"), label);

    constexpr int64_t kMaxTokens = 1 << 22;
    const json* vocab = member(*model, "vocab");
    if (!vocab || !vocab->is_object()) throw InputError(label + ": model.vocab is missing or not an object");
    std::vector<std::pair<int64_t, std::string>> entries;
    entries.reserve(vocab->size());
    for (const auto& item : vocab->items()) {
        if (!item.value().is_number_integer()) throw InputError(label + ": vocab id of " + item.key() + " is not an integer");
        entries.emplace_back(item.value().get<int64_t>(), item.key());
    }
    std::vector<std::tuple<int64_t, std::string, bool>> added;
    if (const json* added_tokens = member(j, "added_tokens")) {
        if (!added_tokens->is_array()) throw InputError(label + ": added_tokens is not an array");
        for (const auto& t : *added_tokens) {
            if (!t.is_object()) throw InputError(label + ": added_tokens entry is not an object");
            added.emplace_back(json_int(t, "id", label, nullptr), json_string(t, "content", label, ""),
                               json_bool(t, "special", label, false));
        }
    }
    int64_t size = 0;
    for (const auto& [id, text] : entries) size = std::max(size, id + 1);
    for (const auto& [id, text, special] : added) size = std::max(size, id + 1);
    for (const auto& [id, text] : entries)
        if (id < 0 || id >= kMaxTokens) throw InputError(label + ": token id " + std::to_string(id) + " is out of range");
    for (const auto& [id, text, special] : added)
        if (id < 0 || id >= kMaxTokens) throw InputError(label + ": added token id " + std::to_string(id) + " is out of range");
    // Ids missing from both maps stay empty and "unused" (GGUF type 5).
    v.tokens.assign(static_cast<size_t>(size), std::string());
    v.token_type.assign(static_cast<size_t>(size), 5);
    for (const auto& [id, text] : entries) {
        v.tokens[id] = text;
        v.token_type[id] = 1;
    }
    for (const auto& [id, text, special] : added) {
        v.tokens[id] = text;
        v.token_type[id] = special ? 3 : 4;
    }

    if (const json* merges = member(*model, "merges")) {
        if (!merges->is_array()) throw InputError(label + ": model.merges is not an array");
        v.merges.reserve(merges->size());
        for (size_t m = 0; m < merges->size(); ++m) {
            const json& entry = (*merges)[m];
            if (entry.is_string()) {
                const std::string text = entry.get<std::string>();
                size_t space = text.size() > 1 ? text.find(' ', 1) : std::string::npos;
                if (space == std::string::npos || space + 1 >= text.size())
                    throw InputError(label + ": merge " + std::to_string(m) + " is not \"left right\"");
                v.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
            } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
                v.merges.emplace_back(entry[0].get<std::string>(), entry[1].get<std::string>());
            } else {
                throw InputError(label + ": merge " + std::to_string(m) + " is neither \"a b\" nor [\"a\", \"b\"]");
            }
        }
    }

    std::unordered_map<std::string, int> id_of;
    id_of.reserve(v.tokens.size());
    for (size_t id = 0; id < v.tokens.size(); ++id)
        if (!v.tokens[id].empty()) id_of.emplace(v.tokens[id], static_cast<int>(id));
    auto lookup = [&](const std::string& text, const std::string& where) -> int {
        if (text.empty()) return -1;
        auto it = id_of.find(text);
        if (it == id_of.end()) throw InputError(where + ": token \"" + text.substr(0, 40) + "\" is not in the vocabulary");
        return it->second;
    };
    v.unk_id = lookup(json_string(*model, "unk_token", label, ""), label);

    const std::string config_label = join_path(dir, "tokenizer_config.json");
    if (is_regular_file(config_label)) {
        json tc = parse_json_file(config_label);
        if (!tc.is_object()) throw InputError(config_label + ": not a JSON object");
        v.bos_id = lookup(json_token_text(member(tc, "bos_token"), config_label, "bos_token"), config_label);
        v.eos_id = lookup(json_token_text(member(tc, "eos_token"), config_label, "eos_token"), config_label);
        v.add_bos = json_bool(tc, "add_bos_token", config_label, false);
    }
    // Fall back on config.json's ids when tokenizer_config.json does not name them.
    const std::string model_config = join_path(dir, "config.json");
    if ((v.bos_id < 0 || v.eos_id < 0) && is_regular_file(model_config)) {
        json mc = parse_json_file(model_config);
        auto id_from = [&](const char* key) -> int {
            const json* value = mc.is_object() ? member(mc, key) : nullptr;
            if (value && value->is_array() && !value->empty()) value = &(*value)[0];
            if (!value || !value->is_number_integer()) return -1;
            int64_t id = value->get<int64_t>();
            return (id >= 0 && id < static_cast<int64_t>(v.tokens.size())) ? static_cast<int>(id) : -1;
        };
        if (v.bos_id < 0) v.bos_id = id_from("bos_token_id");
        if (v.eos_id < 0) v.eos_id = id_from("eos_token_id");
    }
    return v;
}

// Hashes `files` (concatenated, in order) on a thread of its own while the caller dequantizes.
class BackgroundHash {
public:
    explicit BackgroundHash(std::vector<std::pair<const uint8_t*, uint64_t>> ranges)
        : thread_([this, ranges = std::move(ranges)] {
              Sha256 hasher;
              for (const auto& [data, size] : ranges) hasher.update(data, size);
              digest_ = hasher.hex_digest();
          }) {}
    ~BackgroundHash() {
        if (thread_.joinable()) thread_.join();
    }
    std::string get() {
        if (thread_.joinable()) thread_.join();
        return digest_;
    }

private:
    std::string digest_;
    std::thread thread_;
};

Model load_gguf(const std::string& path) {
    GgufFile file(path);
    Model model;
    model.config = gguf_config(file);
    model.vocab = gguf_vocabulary(file);
    model.path = path;
    model.format = "gguf";
    model.file_bytes = file.file_size();
    std::map<std::string, uint64_t> elements_by_type;
    for (const auto& t : file.tensors()) elements_by_type[ggml_type_name(t.type)] += t.n_elements;
    model.quantization = dominant_type(elements_by_type);

    GgufTable table(file);
    std::vector<WeightJob> jobs = plan_weights(model, table, {"token_embd.weight", "output_norm.weight", "output.weight"},
                                               gguf_layer_names, gguf_arch_permutes_qk(model.config.arch), path);
    BackgroundHash hash({{file.file_data(), file.file_size()}});
    run_weight_jobs(jobs, default_threads());
    model.file_hash = hash.get();
    return model;
}

Model load_hf(const std::string& path, const std::string& dir) {
    Model model;
    model.config = hf_config(dir);
    model.vocab = hf_vocabulary(dir);
    if (model.vocab.tokens.size() > static_cast<size_t>(model.config.vocab))
        throw InputError(join_path(dir, "tokenizer.json") + ": " + std::to_string(model.vocab.tokens.size()) +
                         " tokens, more than vocab_size " + std::to_string(model.config.vocab));
    std::vector<std::unique_ptr<SafetensorsFile>> shards;
    std::map<std::string, uint64_t> elements_by_type;
    std::vector<std::pair<const uint8_t*, uint64_t>> ranges;
    model.file_bytes = 0;
    for (const auto& file : hf_weight_files(dir)) {
        shards.push_back(std::make_unique<SafetensorsFile>(file));
        model.file_bytes += shards.back()->file_size();
        ranges.emplace_back(shards.back()->file_data(), shards.back()->file_size());
        for (const auto& t : shards.back()->tensors()) elements_by_type[t.dtype] += t.n_elements;
    }
    SafetensorsTable table(shards);
    // A model that says its embeddings are untied but ships no lm_head is broken;
    // one without the flag and without lm_head is tied in practice (older exports).
    if (!model.config.tied_embeddings && !table.has("lm_head.weight")) {
        throw InputError(dir + ": tie_word_embeddings is false but lm_head.weight is missing");
    }
    model.path = path;
    model.format = "safetensors";
    model.quantization = dominant_type(elements_by_type);
    std::vector<WeightJob> jobs = plan_weights(model, table, {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"},
                                               hf_layer_names, false, dir);
    BackgroundHash hash(std::move(ranges));
    run_weight_jobs(jobs, default_threads());
    model.file_hash = hash.get();
    return model;
}

}  // namespace

Model load_model(const std::string& path) {
    std::string dir;
    if (detect_format(path, dir) == Format::Gguf) return load_gguf(path);
    return load_hf(path, dir);
}

ModelConfig load_model_config(const std::string& path) {
    std::string dir;
    if (detect_format(path, dir) == Format::Gguf) {
        GgufFile file(path);
        return gguf_config(file);
    }
    return hf_config(dir);
}

Vocabulary load_vocabulary(const std::string& path) {
    std::string dir;
    if (detect_format(path, dir) == Format::Gguf) {
        GgufFile file(path);
        return gguf_vocabulary(file);
    }
    return hf_vocabulary(dir);
}

std::string default_model_path() {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    std::string base;
    if (xdg && *xdg) base = xdg;
    else {
        const char* home = std::getenv("HOME");
        base = std::string(home && *home ? home : ".") + "/.cache";
    }
    return base + "/msascope/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace msa
