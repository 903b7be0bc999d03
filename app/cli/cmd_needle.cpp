// msascope-cli needle: multi-needle retrieval vs the MSA budget.
//
// A generated document (haystack + N planted facts + the questions at the
// end) runs once densely; that forward's attention hook selects blocks for
// every (k, scorer, sink, block) combination on the same Q/K/V, which gives
// each combination's needle block hit rate at the question tokens. Whether
// the model still ANSWERS needs the model run with MSA in every layer: one
// forward per combination (the answers are in the document, so one forward
// checks them all by teacher forcing). --no-answers skips those forwards.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "core/clock.h"
#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "app/cli/run_support.h"
#include "core/analysis.h"
#include "core/backend.h"
#include "core/errors.h"
#include "core/model.h"
#include "core/needle.h"
#include "core/parallel.h"
#include "core/tokenizer.h"

namespace msa::cli {
namespace {

struct NeedleArgs {
    std::string model;
    int needles = 0;
    int tokens = 8192;
    std::string k_list = "2,3,4,8,16";
    std::string scorer_list = "max";
    std::string sink_list = "0";
    std::string block_list = "128";
    int threads = 0;
    uint64_t seed = 1;
    std::string backend = "cpu";
    bool no_answers = false;
    std::string session;
    bool json = false;
};



int run_needle(const NeedleArgs& a) {
    StudyGrid grid = parse_study_grid(a.k_list, a.scorer_list, a.sink_list, a.block_list);
    if (a.needles < 1) throw InputError("--needles must be at least 1 (got " + std::to_string(a.needles) + ")");
    if (a.tokens < 2) throw InputError("--tokens must be at least 2 (got " + std::to_string(a.tokens) + ")");
    if (a.threads < 0) throw InputError("--threads must be positive");
    check_backend(a.backend);
    const std::vector<std::string> warnings = budget_warnings(grid);
    for (const std::string& w : warnings) std::cerr << "warning: " << w << "\n";
    // Opened now so that a bad session file fails before minutes of work.
    SessionRecorder session(a.session);
    const int threads = a.threads > 0 ? a.threads : default_threads();

    InputArgs input;
    input.model = a.model;
    input.needles = a.needles;
    input.tokens = a.tokens;
    input.seed = a.seed;
    LoadedInput in = load_input(input, std::cerr);
    const Model& model = in.model;
    const NeedleDocument& document = in.document;
    const Tokenizer tokenizer(model.vocab);
    const double load_ms = in.load_ms;
    warn_past_context(model, document.tokens.size(), std::cerr);

    StudyOptions options;
    options.threads = threads;
    options.recall = false;  // the hit rate needs only the selections
    options.msa_forwards = !a.no_answers;
    options.seed = a.seed;
    options.backend = backend_for(a.backend);
    const auto configs = grid.configs();
    const double estimate_s = announce_study("needle", std::to_string(a.needles) + " needles", model, document.tokens, grid, options, threads);
    Progress progress("needle");
    options.progress = progress.callback();
    RunResult summary = study_identity(model, document.tokens, document.text, document.needles, configs.front(), threads,
                                       options.backend, warnings);
    session.begin(summary, "needle");
    StudyResult study = run_quality_study(model, document.tokens, &document, grid, options);
    progress.finish();

    const int n = static_cast<int>(document.facts.size());
    nlohmann::json rows = nlohmann::json::array();
    Table table({"k", "scorer", "sink", "block", "needle hits", "answers", "perplexity", "forward s"});
    for (const StudyRow& r : study.rows) {
        const nlohmann::json answers =
            r.answers_correct >= 0 ? nlohmann::json(r.answers_correct) : nlohmann::json(nullptr);
        rows.push_back({{"k", r.config.k},
                        {"scorer", to_string(r.config.scorer)},
                        {"sink", r.config.sink},
                        {"block", r.config.block},
                        {"needle_hit_rate", number_or_null(r.needle_hit_rate)},
                        {"answers_correct", answers},
                        {"perplexity", number_or_null(r.perplexity)},
                        {"forward_ms", number_or_null(r.forward_ms)}});
        table.add({std::to_string(r.config.k), to_string(r.config.scorer), std::to_string(r.config.sink),
                   std::to_string(r.config.block), fixed(r.needle_hit_rate, 3),
                   r.answers_correct >= 0 ? std::to_string(r.answers_correct) + "/" + std::to_string(n) : "-",
                   fixed(r.perplexity, 3), fixed(r.forward_ms / 1000, 1)});
    }
    const std::vector<bool> dense_correct = answers_correct(document, study.dense_argmax);
    nlohmann::json facts = nlohmann::json::array();
    Table fact_table({"key", "value", "depth", "fact tokens", "question token", "dense answer"});
    for (int i = 0; i < n; ++i) {
        const PlantedFact& f = document.facts[i];
        const std::string predicted = predicted_answer(tokenizer, document, i, study.dense_argmax);
        facts.push_back({{"key", f.key},
                         {"value", f.value},
                         {"depth_percent", f.depth_percent},
                         {"value_tokens", {f.value_token_begin, f.value_token_end}},
                         {"question_token", f.question_token},
                         {"dense_correct", static_cast<bool>(dense_correct[i])},
                         {"dense_prediction", predicted}});
        fact_table.add({f.key, f.value, std::to_string(f.depth_percent) + "%",
                        std::to_string(f.value_token_begin) + ".." + std::to_string(f.value_token_end),
                        std::to_string(f.question_token),
                        dense_correct[i] ? std::string("ok") : "wrong: '" + predicted + "'"});
    }

    std::vector<StageTiming> timings = study.timings;
    timings.insert(timings.begin(), {"load model", load_ms});

    summary.timings = timings;
    summary.perplexity_dense = study.dense_perplexity;
    summary.finished_unix_ms = unix_ms();
    session.complete_rows(summary, rows);

    if (a.json) {
        nlohmann::json timings_json = nlohmann::json::object();
        for (const auto& t : timings) timings_json[t.name] = t.ms;
        print_json({{"tokens", document.tokens.size()},
                    {"model", model.path},
                    {"seed", a.seed},
                    {"threads", threads},
                    {"needles", n},
                    {"rows", rows},
                    {"dense_answers_correct", study.dense_answers_correct},
                    {"dense_perplexity", number_or_null(study.dense_perplexity)},
                    {"facts", facts},
                    {"estimated_s", estimate_s},
                    {"timings_ms", timings_json},
                    {"warnings", warnings},
                    {"session", session.json_path()},
                    {"run_id", session.json_run_id()}});
        return 0;
    }
    std::cout << "model   " << model.path << "\ndocument " << document.tokens.size() << " tokens, " << n
              << " needles (seed " << a.seed << "), " << threads << " threads\n\n";
    fact_table.print(std::cout);
    std::cout << "\n";
    table.print(std::cout);
    std::cout << "\ndense: answers " << study.dense_answers_correct << "/" << n << ", perplexity "
              << fixed(study.dense_perplexity, 3) << "\n";
    std::cout << "needle hits = share of (layer, group, needle) whose fact block is selected at its question;\n"
                 "answers = needles whose greedy answer is right with MSA in every layer\n";
    print_timings_and_warnings(timings, warnings, std::cout);
    if (session.enabled()) std::cout << "saved to " << session.path() << " as run " << session.run_id() << "\n";
    return 0;
}

const RegisterCommand registered{Command{
    "needle", "Multi-needle retrieval: needle block hits and answers vs k, scorer, sink, block", 35,
    [](CLI::App& sub) {
        auto args = std::make_shared<NeedleArgs>();
        sub.footer(
            "Cost: one dense forward gives every combination's needle hits; checking the answers\n"
            "needs one forward with MSA in every layer PER COMBINATION (skip with --no-answers).\n"
            "An estimate is printed before the work starts.");
        sub.add_option("--model", args->model, "GGUF file or Hugging Face folder (default: the cached SmolLM2-135M)");
        sub.add_option("--needles", args->needles, "Facts to plant (1.." + std::to_string(max_needles()) + ")")
            ->required();
        sub.add_option("--tokens", args->tokens, "Document length in tokens")->capture_default_str();
        sub.add_option("--k", args->k_list, "Blocks kept per query, a list")->capture_default_str();
        sub.add_option("--scorer", args->scorer_list, "Block pooling, a list of max | mean | quest | random")
            ->capture_default_str();
        sub.add_option("--sink", args->sink_list, "Sink block forced: a list of 0 | 1")->capture_default_str();
        sub.add_option("--block", args->block_list, "Tokens per key block, a list")->capture_default_str();
        sub.add_option("--threads", args->threads, "CPU threads (default: all cores)");
        sub.add_option("--seed", args->seed, "Seed of the generated document")->capture_default_str();
        sub.add_option("--backend", args->backend, "cpu | cuda: where the forwards run (selection diagnostics stay on the CPU)")
            ->capture_default_str();
        sub.add_flag("--no-answers", args->no_answers, "Skip the per-combination MSA forwards (hit rate only)");
        sub.add_option("--session", args->session, "Append the study to this SQLite session file");
        sub.add_flag("--json", args->json, "Print one JSON object on stdout");
        return [args] { return run_needle(*args); };
    }}};

}  // namespace
}  // namespace msa::cli
