#pragma once
// Small in-memory models and writers for the two model formats, so tests can
// build a model, save it as GGUF or as a Hugging Face folder, load it back
// with msa::load_model, and compare. Also a raw GGUF writer for crafting
// malformed files.
#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"

namespace msa {

// A small llama config: 2 layers, hidden 64, 4 heads, 2 KV heads, head dim 16,
// ffn 128, vocab 320, context 512 (every row length a multiple of 32, so the
// quantized GGUF types apply).
ModelConfig tiny_config(const std::string& arch = "llama");

// Byte-level BPE vocabulary of `size` tokens (size >= 256): the 256 byte tokens
// in byte order (GPT-2 byte-to-unicode text), then tokens made by merges, then,
// when there is room, "<|endoftext|>" as the last id (control; bos = eos).
// pre = "gpt2".
Vocabulary make_byte_vocabulary(int size);

// Random weights (deterministic in `seed`) of the shapes `config` implies,
// scaled so activations stay O(1), with make_byte_vocabulary(config.vocab).
Model make_random_model(const ModelConfig& config, uint64_t seed);

// Adds trained-MSA index weights (index_wq [n_kv_heads*index_dim, hidden],
// index_wk [index_dim, hidden], norms [index_dim]) to every layer.
void add_random_index_weights(Model& model, int index_dim, uint64_t seed);

enum class WeightType { F32, F16, BF16, Q8_0, Q4_0, Q4_1 };
const char* weight_type_name(WeightType type);

// Writes `model` as a GGUF v3 file the way llama.cpp's converter would: norms
// in F32, matrices in `type`, Q/K rows permuted for llama/mistral, output.weight
// omitted when tied, llama3 RoPE scaling as rope_freqs.weight. Throws
// std::runtime_error on I/O failure.
void write_gguf(const Model& model, const std::string& path, WeightType type = WeightType::F32);
class GgufWriter;
// The writer write_gguf uses, before writing: tests edit it (drop a tensor,
// change a type) to build files that are broken in one precise way.
GgufWriter make_gguf_writer(const Model& model, WeightType type = WeightType::F32);

// Writes config.json, tokenizer.json, tokenizer_config.json and the weights
// (F32, F16 or BF16) as model.safetensors, or as `shards` files plus
// model.safetensors.index.json when shards > 1.
void write_hf_folder(const Model& model, const std::string& dir, WeightType dtype = WeightType::F32, int shards = 1);

// Writes a safetensors file from (name, dtype, shape, raw bytes) entries.
struct SafetensorsEntry {
    std::string name;
    std::string dtype;
    std::vector<uint64_t> shape;
    std::vector<uint8_t> bytes;
};
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries);

// A fresh empty directory under the build tree (or $TMPDIR), unique per call.
std::string make_temp_dir(const std::string& prefix);

// Quantizes floats to one of the GGUF types (cols must be a multiple of 32 for Q types).
std::vector<uint8_t> quantize(WeightType type, const float* values, size_t count);
uint32_t ggml_type_id(WeightType type);

// Low-level GGUF writer: metadata and tensors in order, data aligned to
// `alignment`. Tests use bytes() and corrupt the result on purpose.
class GgufWriter {
public:
    uint32_t version = 3;
    uint64_t alignment = 32;  // also written as general.alignment when not 32

    void add_string(const std::string& key, const std::string& value);
    void add_u32(const std::string& key, uint32_t value);
    void add_i32(const std::string& key, int32_t value);
    void add_f32(const std::string& key, float value);
    void add_bool(const std::string& key, bool value);
    void add_string_array(const std::string& key, const std::vector<std::string>& values);
    void add_i32_array(const std::string& key, const std::vector<int32_t>& values);
    // Any value: `type` is the gguf_type id, `encoded` the value bytes as the file holds them.
    void add_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& encoded);
    // dims fastest-first, as GGUF stores them.
    void add_tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type, std::vector<uint8_t> data);

    std::vector<uint8_t> bytes() const;
    void write(const std::string& path) const;

    struct Tensor {
        std::string name;
        std::vector<uint64_t> dims;
        uint32_t type;
        std::vector<uint8_t> data;
    };
    std::vector<std::pair<std::string, std::vector<uint8_t>>> kv;  // key -> (type + value) bytes
    std::vector<Tensor> tensors;
};

void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace msa
