#include "app/cli/run_support.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "app/cli/cli_common.h"
#include "core/analysis.h"
#include "core/backend.h"
#include "core/errors.h"
#include "core/needle.h"
#include "core/tokenizer.h"
#ifdef MSASCOPE_HAVE_CUDA
#include "kernels/cuda_attention.h"
#endif

#ifdef MSASCOPE_HAVE_CUDA
#include "kernels/cuda_backend.h"
#endif

namespace msa::cli {

MsaConfig MsaArgs::config() const {
    MsaConfig c;
    if (k < 1) throw InputError("--k must be at least 1 (got " + std::to_string(k) + ")");
    if (block < 1) throw InputError("--block must be at least 1 (got " + std::to_string(block) + ")");
    if (sink != 0 && sink != 1) throw InputError("--sink must be 0 or 1 (got " + std::to_string(sink) + ")");
    c.k = k;
    c.block = block;
    c.scorer = parse_scorer(scorer);
    c.sink = sink;
    c.index = parse_index_kind(index);
    return c;
}

void add_input_options(CLI::App& sub, InputArgs& a) {
    sub.add_option("--model", a.model, "GGUF file or Hugging Face folder (default: the cached SmolLM2-135M)");
    auto* text = sub.add_option("--text", a.text, "UTF-8 text file to run");
    auto* needles = sub.add_option("--needles", a.needles, "Generate a multi-needle document with N planted facts");
    text->excludes(needles);
    sub.add_option("--tokens", a.tokens, "Use the first N tokens (needle documents are generated to this length)");
    sub.add_option("--threads", a.threads, "CPU threads (default: all cores)");
    sub.add_option("--seed", a.seed, "Seed of the generated document")->capture_default_str();
}

void add_msa_options(CLI::App& sub, MsaArgs& a) {
    sub.add_option("--k", a.k, "Blocks kept per query and GQA group (forced ones included)")->capture_default_str();
    sub.add_option("--block", a.block, "Tokens per key block")->capture_default_str();
    sub.add_option("--scorer", a.scorer, "Block pooling: max | mean | quest | random")->capture_default_str();
    sub.add_option("--sink", a.sink, "1: always keep block 0 as well as the local block")->capture_default_str();
    sub.add_option("--index", a.index, "Index branch: free (group-mean query . key) | trained")->capture_default_str();
    sub.add_option("--backend", a.backend, "cpu | cuda")->capture_default_str();
}

LoadedInput load_input(const InputArgs& a, std::ostream& log) {
    if (a.text.empty() && a.needles <= 0) throw InputError("give --text FILE or --needles N");
    if (a.tokens < 0) throw InputError("--tokens must be positive");
    if (a.needles < 0) throw InputError("--needles must be positive");
    if (a.needles > max_needles())
        throw InputError("--needles must be between 1 and " + std::to_string(max_needles()) + " (got " +
                         std::to_string(a.needles) + ")");
    LoadedInput in;
    std::string text = a.text.empty() ? std::string() : read_text_file(a.text);  // fail fast, before the model load
    const std::string path = resolve_model_path(a.model);
    auto t0 = std::chrono::steady_clock::now();
    in.model = load_model(path);
    in.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    Tokenizer tokenizer(in.model.vocab);
    if (a.needles > 0) {
        NeedleDocumentOptions o;
        o.target_tokens = a.tokens > 0 ? a.tokens : 8192;
        o.n_needles = a.needles;
        o.seed = a.seed;
        o.add_bos = in.model.vocab.add_bos;
        // Kept whole (never truncated): the answers and spans must stay exact.
        in.document = make_needle_document(tokenizer, o);
        in.text = in.document.text;
        in.tokens = in.document.tokens;
        in.needles = in.document.needles;
        log << "generated a " << in.tokens.size() << "-token document with " << in.needles.size()
            << " planted facts (seed " << a.seed << ")\n";
        return in;
    }
    in.text = std::move(text);
    in.tokens = tokenizer.encode(in.text, in.model.vocab.add_bos);
    if (a.tokens > 0) {
        if (static_cast<int>(in.tokens.size()) < a.tokens)
            log << "note: the text has " << in.tokens.size() << " tokens, fewer than --tokens " << a.tokens << "\n";
        else
            in.tokens.resize(a.tokens);
    }
    if (in.tokens.size() < 2) throw InputError("the text has fewer than 2 tokens");
    for (int id : in.tokens)
        if (id < 0 || id >= in.model.config.vocab)
            throw InputError("token id " + std::to_string(id) + " is outside the model's vocabulary");
    return in;
}

void warn_past_context(const Model& model, size_t n_tokens, std::ostream& log) {
    if (model.config.context_length > 0 && static_cast<int>(n_tokens) > model.config.context_length)
        log << "warning: " << n_tokens << " tokens exceed the model's trained context of "
            << model.config.context_length << "\n";
}

void check_backend(const std::string& backend) {
    if (backend == "cpu") return;
    if (backend == "cuda") {
#ifdef MSASCOPE_HAVE_CUDA
        std::string why;
        if (!cuda::cuda_available(&why)) throw InputError("--backend cuda: no CUDA device: " + why);
        return;
#else
        throw InputError("--backend cuda: this build has no CUDA support");
#endif
    }
    throw InputError("--backend must be cpu or cuda (got '" + backend + "')");
}

void check_session_path(const std::string& path) { sessions::Writer probe(path); }

SessionRecorder::SessionRecorder(const std::string& path) : path_(path) {
    if (!path.empty()) writer_ = std::make_unique<sessions::Writer>(path);
}

SessionRecorder::~SessionRecorder() = default;

void SessionRecorder::begin(const RunResult& identity, const std::string& kind) {
    if (writer_) run_id_ = writer_->begin_run(identity, kind);
}

void SessionRecorder::complete(const RunResult& r) {
    if (!writer_) return;
    const int64_t id = run_id_;
    writer_->write_layers(id, r.layers);
    for (const LayerCapture& c : r.captures) writer_->write_capture(id, c);
    if (!r.kernels.empty()) writer_->write_kernels(id, r.kernels);
    writer_->write_timings(id, r.timings);
    writer_->write_summary(id, r);
    writer_->finish_run(id);
}

void SessionRecorder::complete_rows(const RunResult& summary, const nlohmann::json& rows) {
    if (!writer_) return;
    writer_->write_sweep_rows(run_id_, rows);
    writer_->write_timings(run_id_, summary.timings);
    writer_->write_summary(run_id_, summary);
    writer_->finish_run(run_id_);
}

nlohmann::json SessionRecorder::json_path() const { return writer_ ? nlohmann::json(path_) : nlohmann::json(nullptr); }
nlohmann::json SessionRecorder::json_run_id() const {
    return writer_ && run_id_ >= 0 ? nlohmann::json(run_id_) : nlohmann::json(nullptr);
}

const ComputeBackend* backend_for(const std::string& backend) {
    check_backend(backend);
#ifdef MSASCOPE_HAVE_CUDA
    if (backend == "cuda") return &cuda::cuda_backend();
#endif
    return nullptr;
}

double announce_study(const std::string& command, const std::string& what, const Model& model,
                    const std::vector<int>& tokens, const StudyGrid& grid, StudyOptions& options, int threads) {
    const size_t combinations = grid.configs().size();
    const double estimate_s = estimate_study_seconds(model, tokens, grid, options);
    std::cerr << command << ": " << what << " = " << combinations << " combinations on " << tokens.size()
              << " tokens: 1 dense forward with every combination's selections";
    if (options.msa_forwards) std::cerr << " + " << combinations << " forwards with MSA in every layer";
    std::cerr << "; estimated " << fixed(estimate_s, 0) << " s on " << threads << " threads\n";
    options.on_dense_done = [command](double dense_ms, int left) {
        if (left > 0)
            std::cerr << "\n" << command << ": dense pass took " << fixed(dense_ms / 1000, 1) << " s; " << left
                      << " MSA forwards to go\n";
    };
    return estimate_s;
}

RunResult study_identity(const Model& model, const std::vector<int>& tokens, const std::string& text,
                         const std::vector<Needle>& needles, const StudyConfig& first, int threads,
                         const ComputeBackend* backend, const std::vector<std::string>& grid_warnings) {
    AnalysisOptions o;
    o.config.k = first.k;
    o.config.block = first.block;
    o.config.scorer = first.scorer;
    o.config.sink = first.sink;
    o.threads = threads;
    o.needles = needles;
    o.backend = backend;
    RunResult summary = make_run_identity(model, tokens, text, o);
    summary.needles = needles;
    auto& w = summary.warnings;
    w.erase(std::remove_if(w.begin(), w.end(),
                           [](const std::string& s) { return s.find("no free slot") != std::string::npos; }),
            w.end());
    w.insert(w.end(), grid_warnings.begin(), grid_warnings.end());
    return summary;
}

void print_timings_and_warnings(const std::vector<StageTiming>& timings, const std::vector<std::string>& warnings,
                                std::ostream& os) {
    os << "time   ";
    for (const auto& t : timings) os << " " << t.name << " " << fixed(t.ms / 1000, 1) << " s;";
    os << "\n";
    for (const auto& w : warnings) os << "warning: " << w << "\n";
}

void print_run_report(const RunResult& r, std::ostream& os) {
    const auto& c = r.config;
    os << "model   " << r.model_path << " (" << r.model_config.arch << ", " << r.model_config.n_layers << " layers, "
       << r.model_config.n_heads << " q / " << r.model_config.n_kv_heads << " kv heads)\n";
    os << "tokens  " << r.tokens.size() << "   MSA k " << c.k << ", block " << c.block << ", scorer "
       << to_string(c.scorer) << ", sink " << c.sink << ", index " << to_string(c.index) << "   backend " << r.backend
       << ", " << r.threads << " threads\n\n";
    Table t({"layer", "recall mean", "recall p5", "recall p50", "output rel err"});
    for (const auto& l : r.layers)
        t.add({std::to_string(l.layer), fixed(l.recall_mean, 4), fixed(l.recall_p5, 4), fixed(l.recall_p50, 4),
               fixed(l.output_rel_error, 4)});
    t.print(os);
    if (!r.layers.empty()) {
        double recall = 0, err = 0;
        for (const auto& l : r.layers) {
            recall += l.recall_mean;
            err += l.output_rel_error;
        }
        os << "mean over layers: recall " << fixed(recall / r.layers.size(), 4) << ", output rel err "
           << fixed(err / r.layers.size(), 4) << "\n";
    }
    os << "\nperplexity  dense " << fixed(r.perplexity_dense, 3) << "   MSA " << fixed(r.perplexity_msa, 3);
    if (std::isfinite(r.perplexity_dense) && std::isfinite(r.perplexity_msa))
        os << " (" << (r.perplexity_msa >= r.perplexity_dense ? "+" : "")
           << fixed(100 * (r.perplexity_msa / r.perplexity_dense - 1), 2) << "%)";
    os << "   random-selection control " << fixed(r.perplexity_random, 3) << "\n";
    if (std::isfinite(r.needle_hit_rate)) os << "needle block hit rate " << fixed(r.needle_hit_rate, 3) << "\n";
    os << "attention FLOPs  dense " << human_count(r.dense_attention_flops) << ", MSA "
       << human_count(r.msa_attention_flops) << " (ratio " << fixed(r.flops_ratio(), 2) << "x)";
    if (r.flops_ratio() < 1)
        os << ": at this length the index pass and the k*B-token budget cost more than they save";
    os << "\n";
    print_timings_and_warnings(r.timings, r.warnings, os);
}

}  // namespace msa::cli
