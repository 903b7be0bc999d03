// msascope-cli run: the real model over real text, dense vs MSA, per layer.
#include <iostream>
#include <set>

#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "app/cli/run_support.h"
#include "core/analysis.h"
#include "core/errors.h"
#include "core/flops.h"
#include "core/model.h"
#include "core/parallel.h"
#include "core/tokenizer.h"

namespace msa::cli {
namespace {

struct RunArgs {
    InputArgs input;
    MsaArgs msa;
    std::string layers;
    std::string capture = "full";
    std::string capture_layers;
    bool no_perplexity = false;
    bool no_random = false;
    bool no_qkv = false;
    std::string session;
    bool json = false;
};

CaptureLevel parse_capture(const std::string& s) {
    if (s == "none") return CaptureLevel::none;
    if (s == "selections") return CaptureLevel::selections;
    if (s == "full") return CaptureLevel::full;
    throw InputError("--capture must be none, selections or full (got '" + s + "')");
}

int run_run(const RunArgs& a) {
    MsaConfig config = a.msa.config();
    AnalysisOptions options;
    options.config = config;
    options.threads = a.input.threads > 0 ? a.input.threads : default_threads();
    options.perplexity = !a.no_perplexity;
    options.random_control = !a.no_random;
    options.capture = parse_capture(a.capture);
    options.keep_qkv = !a.no_qkv;
    if (!a.layers.empty()) options.layers = parse_int_list(a.layers);
    if (!a.capture_layers.empty()) {
        options.capture_layers = parse_int_list(a.capture_layers);
        if (options.capture == CaptureLevel::selections) options.capture = CaptureLevel::full;
    }
    options.backend = backend_for(a.msa.backend);  // InputError (exit 2) unless usable here
    SessionRecorder session(a.session);

    LoadedInput in = load_input(a.input, std::cerr);
    options.needles = in.needles;
    if (options.capture == CaptureLevel::full && options.capture_layers.empty()) {
        // Full heatmap data for one layer by default: all 30 layers' scores and
        // dense mass would dominate a session file; selections are kept for all.
        options.capture_layers = {in.model.config.n_layers / 2};
    }
    for (int l : options.capture_layers)
        if (l < 0 || l >= in.model.config.n_layers)
            throw InputError("--capture-layers: layer " + std::to_string(l) + " is out of range");
    if (!budget_has_free_slot(config))
        std::cerr << "warning: k = " << config.k << " with sink = " << config.sink
                  << " leaves no free slot: only the forced blocks are kept\n";

    session.begin(make_run_identity(in.model, in.tokens, in.text, options), "run");
    Progress progress("run");
    options.progress = progress.callback();
    RunResult result = analyze(in.model, in.tokens, in.text, options);
    progress.finish();
    result.timings.insert(result.timings.begin(), {"load model", in.load_ms});

    session.complete(result);

    if (a.json) {
        nlohmann::json layers = nlohmann::json::array();
        for (const auto& l : result.layers)
            layers.push_back({{"layer", l.layer},
                              {"recall_mean", number_or_null(l.recall_mean)},
                              {"recall_p5", number_or_null(l.recall_p5)},
                              {"recall_p50", number_or_null(l.recall_p50)},
                              {"output_rel_error", number_or_null(l.output_rel_error)},
                              {"group_recall_mean", l.group_recall_mean}});
        nlohmann::json timings = nlohmann::json::object();
        for (const auto& t : result.timings) timings[t.name] = t.ms;
        print_json({{"tokens", result.tokens.size()},
                    {"model", result.model_path},
                    {"model_hash", result.model_hash},
                    {"config",
                     {{"k", config.k}, {"block", config.block}, {"scorer", to_string(config.scorer)},
                      {"sink", config.sink}, {"index", to_string(config.index)}}},
                    {"backend", result.backend},
                    {"threads", result.threads},
                    {"layers", layers},
                    {"perplexity",
                     {{"dense", number_or_null(result.perplexity_dense)},
                      {"msa", number_or_null(result.perplexity_msa)},
                      {"random", number_or_null(result.perplexity_random)}}},
                    {"needle_hit_rate", number_or_null(result.needle_hit_rate)},
                    {"flops_ratio", number_or_null(result.flops_ratio())},
                    {"timings_ms", timings},
                    {"warnings", result.warnings},
                    {"session", session.json_path()},
                    {"run_id", session.json_run_id()}});
        return 0;
    }
    print_run_report(result, std::cout);
    if (session.enabled()) std::cout << "\nsaved to " << session.path() << " as run " << session.run_id() << "\n";
    return 0;
}

const RegisterCommand registered{Command{
    "run", "Run the model over a text: per-layer MSA recall and error, dense vs MSA perplexity", 20,
    [](CLI::App& sub) {
        auto args = std::make_shared<RunArgs>();
        add_input_options(sub, args->input);
        add_msa_options(sub, args->msa);
        sub.add_option("--layers", args->layers, "Layers to analyse, e.g. 0,5,29 (default: all)");
        sub.add_option("--capture", args->capture, "What to keep: none | selections (all layers) | full (+ block scores and dense mass of --capture-layers, for heatmaps)")
            ->capture_default_str();
        sub.add_option("--capture-layers", args->capture_layers,
                       "Layers whose block scores and dense mass are kept (implies --capture full; default: the middle layer)");
        sub.add_flag("--no-perplexity", args->no_perplexity, "Skip the MSA and random-control forwards");
        sub.add_flag("--no-random", args->no_random, "Skip the random-scorer control forward");
        sub.add_flag("--no-qkv", args->no_qkv,
                     "Do not keep the --capture-layers' Q/K/V (float16 in the session, about 1.9 MB per 1K tokens "
                     "and layer for SmolLM2-135M); without them the app cannot re-pool for another scorer or block size");
        sub.add_option("--session", args->session, "Append the run to this SQLite session file");
        sub.add_flag("--json", args->json, "Print one JSON object on stdout");
        return [args] { return run_run(*args); };
    }}};

}  // namespace
}  // namespace msa::cli
