// msascope-cli flops: the per-token attention FLOPs model (REFERENCE.md) for
// the MiniMax-M3 shape or a loaded model's shape.
#include <iostream>

#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "core/errors.h"
#include "core/flops.h"
#include "core/model.h"

namespace msa::cli {
namespace {

struct FlopsArgs {
    std::string preset;
    std::string model;
    std::string context;
    int k = 16;
    int block = 128;
    bool json = false;
};

int run_flops(const FlopsArgs& a) {
    if (a.preset.empty() == a.model.empty()) throw InputError("give exactly one of --preset msa-m3 or --model PATH");
    if (a.k < 1) throw InputError("--k must be at least 1");
    if (a.block < 1) throw InputError("--block must be at least 1");
    AttentionFlopsShape shape;
    if (!a.preset.empty()) {
        if (a.preset != "msa-m3") throw InputError("unknown preset '" + a.preset + "' (known: msa-m3)");
        shape = msa_m3_shape();
    } else {
        // A model without a trained index branch is scored training-free: one
        // index head per KV group with the attention head dimension.
        ModelConfig c = load_model_config(a.model);
        shape.name = a.model;
        shape.n_heads = c.n_heads;
        shape.n_kv_heads = c.n_kv_heads;
        shape.head_dim = c.head_dim;
        shape.index_heads = c.n_kv_heads;
        shape.index_dim = c.head_dim;
    }
    std::vector<long long> contexts = parse_size_list(a.context);
    nlohmann::json rows = nlohmann::json::array();
    Table table({"context", "dense FLOPs/token", "MSA FLOPs/token", "ratio"});
    for (long long n : contexts) {
        double dense = dense_flops_per_token(shape, static_cast<double>(n));
        double sparse = msa_flops_per_token(shape, static_cast<double>(n), a.k, a.block);
        double ratio = flops_ratio(shape, static_cast<double>(n), a.k, a.block);
        rows.push_back({{"context", n}, {"dense_flops", dense}, {"msa_flops", sparse}, {"ratio", ratio}});
        table.add({std::to_string(n), human_count(dense), human_count(sparse), fixed(ratio, 2) + "x"});
    }
    double ceiling = flops_ratio_ceiling(shape);
    if (a.json) {
        print_json({{"shape",
                     {{"name", shape.name},
                      {"n_heads", shape.n_heads},
                      {"n_kv_heads", shape.n_kv_heads},
                      {"head_dim", shape.head_dim},
                      {"index_heads", shape.index_heads},
                      {"index_dim", shape.index_dim}}},
                    {"k", a.k},
                    {"block", a.block},
                    {"rows", rows},
                    {"ceiling", ceiling}});
        return 0;
    }
    std::cout << "Attention FLOPs per token per layer, causal prefill (" << shape.name << ": Hq " << shape.n_heads
              << ", dh " << shape.head_dim << ", index " << shape.index_heads << "x" << shape.index_dim << ", k "
              << a.k << ", B " << a.block << ")\n\n";
    table.print(std::cout);
    std::cout << "\nceiling (k*B << N): " << fixed(ceiling, 2) << "x\n";
    return 0;
}

const RegisterCommand registered{Command{
    "flops", "Attention FLOPs per token, dense vs MSA, over context lengths", 40, [](CLI::App& sub) {
        auto args = std::make_shared<FlopsArgs>();
        sub.add_option("--preset", args->preset, "Attention shape preset (msa-m3)");
        sub.add_option("--model", args->model, "Take the shape from a model file or folder");
        sub.add_option("--context", args->context, "Context lengths, e.g. 4K,64K,128K,1M")->required();
        sub.add_option("--k", args->k, "Blocks kept per query")->capture_default_str();
        sub.add_option("--block", args->block, "Tokens per key block")->capture_default_str();
        sub.add_flag("--json", args->json, "Print one JSON object");
        return [args] { return run_flops(*args); };
    }}};

}  // namespace
}  // namespace msa::cli
