#include "tests/support/tiny_model.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "core/dequant.h"

namespace msa {
namespace {

using json = nlohmann::json;

// splitmix64: deterministic across platforms, unlike std:: distributions.
struct Random {
    uint64_t state;
    explicit Random(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ULL + 1) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    float uniform() { return float((next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }  // [-1, 1)
};

void fill(Matrix& m, int rows, int cols, float scale, Random& rng) {
    m.rows = rows;
    m.cols = cols;
    m.data.resize(size_t(rows) * cols);
    for (auto& x : m.data) x = scale * rng.uniform();
}

std::vector<float> random_vector(int n, float center, float scale, Random& rng) {
    std::vector<float> v(n);
    for (auto& x : v) x = center + scale * rng.uniform();
    return v;
}

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the
// others are shifted to U+0100 and up so every byte is a visible character.
std::string byte_token(int byte) {
    int code;
    if ((byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255)) {
        code = byte;
    } else {
        int n = 0;
        for (int b = 0; b < byte; ++b)
            if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) ++n;
        code = 256 + n;
    }
    std::string s;
    if (code < 0x80) s += char(code);
    else {
        s += char(0xC0 | (code >> 6));
        s += char(0x80 | (code & 0x3F));
    }
    return s;
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) { for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i))); }
void put_u64(std::vector<uint8_t>& out, uint64_t v) { for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i))); }
void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put_u64(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}
void put_u16(std::vector<uint8_t>& out, uint16_t v) { out.push_back(uint8_t(v)); out.push_back(uint8_t(v >> 8)); }

std::vector<uint8_t> float_bytes(const std::vector<float>& v) {
    std::vector<uint8_t> out(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

// The llama.cpp converter's Q/K row order (see the loader for why).
std::vector<float> permute_rows_for_gguf(const std::vector<float>& data, int rows, int cols, int head_dim) {
    std::vector<float> out(data.size());
    for (int r = 0; r < rows; ++r) {
        int head = r / head_dim, within = r % head_dim, i = within / 2, j = within % 2;
        int hf_row = head * head_dim + j * (head_dim / 2) + i;
        std::memcpy(out.data() + size_t(r) * cols, data.data() + size_t(hf_row) * cols, sizeof(float) * cols);
    }
    return out;
}

std::string hf_dtype(WeightType t) {
    switch (t) {
        case WeightType::F32: return "F32";
        case WeightType::F16: return "F16";
        case WeightType::BF16: return "BF16";
        default: throw std::runtime_error("Hugging Face folders hold F32, F16 or BF16 only");
    }
}

const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

json pre_tokenizer_json(const std::string& pre) {
    json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    if (pre == "gpt2" || pre == "default") return byte_level;
    if (pre == "smollm")
        return {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}};
    if (pre == "llama-bpe" || pre == "qwen2") {
        json split = {{"type", "Split"}, {"pattern", {{"Regex", pre == "qwen2" ? kQwen2Regex : kLlama3Regex}}},
                      {"behavior", "Isolated"}, {"invert", false}};
        byte_level["use_regex"] = false;
        return {{"type", "Sequence"}, {"pretokenizers", json::array({split, byte_level})}};
    }
    throw std::runtime_error("write_hf_folder: no tokenizer.json form for pre-tokenizer " + pre);
}

}  // namespace

ModelConfig tiny_config(const std::string& arch) {
    ModelConfig c;
    c.arch = arch;
    c.n_layers = 2;
    c.hidden = 64;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.ffn = 128;
    c.vocab = 320;
    c.context_length = 512;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tied_embeddings = arch != "mistral";
    c.qkv_bias = arch == "qwen2";
    return c;
}

Vocabulary make_byte_vocabulary(int size) {
    if (size < 256) throw std::runtime_error("make_byte_vocabulary: a byte-level vocabulary needs at least 256 tokens");
    Vocabulary v;
    v.model = "gpt2";
    v.pre = "gpt2";
    for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_token(b));
    v.token_type.assign(256, 1);
    const bool special = size > 256;
    const size_t merge_slots = size_t(size - 256 - (special ? 1 : 0));
    std::set<std::string> known(v.tokens.begin(), v.tokens.end());
    std::vector<std::pair<std::string, std::string>> candidates = {
        {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"e", "r"}, {"a", "n"}, {"Ġ", "a"}, {"o", "n"},
        {"r", "e"}, {"Ġ", "s"}, {"e", "n"}, {"a", "t"}, {"o", "r"}, {"Ġ", "w"}, {"Ġ", "o"}, {"i", "s"},
        {"Ġ", "b"}, {"e", "d"}, {"in", "g"}, {"Ġ", "c"}, {"Ġ", "f"}, {"Ġ", "m"}, {"Ġ", "p"}, {"Ġ", "d"},
        {"Ġ", "h"}, {"l", "l"}, {"Ġ", "i"}, {"o", "u"}, {"Ġ", "l"}, {"e", "s"}, {"Ġa", "n"}, {"Ġan", "d"}};
    for (char a = 'a'; a <= 'z'; ++a)
        for (char b = 'a'; b <= 'z'; ++b) candidates.push_back({std::string(1, a), std::string(1, b)});
    for (const auto& [left, right] : candidates) {
        if (v.merges.size() == merge_slots) break;
        if (!known.count(left) || !known.count(right) || known.count(left + right)) continue;
        v.merges.emplace_back(left, right);
        v.tokens.push_back(left + right);
        v.token_type.push_back(1);
        known.insert(left + right);
    }
    while (v.tokens.size() + (special ? 1 : 0) < size_t(size)) {  // more room than merges: plain filler tokens
        v.tokens.push_back("<|filler_" + std::to_string(v.tokens.size()) + "|>");
        v.token_type.push_back(4);
    }
    if (special) {
        v.tokens.push_back("<|endoftext|>");
        v.token_type.push_back(3);
        v.bos_id = v.eos_id = size - 1;
    }
    return v;
}

Model make_random_model(const ModelConfig& config, uint64_t seed) {
    Random rng(seed);
    Model m;
    m.config = config;
    m.path = "(in memory)";
    m.format = "memory";
    m.quantization = "F32";
    const int h = config.hidden, q = config.n_heads * config.head_dim, kv = config.n_kv_heads * config.head_dim;
    fill(m.token_embedding, config.vocab, h, 0.5f, rng);
    m.layers.resize(config.n_layers);
    for (auto& w : m.layers) {
        w.attn_norm = random_vector(h, 1.0f, 0.1f, rng);
        fill(w.wq, q, h, 1.0f / std::sqrt(float(h)), rng);
        fill(w.wk, kv, h, 1.0f / std::sqrt(float(h)), rng);
        fill(w.wv, kv, h, 1.0f / std::sqrt(float(h)), rng);
        fill(w.wo, h, q, 1.0f / std::sqrt(float(q)), rng);
        if (config.qkv_bias) {
            w.bq = random_vector(q, 0.0f, 0.1f, rng);
            w.bk = random_vector(kv, 0.0f, 0.1f, rng);
            w.bv = random_vector(kv, 0.0f, 0.1f, rng);
        }
        w.ffn_norm = random_vector(h, 1.0f, 0.1f, rng);
        fill(w.w_gate, config.ffn, h, 1.0f / std::sqrt(float(h)), rng);
        fill(w.w_up, config.ffn, h, 1.0f / std::sqrt(float(h)), rng);
        fill(w.w_down, h, config.ffn, 1.0f / std::sqrt(float(config.ffn)), rng);
    }
    m.output_norm = random_vector(h, 1.0f, 0.1f, rng);
    if (!config.tied_embeddings) fill(m.output, config.vocab, h, 1.0f / std::sqrt(float(h)), rng);
    m.vocab = make_byte_vocabulary(config.vocab);
    return m;
}

void add_random_index_weights(Model& model, int index_dim, uint64_t seed) {
    Random rng(seed ^ 0x5151);
    const int h = model.config.hidden;
    for (auto& w : model.layers) {
        fill(w.index_wq, model.config.n_kv_heads * index_dim, h, 1.0f / std::sqrt(float(h)), rng);
        fill(w.index_wk, index_dim, h, 1.0f / std::sqrt(float(h)), rng);
        w.index_q_norm = random_vector(index_dim, 1.0f, 0.1f, rng);
        w.index_k_norm = random_vector(index_dim, 1.0f, 0.1f, rng);
    }
}

const char* weight_type_name(WeightType type) {
    switch (type) {
        case WeightType::F32: return "F32";
        case WeightType::F16: return "F16";
        case WeightType::BF16: return "BF16";
        case WeightType::Q8_0: return "Q8_0";
        case WeightType::Q4_0: return "Q4_0";
        case WeightType::Q4_1: return "Q4_1";
    }
    return "?";
}

uint32_t ggml_type_id(WeightType type) {
    switch (type) {
        case WeightType::F32: return uint32_t(GgmlType::F32);
        case WeightType::F16: return uint32_t(GgmlType::F16);
        case WeightType::BF16: return uint32_t(GgmlType::BF16);
        case WeightType::Q8_0: return uint32_t(GgmlType::Q8_0);
        case WeightType::Q4_0: return uint32_t(GgmlType::Q4_0);
        case WeightType::Q4_1: return uint32_t(GgmlType::Q4_1);
    }
    return 0;
}

std::vector<uint8_t> quantize(WeightType type, const float* x, size_t count) {
    std::vector<uint8_t> out;
    switch (type) {
        case WeightType::F32:
            out.resize(count * 4);
            std::memcpy(out.data(), x, out.size());
            return out;
        case WeightType::F16:
            for (size_t i = 0; i < count; ++i) put_u16(out, float_to_half(x[i]));
            return out;
        case WeightType::BF16:
            for (size_t i = 0; i < count; ++i) put_u16(out, float_to_bfloat16(x[i]));
            return out;
        default:
            break;
    }
    if (count % 32) throw std::runtime_error("quantize: element count not a multiple of 32");
    for (size_t b = 0; b < count; b += 32) {
        const float* v = x + b;
        if (type == WeightType::Q8_0) {
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
            const float d = amax / 127.0f, inv = d ? 1.0f / d : 0.0f;
            put_u16(out, float_to_half(d));
            for (int j = 0; j < 32; ++j) out.push_back(uint8_t(int8_t(std::lround(v[j] * inv))));
        } else if (type == WeightType::Q4_0) {
            float signed_max = 0;  // the value of largest magnitude maps to -8
            for (int j = 0; j < 32; ++j)
                if (std::fabs(v[j]) > std::fabs(signed_max)) signed_max = v[j];
            const float d = signed_max / -8.0f, inv = d ? 1.0f / d : 0.0f;
            put_u16(out, float_to_half(d));
            for (int j = 0; j < 16; ++j) {
                int lo = std::min(15, int(v[j] * inv + 8.5f)), hi = std::min(15, int(v[j + 16] * inv + 8.5f));
                out.push_back(uint8_t(std::max(0, lo) | (std::max(0, hi) << 4)));
            }
        } else {  // Q4_1
            float lo = v[0], hi = v[0];
            for (int j = 1; j < 32; ++j) lo = std::min(lo, v[j]), hi = std::max(hi, v[j]);
            const float d = (hi - lo) / 15.0f, inv = d ? 1.0f / d : 0.0f;
            put_u16(out, float_to_half(d));
            put_u16(out, float_to_half(lo));
            for (int j = 0; j < 16; ++j) {
                int a = std::min(15, int((v[j] - lo) * inv + 0.5f)), c = std::min(15, int((v[j + 16] - lo) * inv + 0.5f));
                out.push_back(uint8_t(a | (c << 4)));
            }
        }
    }
    return out;
}

// ---- GgufWriter ----

void GgufWriter::add_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& encoded) {
    std::vector<uint8_t> value;
    put_u32(value, type);
    value.insert(value.end(), encoded.begin(), encoded.end());
    kv.emplace_back(key, std::move(value));
}
void GgufWriter::add_string(const std::string& key, const std::string& s) {
    std::vector<uint8_t> e;
    put_string(e, s);
    add_raw(key, 8, e);
}
void GgufWriter::add_u32(const std::string& key, uint32_t v) {
    std::vector<uint8_t> e;
    put_u32(e, v);
    add_raw(key, 4, e);
}
void GgufWriter::add_i32(const std::string& key, int32_t v) {
    std::vector<uint8_t> e;
    put_u32(e, uint32_t(v));
    add_raw(key, 5, e);
}
void GgufWriter::add_f32(const std::string& key, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    std::vector<uint8_t> e;
    put_u32(e, bits);
    add_raw(key, 6, e);
}
void GgufWriter::add_bool(const std::string& key, bool v) { add_raw(key, 7, {uint8_t(v ? 1 : 0)}); }
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
    std::vector<uint8_t> e;
    put_u32(e, 8);
    put_u64(e, values.size());
    for (const auto& s : values) put_string(e, s);
    add_raw(key, 9, e);
}
void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& values) {
    std::vector<uint8_t> e;
    put_u32(e, 5);
    put_u64(e, values.size());
    for (int32_t v : values) put_u32(e, uint32_t(v));
    add_raw(key, 9, e);
}
void GgufWriter::add_tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type, std::vector<uint8_t> data) {
    tensors.push_back({name, dims, type, std::move(data)});
}

std::vector<uint8_t> GgufWriter::bytes() const {
    std::vector<uint8_t> out;
    put_u32(out, 0x46554747);
    put_u32(out, version);
    const bool write_alignment = alignment != 32;
    put_u64(out, tensors.size());
    put_u64(out, kv.size() + (write_alignment ? 1 : 0));
    for (const auto& [key, value] : kv) {
        put_string(out, key);
        out.insert(out.end(), value.begin(), value.end());
    }
    if (write_alignment) {
        put_string(out, "general.alignment");
        put_u32(out, 4);
        put_u32(out, uint32_t(alignment));
    }
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors) {
        put_string(out, t.name);
        put_u32(out, uint32_t(t.dims.size()));
        for (uint64_t d : t.dims) put_u64(out, d);
        put_u32(out, t.type);
        put_u64(out, offset);
        offsets.push_back(offset);
        offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
        out.resize(data_start + offsets[i], 0);
        out.insert(out.end(), tensors[i].data.begin(), tensors[i].data.end());
    }
    return out;
}

void GgufWriter::write(const std::string& path) const { write_file(path, bytes()); }

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- GGUF model writer ----

void write_gguf(const Model& model, const std::string& path, WeightType type) { make_gguf_writer(model, type).write(path); }

GgufWriter make_gguf_writer(const Model& model, WeightType type) {
    const ModelConfig& c = model.config;
    GgufWriter w;
    const std::string a = c.arch + ".";
    w.add_string("general.architecture", c.arch);
    w.add_string("general.name", "msascope tiny test model");
    w.add_u32(a + "block_count", uint32_t(c.n_layers));
    w.add_u32(a + "context_length", uint32_t(c.context_length));
    w.add_u32(a + "embedding_length", uint32_t(c.hidden));
    w.add_u32(a + "feed_forward_length", uint32_t(c.ffn));
    w.add_u32(a + "attention.head_count", uint32_t(c.n_heads));
    w.add_u32(a + "attention.head_count_kv", uint32_t(c.n_kv_heads));
    w.add_f32(a + "rope.freq_base", c.rope_theta);
    w.add_f32(a + "attention.layer_norm_rms_epsilon", c.rms_eps);
    w.add_u32(a + "rope.dimension_count", uint32_t(c.head_dim));
    if (c.head_dim * c.n_heads != c.hidden) w.add_u32(a + "attention.key_length", uint32_t(c.head_dim));
    if (c.rope_scaling.type == "linear") {
        w.add_string(a + "rope.scaling.type", "linear");
        w.add_f32(a + "rope.scaling.factor", c.rope_scaling.factor);
    }
    const Vocabulary& v = model.vocab;
    w.add_string("tokenizer.ggml.model", v.model);
    w.add_string("tokenizer.ggml.pre", v.pre);
    w.add_string_array("tokenizer.ggml.tokens", v.tokens);
    if (!v.token_type.empty()) w.add_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(v.token_type.begin(), v.token_type.end()));
    std::vector<std::string> merges;
    for (const auto& [l, r] : v.merges) merges.push_back(l + " " + r);
    w.add_string_array("tokenizer.ggml.merges", merges);
    if (v.bos_id >= 0) w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos_id));
    if (v.eos_id >= 0) w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos_id));
    if (v.unk_id >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk_id));
    w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);

    const bool permute = c.arch == "llama" || c.arch == "mistral";
    auto matrix = [&](const std::string& name, const Matrix& m, bool permute_rows) {
        std::vector<float> data = permute_rows ? permute_rows_for_gguf(m.data, m.rows, m.cols, c.head_dim) : m.data;
        w.add_tensor(name, {uint64_t(m.cols), uint64_t(m.rows)}, ggml_type_id(type), quantize(type, data.data(), data.size()));
    };
    auto vector = [&](const std::string& name, const std::vector<float>& x, bool permute_rows) {
        std::vector<float> data = permute_rows ? permute_rows_for_gguf(x, int(x.size()), 1, c.head_dim) : x;
        w.add_tensor(name, {uint64_t(x.size())}, uint32_t(GgmlType::F32), float_bytes(data));
    };
    matrix("token_embd.weight", model.token_embedding, false);
    vector("output_norm.weight", model.output_norm, false);
    if (!c.tied_embeddings) matrix("output.weight", model.output, false);
    if (c.rope_scaling.type == "llama3") {
        // llama.cpp stores llama3 scaling as per-frequency divisors.
        const RopeScaling& s = c.rope_scaling;
        std::vector<float> divisors(c.head_dim / 2);
        for (int i = 0; i < c.head_dim / 2; ++i) {
            const double freq = 1.0 / std::pow(double(c.rope_theta), 2.0 * i / c.head_dim);
            const double wavelen = 2 * M_PI / freq;
            const double low_wavelen = s.original_context / s.low_freq_factor, high_wavelen = s.original_context / s.high_freq_factor;
            if (wavelen < high_wavelen) divisors[i] = 1;
            else if (wavelen > low_wavelen) divisors[i] = s.factor;
            else {
                const double smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                divisors[i] = float(1.0 / ((1 - smooth) / s.factor + smooth));
            }
        }
        vector("rope_freqs.weight", divisors, false);
    }
    for (int l = 0; l < c.n_layers; ++l) {
        const LayerWeights& lw = model.layers[l];
        const std::string p = "blk." + std::to_string(l) + ".";
        vector(p + "attn_norm.weight", lw.attn_norm, false);
        matrix(p + "attn_q.weight", lw.wq, permute);
        matrix(p + "attn_k.weight", lw.wk, permute);
        matrix(p + "attn_v.weight", lw.wv, false);
        matrix(p + "attn_output.weight", lw.wo, false);
        if (c.qkv_bias) {
            vector(p + "attn_q.bias", lw.bq, permute);
            vector(p + "attn_k.bias", lw.bk, permute);
            vector(p + "attn_v.bias", lw.bv, false);
        }
        vector(p + "ffn_norm.weight", lw.ffn_norm, false);
        matrix(p + "ffn_gate.weight", lw.w_gate, false);
        matrix(p + "ffn_up.weight", lw.w_up, false);
        matrix(p + "ffn_down.weight", lw.w_down, false);
        if (!lw.index_wq.empty()) {
            matrix(p + "index_q.weight", lw.index_wq, false);
            matrix(p + "index_k.weight", lw.index_wk, false);
            vector(p + "index_q_norm.weight", lw.index_q_norm, false);
            vector(p + "index_k_norm.weight", lw.index_k_norm, false);
        }
    }
    return w;
}

// ---- Hugging Face folder writer ----

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries) {
    json header = json::object();
    uint64_t offset = 0;
    for (const auto& e : entries) {
        header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
        offset += e.bytes.size();
    }
    header["__metadata__"] = {{"format", "pt"}};
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');  // the format pads the header with spaces to 8 bytes
    std::vector<uint8_t> out;
    put_u64(out, text.size());
    out.insert(out.end(), text.begin(), text.end());
    for (const auto& e : entries) out.insert(out.end(), e.bytes.begin(), e.bytes.end());
    write_file(path, out);
}

void write_hf_folder(const Model& model, const std::string& dir, WeightType dtype, int shards) {
    ::mkdir(dir.c_str(), 0755);
    const ModelConfig& c = model.config;
    json config = {{"model_type", c.arch},
                   {"architectures", json::array({c.arch == "qwen2" ? "Qwen2ForCausalLM" : c.arch == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"})},
                   {"hidden_size", c.hidden},
                   {"intermediate_size", c.ffn},
                   {"num_hidden_layers", c.n_layers},
                   {"num_attention_heads", c.n_heads},
                   {"num_key_value_heads", c.n_kv_heads},
                   {"head_dim", c.head_dim},
                   {"rms_norm_eps", c.rms_eps},
                   {"rope_theta", c.rope_theta},
                   {"tie_word_embeddings", c.tied_embeddings},
                   {"vocab_size", c.vocab},
                   {"max_position_embeddings", c.context_length},
                   {"torch_dtype", dtype == WeightType::F32 ? "float32" : dtype == WeightType::F16 ? "float16" : "bfloat16"}};
    if (c.rope_scaling.type == "linear") config["rope_scaling"] = {{"type", "linear"}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.type == "llama3")
        config["rope_scaling"] = {{"rope_type", "llama3"},
                                  {"factor", c.rope_scaling.factor},
                                  {"low_freq_factor", c.rope_scaling.low_freq_factor},
                                  {"high_freq_factor", c.rope_scaling.high_freq_factor},
                                  {"original_max_position_embeddings", c.rope_scaling.original_context}};
    std::ofstream(dir + "/config.json") << config.dump(2);

    // tokenizer.json: normal tokens in model.vocab, control/user tokens as added_tokens only.
    const Vocabulary& v = model.vocab;
    json vocab = json::object(), added = json::array(), merges = json::array();
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        int type = id < v.token_type.size() ? v.token_type[id] : 1;
        if (type == 3 || type == 4)
            added.push_back({{"id", id}, {"content", v.tokens[id]}, {"single_word", false}, {"lstrip", false},
                             {"rstrip", false}, {"normalized", false}, {"special", type == 3}});
        else
            vocab[v.tokens[id]] = id;
    }
    for (size_t m = 0; m < v.merges.size(); ++m) {
        // Both forms occur in the wild; write half of each to exercise the reader.
        if (m % 2) merges.push_back(json::array({v.merges[m].first, v.merges[m].second}));
        else merges.push_back(v.merges[m].first + " " + v.merges[m].second);
    }
    json tokenizer = {{"version", "1.0"},
                      {"added_tokens", added},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", pre_tokenizer_json(v.pre)},
                      {"decoder", {{"type", "ByteLevel"}}},
                      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab}, {"merges", merges}}}};
    if (v.unk_id >= 0) tokenizer["model"]["unk_token"] = v.tokens[v.unk_id];
    std::ofstream(dir + "/tokenizer.json") << tokenizer.dump();
    json tokenizer_config = {{"add_bos_token", v.add_bos}};
    if (v.bos_id >= 0) tokenizer_config["bos_token"] = v.tokens[v.bos_id];
    if (v.eos_id >= 0) tokenizer_config["eos_token"] = {{"content", v.tokens[v.eos_id]}, {"special", true}};
    std::ofstream(dir + "/tokenizer_config.json") << tokenizer_config.dump(2);

    const std::string dt = hf_dtype(dtype);
    std::vector<SafetensorsEntry> entries;
    auto matrix = [&](const std::string& name, const Matrix& m) {
        entries.push_back({name, dt, {uint64_t(m.rows), uint64_t(m.cols)}, quantize(dtype, m.data.data(), m.data.size())});
    };
    auto vector = [&](const std::string& name, const std::vector<float>& x) {
        entries.push_back({name, dt, {uint64_t(x.size())}, quantize(dtype, x.data(), x.size())});
    };
    matrix("model.embed_tokens.weight", model.token_embedding);
    for (int l = 0; l < c.n_layers; ++l) {
        const LayerWeights& lw = model.layers[l];
        const std::string p = "model.layers." + std::to_string(l) + ".";
        vector(p + "input_layernorm.weight", lw.attn_norm);
        matrix(p + "self_attn.q_proj.weight", lw.wq);
        matrix(p + "self_attn.k_proj.weight", lw.wk);
        matrix(p + "self_attn.v_proj.weight", lw.wv);
        matrix(p + "self_attn.o_proj.weight", lw.wo);
        if (c.qkv_bias) {
            vector(p + "self_attn.q_proj.bias", lw.bq);
            vector(p + "self_attn.k_proj.bias", lw.bk);
            vector(p + "self_attn.v_proj.bias", lw.bv);
        }
        vector(p + "post_attention_layernorm.weight", lw.ffn_norm);
        matrix(p + "mlp.gate_proj.weight", lw.w_gate);
        matrix(p + "mlp.up_proj.weight", lw.w_up);
        matrix(p + "mlp.down_proj.weight", lw.w_down);
        if (!lw.index_wq.empty()) {
            matrix(p + "self_attn.index_q_proj.weight", lw.index_wq);
            matrix(p + "self_attn.index_k_proj.weight", lw.index_wk);
            vector(p + "self_attn.index_q_norm.weight", lw.index_q_norm);
            vector(p + "self_attn.index_k_norm.weight", lw.index_k_norm);
        }
    }
    vector("model.norm.weight", model.output_norm);
    if (!c.tied_embeddings) matrix("lm_head.weight", model.output);

    if (shards <= 1) {
        write_safetensors(dir + "/model.safetensors", entries);
        return;
    }
    json weight_map = json::object();
    const size_t per_shard = (entries.size() + shards - 1) / shards;
    for (int s = 0; s < shards; ++s) {
        char name[64];
        std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, shards);
        std::vector<SafetensorsEntry> part;
        for (size_t i = s * per_shard; i < std::min(entries.size(), (s + 1) * per_shard); ++i) {
            part.push_back(entries[i]);
            weight_map[entries[i].name] = name;
        }
        write_safetensors(dir + "/" + name, part);
    }
    std::ofstream(dir + "/model.safetensors.index.json") << json({{"metadata", json::object()}, {"weight_map", weight_map}}).dump(2);
}

std::string make_temp_dir(const std::string& prefix) {
    static std::atomic<int> counter{0};
    const char* tmp = std::getenv("TMPDIR");
    std::string base = (tmp && *tmp) ? tmp : "/tmp";
    for (int attempt = 0; attempt < 1000; ++attempt) {
        std::string dir = base + "/" + prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
        if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    }
    throw std::runtime_error("make_temp_dir: cannot create a directory under " + base);
}

}  // namespace msa
