#pragma once
// A Llama-family transformer with every weight dequantized to float32 at load.
// The loaders (GGUF, Hugging Face safetensors folders) fill this; the CPU
// forward and the CUDA backend read it.
#include <cstdint>
#include <string>
#include <vector>

#include "core/vocabulary.h"

namespace msa {

// Row-major [rows, cols]; for a linear layer rows = out features, cols = in
// features, so y = W x reads one contiguous row per output.
struct Matrix {
    int rows = 0;
    int cols = 0;
    std::vector<float> data;
    bool empty() const { return data.empty(); }
    const float* row(int r) const { return data.data() + static_cast<size_t>(r) * cols; }
};

struct RopeScaling {
    std::string type = "none";  // none | linear | llama3
    float factor = 1.0f;
    // llama3-style scaling
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    int original_context = 8192;
};

struct ModelConfig {
    std::string arch;           // llama | mistral | qwen2
    int n_layers = 0;
    int hidden = 0;
    int n_heads = 0;            // query heads
    int n_kv_heads = 0;
    int head_dim = 0;
    int ffn = 0;
    int vocab = 0;
    int context_length = 0;
    float rms_eps = 1e-5f;
    float rope_theta = 10000.0f;
    RopeScaling rope_scaling;
    bool tied_embeddings = false;
    bool qkv_bias = false;      // qwen2
    int group_size() const { return n_kv_heads ? n_heads / n_kv_heads : 0; }
};

struct LayerWeights {
    std::vector<float> attn_norm;   // [hidden]
    Matrix wq, wk, wv, wo;          // wq [Hq*d, hidden], wk/wv [Hkv*d, hidden], wo [hidden, Hq*d]
    std::vector<float> bq, bk, bv;  // empty unless qkv_bias
    std::vector<float> ffn_norm;    // [hidden]
    Matrix w_gate, w_up, w_down;    // gate/up [ffn, hidden], down [hidden, ffn]
    // Trained MSA index branch (absent in ordinary models): one index head per
    // KV group and one shared index key head, dI each.
    Matrix index_wq, index_wk;
    std::vector<float> index_q_norm, index_k_norm;
};

struct Model {
    ModelConfig config;
    std::string path;               // as given by the user
    std::string format;             // gguf | safetensors
    std::string file_hash;          // hex; sha256 of the weights file(s)
    uint64_t file_bytes = 0;
    std::string quantization;       // e.g. "Q4_1" (dominant tensor type in the file)
    Matrix token_embedding;         // [vocab, hidden]
    std::vector<LayerWeights> layers;
    std::vector<float> output_norm; // [hidden]
    Matrix output;                  // [vocab, hidden]; empty when tied_embeddings
    Vocabulary vocab;
    bool has_index_weights() const { return !layers.empty() && !layers[0].index_wq.empty(); }
    const Matrix& lm_head() const { return output.empty() ? token_embedding : output; }
};

// Loads a .gguf file or a Hugging Face model folder (config.json +
// model.safetensors or model.safetensors.index.json + shards, tokenizer.json).
// Throws InputError (one line naming the file and what is wrong) on anything bad.
Model load_model(const std::string& path);

// Reads only the header/config: fast, for `info` and for shape-only work.
ModelConfig load_model_config(const std::string& path);

// Only the tokenizer data (GGUF metadata or tokenizer.json), no weights.
Vocabulary load_vocabulary(const std::string& path);

// The default model: $XDG_CACHE_HOME/msascope (or ~/.cache/msascope)/SmolLM2-135M-Instruct.Q4_1.gguf
std::string default_model_path();

}  // namespace msa
