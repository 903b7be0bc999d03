// msascope-cli sweep: many MSA settings on one text (or a generated
// multi-needle document, or synthetic attention inputs), one row each.
//
// Cost: recall and needle hits of every combination come from ONE dense
// forward (its attention hook scores the blocks once per scorer and block
// size and selects for every k and sink on the same Q/K/V); perplexity needs
// one more forward per combination with MSA in every layer. That is the bulk
// of the time, so the plan and an estimate are printed before it starts.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>

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
#include "core/synthetic.h"
#include "core/tokenizer.h"

namespace msa::cli {
namespace {

struct SweepArgs {
    InputArgs input;
    std::string k_list;
    std::string scorer_list = "max";
    std::string sink_list = "0";
    std::string block_list = "128";
    std::string backend = "cpu";
    std::string synthetic;
    bool no_perplexity = false;
    std::string session;
    bool json = false;
};



std::string grid_label(const StudyGrid& grid) {
    auto join = [](const auto& items, auto&& text) {
        std::string s;
        for (const auto& item : items) s += (s.empty() ? "" : ",") + text(item);
        return s;
    };
    auto num = [](int v) { return std::to_string(v); };
    return "k " + join(grid.ks, num) + " x " + join(grid.scorers, [](Scorer s) { return std::string(to_string(s)); }) +
           " x sink " + join(grid.sinks, num) + " x B " + join(grid.blocks, num);
}

std::string percent_change(double value, double reference) {
    if (!std::isfinite(value) || !std::isfinite(reference) || reference == 0) return "";
    double p = 100 * (value / reference - 1);
    return std::string(" (") + (p >= 0 ? "+" : "") + fixed(p, 2) + "%)";
}

// sweep --synthetic: the grid on synthetic Q/K/V, no model.
int run_synthetic(const SweepArgs& a, const StudyGrid& grid, int threads) {
    SyntheticOptions o;
    o.kind = parse_synthetic_kind(a.synthetic);
    o.seed = a.input.seed;
    o.shape = AttentionShape{a.input.tokens > 0 ? a.input.tokens : 4096, 8, 2, 64};
    if (a.input.tokens < 0) throw InputError("--tokens must be positive");
    SyntheticAttention input = make_synthetic_attention(o);
    nlohmann::json rows = nlohmann::json::array();
    Table table({"k", "scorer", "sink", "block", "recall", "recall p5", "uniform pick", "output rel err"});
    Progress progress("sweep");
    const auto configs = grid.configs();
    for (size_t i = 0; i < configs.size(); ++i) {
        const StudyConfig& c = configs[i];
        progress.update(static_cast<double>(i) / configs.size(), "k " + std::to_string(c.k));
        MsaConfig config;
        config.k = c.k;
        config.block = c.block;
        config.scorer = c.scorer;
        config.sink = c.sink;
        config.seed = a.input.seed;
        SyntheticMeasure m = measure_synthetic(input, config, threads);
        rows.push_back({{"k", c.k}, {"scorer", to_string(c.scorer)}, {"sink", c.sink}, {"block", c.block},
                        {"recall_mean", number_or_null(m.recall_mean)}, {"recall_p5", number_or_null(m.recall_p5)},
                        {"uniform_recall", number_or_null(m.uniform_recall)},
                        {"output_rel_error", number_or_null(m.output_rel_error)}, {"perplexity", nullptr},
                        {"needle_hit_rate", nullptr}});
        table.add({std::to_string(c.k), to_string(c.scorer), std::to_string(c.sink), std::to_string(c.block),
                   fixed(m.recall_mean, 4), fixed(m.recall_p5, 4), fixed(m.uniform_recall, 4),
                   fixed(m.output_rel_error, 4)});
    }
    progress.finish();
    const AttentionShape& s = o.shape;
    if (a.json) {
        print_json({{"synthetic", to_string(o.kind)},
                    {"shape", {{"tokens", s.n_tokens}, {"n_heads", s.n_heads}, {"n_kv_heads", s.n_kv_heads},
                               {"head_dim", s.head_dim}}},
                    {"seed", o.seed},
                    {"rows", rows},
                    {"dense_perplexity", nullptr}});
        return 0;
    }
    std::cout << "synthetic " << to_string(o.kind) << " attention: " << s.n_tokens << " tokens, " << s.n_heads
              << " q / " << s.n_kv_heads << " kv heads, dim " << s.head_dim << "\n\n";
    table.print(std::cout);
    std::cout << "\nuniform pick = expected recall of the forced blocks plus k - forced blocks chosen at random\n";
    return 0;
}

int run_sweep(const SweepArgs& a) {
    StudyGrid grid = parse_study_grid(a.k_list, a.scorer_list, a.sink_list, a.block_list);
    const std::vector<std::string> warnings = budget_warnings(grid);
    for (const std::string& w : warnings) std::cerr << "warning: " << w << "\n";
    const int threads = a.input.threads > 0 ? a.input.threads : default_threads();
    if (!a.synthetic.empty()) {
        if (!a.input.text.empty() || a.input.needles > 0)
            throw InputError("--synthetic replaces --text and --needles: give only one of them");
        return run_synthetic(a, grid, threads);
    }
    check_backend(a.backend);
    if (a.input.text.empty() && a.input.needles <= 0) throw InputError("give --text FILE, --needles N or --synthetic KIND");
    if (a.input.tokens < 0) throw InputError("--tokens must be positive");
    // Opened now so that a bad session file fails before minutes of work.
    SessionRecorder session(a.session);

    LoadedInput in = load_input(a.input, std::cerr);
    Model& model = in.model;
    const std::string& text = in.text;
    const std::vector<int>& tokens = in.tokens;
    const NeedleDocument& document = in.document;
    const bool with_needles = !in.needles.empty();
    const double load_ms = in.load_ms;
    warn_past_context(model, tokens.size(), std::cerr);

    StudyOptions options;
    options.threads = threads;
    options.recall = true;
    options.msa_forwards = !a.no_perplexity;
    options.seed = a.input.seed;
    options.backend = backend_for(a.backend);
    const auto configs = grid.configs();
    const double estimate_s = announce_study("sweep", grid_label(grid), model, tokens, grid, options, threads);
    Progress progress("sweep");
    options.progress = progress.callback();
    RunResult summary = study_identity(model, tokens, text, document.needles, configs.front(), threads,
                                       options.backend, warnings);
    session.begin(summary, "sweep");
    StudyResult study = run_quality_study(model, tokens, with_needles ? &document : nullptr, grid, options);
    progress.finish();

    nlohmann::json rows = nlohmann::json::array();
    Table table(with_needles ? std::vector<std::string>{"k", "scorer", "sink", "block", "recall", "perplexity",
                                                        "needle hits", "answers"}
                             : std::vector<std::string>{"k", "scorer", "sink", "block", "recall", "perplexity"});
    const int n_needles = static_cast<int>(document.facts.size());
    for (const StudyRow& r : study.rows) {
        nlohmann::json row = {{"k", r.config.k},
                              {"scorer", to_string(r.config.scorer)},
                              {"sink", r.config.sink},
                              {"block", r.config.block},
                              {"recall_mean", number_or_null(r.recall_mean)},
                              {"perplexity", number_or_null(r.perplexity)},
                              {"needle_hit_rate", number_or_null(r.needle_hit_rate)},
                              {"forward_ms", number_or_null(r.forward_ms)}};
        if (with_needles)
            row["answers_correct"] = r.answers_correct >= 0 ? nlohmann::json(r.answers_correct) : nlohmann::json(nullptr);
        rows.push_back(row);
        std::vector<std::string> cells = {std::to_string(r.config.k), to_string(r.config.scorer),
                                          std::to_string(r.config.sink), std::to_string(r.config.block),
                                          fixed(r.recall_mean, 4),
                                          fixed(r.perplexity, 3) + percent_change(r.perplexity, study.dense_perplexity)};
        if (with_needles) {
            cells.push_back(fixed(r.needle_hit_rate, 3));
            cells.push_back(r.answers_correct >= 0 ? std::to_string(r.answers_correct) + "/" + std::to_string(n_needles)
                                                   : "-");
        }
        table.add(cells);
    }

    std::vector<StageTiming> timings = study.timings;
    if (load_ms > 0) timings.insert(timings.begin(), {"load model", load_ms});

    summary.timings = timings;
    summary.perplexity_dense = study.dense_perplexity;
    summary.finished_unix_ms = unix_ms();
    session.complete_rows(summary, rows);

    if (a.json) {
        nlohmann::json timings_json = nlohmann::json::object();
        for (const auto& t : timings) timings_json[t.name] = t.ms;
        nlohmann::json out = {{"tokens", tokens.size()},
                              {"model", model.path},
                              {"threads", threads},
                              {"rows", rows},
                              {"dense_perplexity", number_or_null(study.dense_perplexity)},
                              {"estimated_s", estimate_s},
                              {"timings_ms", timings_json},
                              {"warnings", warnings},
                              {"session", session.json_path()},
                              {"run_id", session.json_run_id()}};
        if (with_needles) {
            out["needles"] = n_needles;
            out["dense_answers_correct"] = study.dense_answers_correct;
        }
        print_json(out);
        return 0;
    }
    std::cout << "model   " << model.path << "\ntokens  " << tokens.size()
              << (with_needles ? " (generated document, " + std::to_string(n_needles) + " needles)" : std::string())
              << "   " << threads << " threads\n\n";
    table.print(std::cout);
    std::cout << "\ndense perplexity " << fixed(study.dense_perplexity, 3);
    if (with_needles) std::cout << "   dense answers " << study.dense_answers_correct << "/" << n_needles;
    std::cout << "\nrecall = dense attention mass on the selected blocks (mean over layers, queries, heads)\n";
    if (with_needles)
        std::cout << "needle hits = share of (layer, group, needle) whose fact block is selected at its question\n";
    print_timings_and_warnings(timings, warnings, std::cout);
    if (session.enabled()) std::cout << "saved to " << session.path() << " as run " << session.run_id() << "\n";
    return 0;
}

const RegisterCommand registered{Command{
    "sweep", "Recall, perplexity and needle hits over a grid of k, scorer, sink and block size", 30,
    [](CLI::App& sub) {
        auto args = std::make_shared<SweepArgs>();
        sub.footer(
            "Cost: one dense forward computes every combination's recall and needle hits; perplexity\n"
            "needs one forward with MSA in every layer PER COMBINATION (the bulk of the time; skip it\n"
            "with --no-perplexity). An estimate is printed before the work starts.");
        add_input_options(sub, args->input);
        sub.add_option("--k", args->k_list, "Blocks kept per query, a list: 2,4,8,16")->required();
        sub.add_option("--scorer", args->scorer_list, "Block pooling, a list of max | mean | quest | random")
            ->capture_default_str();
        sub.add_option("--sink", args->sink_list, "Sink block forced: a list of 0 | 1")->capture_default_str();
        sub.add_option("--block", args->block_list, "Tokens per key block, a list: 64,128")->capture_default_str();
        sub.add_option("--backend", args->backend, "cpu | cuda: where the forwards run (selection diagnostics stay on the CPU)")
            ->capture_default_str();
        sub.add_option("--synthetic", args->synthetic,
                       "Instead of a model: synthetic attention inputs, concentrated | noise (--tokens sets N)");
        sub.add_flag("--no-perplexity", args->no_perplexity, "Skip the per-combination MSA forwards");
        sub.add_option("--session", args->session, "Append the sweep to this SQLite session file");
        sub.add_flag("--json", args->json, "Print one JSON object on stdout");
        return [args] { return run_sweep(*args); };
    }}};

}  // namespace
}  // namespace msa::cli
