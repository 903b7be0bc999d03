// msascope-cli info: what a model file is, as msascope will run it.
#include <sys/stat.h>

#include <iostream>

#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "core/model.h"
#include "core/msa.h"

namespace msa::cli {
namespace {

struct InfoArgs {
    std::string model;
    bool json = false;
};

int run_info(const InfoArgs& a) {
    const std::string path = resolve_model_path(a.model);
    ModelConfig c = load_model_config(path);
    Vocabulary vocab = load_vocabulary(path);
    struct stat st {};
    const double bytes = stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) : NAN;
    const MsaConfig defaults;
    const int blocks_at_context = c.context_length > 0 ? (c.context_length + defaults.block - 1) / defaults.block : 0;
    if (a.json) {
        print_json({{"model", path},
                    {"bytes", number_or_null(bytes)},
                    {"arch", c.arch},
                    {"n_layers", c.n_layers},
                    {"hidden", c.hidden},
                    {"n_heads", c.n_heads},
                    {"n_kv_heads", c.n_kv_heads},
                    {"group_size", c.group_size()},
                    {"head_dim", c.head_dim},
                    {"ffn", c.ffn},
                    {"vocab", c.vocab},
                    {"context_length", c.context_length},
                    {"rms_eps", c.rms_eps},
                    {"rope_theta", c.rope_theta},
                    {"rope_scaling", c.rope_scaling.type},
                    {"tied_embeddings", c.tied_embeddings},
                    {"qkv_bias", c.qkv_bias},
                    {"tokenizer", {{"model", vocab.model}, {"pre", vocab.pre}, {"tokens", vocab.tokens.size()},
                                   {"merges", vocab.merges.size()}, {"bos_id", vocab.bos_id}, {"eos_id", vocab.eos_id}}},
                    {"msa", {{"groups", c.n_kv_heads}, {"blocks_at_context", blocks_at_context},
                             {"default_k", defaults.k}, {"default_block", defaults.block}}}});
        return 0;
    }
    Table t({"property", "value"});
    t.add({"file", path});
    t.add({"size", human_count(bytes) + "B"});
    t.add({"architecture", c.arch});
    t.add({"layers", std::to_string(c.n_layers)});
    t.add({"hidden / ffn", std::to_string(c.hidden) + " / " + std::to_string(c.ffn)});
    t.add({"query heads / KV heads", std::to_string(c.n_heads) + " / " + std::to_string(c.n_kv_heads) + " (GQA group of " +
                                         std::to_string(c.group_size()) + ")"});
    t.add({"head dim", std::to_string(c.head_dim)});
    t.add({"vocab", std::to_string(c.vocab)});
    t.add({"trained context", std::to_string(c.context_length)});
    t.add({"RoPE theta / scaling", fixed(c.rope_theta, 0) + " / " + c.rope_scaling.type});
    t.add({"tokenizer", vocab.model + " BPE, pre '" + vocab.pre + "', " + std::to_string(vocab.merges.size()) + " merges"});
    t.add({"MSA selections", std::to_string(c.n_kv_heads) + " groups per layer; " + std::to_string(blocks_at_context) +
                                 " blocks of " + std::to_string(defaults.block) + " at full context"});
    t.print(std::cout);
    return 0;
}

const RegisterCommand registered{Command{"info", "Describe a model file (shape, tokenizer, MSA geometry)", 10,
                                         [](CLI::App& sub) {
                                             auto args = std::make_shared<InfoArgs>();
                                             sub.add_option("--model", args->model,
                                                            "GGUF file or Hugging Face folder (default: the cached SmolLM2-135M)");
                                             sub.add_flag("--json", args->json, "Print one JSON object");
                                             return [args] { return run_info(*args); };
                                         }}};

}  // namespace
}  // namespace msa::cli
