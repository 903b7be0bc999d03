#pragma once
// Options and steps shared by the commands that run the model (run, sweep,
// needle): model + text/needle input, MSA flags, saving to a session, the
// per-layer report.
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/msa.h"
#include "core/needle.h"
#include "core/run_result.h"
#include "sessions/session.h"

namespace msa {
class ComputeBackend;
}

namespace msa::cli {

struct InputArgs {
    std::string model;
    std::string text;
    int needles = 0;
    int tokens = 0;      // 0 = all of the text (needles: 8192)
    int threads = 0;     // 0 = all cores
    uint64_t seed = 1;
};

struct MsaArgs {
    int k = 16;
    int block = 128;
    std::string scorer = "max";
    int sink = 0;
    std::string index = "free";
    std::string backend = "cpu";
    MsaConfig config() const;  // validated; InputError on bad values
};

void add_input_options(CLI::App& sub, InputArgs& a);
void add_msa_options(CLI::App& sub, MsaArgs& a);

struct LoadedInput {
    Model model;
    std::string text;
    std::vector<int> tokens;
    std::vector<Needle> needles;
    NeedleDocument document;  // the generated document (facts, spans) with --needles; empty otherwise
    double load_ms = 0;
};
// Loads the model and the text (or generates the multi-needle document),
// tokenizes and truncates to --tokens; notes go to `log`.
LoadedInput load_input(const InputArgs& a, std::ostream& log);

void warn_past_context(const Model& model, size_t n_tokens, std::ostream& log);

// InputError unless the backend is usable for whole-model runs in this build.
void check_backend(const std::string& backend);
// --session FILE: opened before minutes of work (a bad file fails fast), the
// run marked begun (incomplete) before the forward starts, its stages written
// when it ends. An empty path records nothing.
// InputError when FILE cannot be a session (not SQLite, newer schema, unwritable).
void check_session_path(const std::string& path);

class SessionRecorder {
public:
    explicit SessionRecorder(const std::string& path);
    ~SessionRecorder();
    void begin(const RunResult& identity, const std::string& kind);
    void complete(const RunResult& result);                   // stages + finish
    void complete_rows(const RunResult& summary, const nlohmann::json& rows);  // sweep/needle/bench tables
    bool enabled() const { return writer_ != nullptr; }
    const std::string& path() const { return path_; }
    long long run_id() const { return run_id_; }
    nlohmann::json json_path() const;   // null when disabled
    nlohmann::json json_run_id() const;

private:
    std::string path_;
    std::unique_ptr<sessions::Writer> writer_;
    long long run_id_ = -1;
};

// The backend --backend names (nullptr = CPU); InputError unless usable here.
const ComputeBackend* backend_for(const std::string& backend);

// sweep / needle: the up-front
// cost line on stderr (returns the estimate in seconds), and the session identity of a whole study (the first
// combination's config; the grid's budget warnings replace the single config's).
double announce_study(const std::string& command, const std::string& what, const Model& model,
                    const std::vector<int>& tokens, const StudyGrid& grid, StudyOptions& options, int threads);
RunResult study_identity(const Model& model, const std::vector<int>& tokens, const std::string& text,
                         const std::vector<Needle>& needles, const StudyConfig& first, int threads,
                         const ComputeBackend* backend, const std::vector<std::string>& grid_warnings);

// The closing lines of every report: stage times, then warnings.
void print_timings_and_warnings(const std::vector<StageTiming>& timings, const std::vector<std::string>& warnings,
                                std::ostream& os);

void print_run_report(const RunResult& result, std::ostream& os);

}  // namespace msa::cli
