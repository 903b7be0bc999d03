#pragma once
// Options and steps shared by the commands that run the model (run, sweep,
// needle): model + text/needle input, MSA flags, saving to a session, the
// per-layer report.
#include <CLI/CLI.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/msa.h"
#include "core/run_result.h"

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
    double load_ms = 0;
};
// Loads the model and the text (or generates the multi-needle document),
// tokenizes and truncates to --tokens; notes go to `log`.
LoadedInput load_input(const InputArgs& a, std::ostream& log);

// InputError unless the backend is usable for whole-model runs in this build.
void check_backend(const std::string& backend);
// InputError when the session file cannot be written (checked before minutes of work).
void check_session_path(const std::string& path);

struct SessionWritten {
    std::string path;
    long long run_id = -1;
};
SessionWritten save_run(const std::string& path, const RunResult& result, const std::string& kind);

void print_run_report(const RunResult& result, std::ostream& os);

}  // namespace msa::cli
