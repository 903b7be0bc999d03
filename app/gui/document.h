#pragma once
// A loaded run with what the views need beside it: where it came from and the
// text of each token (for tooltips and the query inspector).
#include <memory>
#include <string>
#include <vector>

#include "core/forward.h"
#include "core/run_result.h"
#include "sessions/bench_run.h"
#include "viz/study_charts.h"

namespace msa::gui {

struct Document {
    std::shared_ptr<const RunResult> run;
    std::string source;                   // "synthetic", "file.db:3", "model.gguf + text.txt"
    std::vector<std::string> token_text;  // per token; empty strings when unknown
    std::string session_path;             // set when the run came from a session file
    long long session_run = -1;
    viz::StudyTable study;                // the rows of a sweep / needle run (empty otherwise)
    sessions::BenchRun bench;             // the config and rows of a bench run (empty otherwise)

    bool empty() const { return !run; }
    std::string token(int t) const;
    // token(t) on one line: newlines, carriage returns and tabs written as \n, \r, \t.
    std::string token_on_one_line(int t) const;
    // Concatenated text of tokens [begin, end), newlines shown as spaces, cut to max_chars.
    std::string text(int begin, int end, size_t max_chars = 400) const;
};

// Token texts for a run: synthetic words, else the tokenizer of run.model_path
// when that file is readable, else empty (the views then show token ids).
std::vector<std::string> token_texts_for(const RunResult& run);

// Loaders the GUI runs on a Job thread.
Document load_session_document(const std::string& path, long long run_id);
Document synthetic_document(int n_tokens, const MsaConfig& config, int threads, const ProgressFn& progress,
                            const std::string& save_to = "");

}  // namespace msa::gui

namespace msa::gui {

// A model run as the Run button starts it: load, tokenize, msa::analyze with
// full captures (heatmaps need block scores and dense mass).
struct ModelRunRequest {
    std::string model_path;
    std::string text_path;
    int needles = 0;      // > 0 and no text: the generated multi-needle document (core/needle.h)
    uint64_t seed = 1;
    int max_tokens = 8192;
    MsaConfig config;
    int threads = 1;
    bool perplexity = false;
    std::string save_to;  // session file to append the run to; empty = do not save
};
Document model_run_document(const ModelRunRequest& request, const ProgressFn& progress);

}  // namespace msa::gui
