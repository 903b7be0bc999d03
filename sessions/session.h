#pragma once
// msascope session files: one SQLite file holds one or more runs.
//
// Durability: WAL journal, synchronous=NORMAL, one transaction per stage
// (begin_run, each write_* call, finish_run). A process killed at any moment
// leaves the file openable with every committed stage intact; the run stays
// status "incomplete" until finish_run. Appending a run never rewrites
// earlier ones. Readers may open a file while another process writes it: each
// Reader call reads one consistent snapshot.
//
// Errors: a file that is not a session, is damaged, was written by a newer
// msascope, or an unknown run id -> msa::InputError (one line, names the
// file). Disk full, lock timeouts -> std::runtime_error.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/msa.h"
#include "core/run_result.h"

namespace msa::sessions {

struct RunSummary {
    int64_t id = 0;
    std::string kind;    // run | sweep | needle | bench
    std::string status;  // complete | incomplete
    std::string model_path;
    std::string backend;
    std::string device;
    MsaConfig config;
    int n_tokens = 0;
    int64_t started_unix_ms = 0;
    double recall_mean = NAN;  // mean of the stored layers' recall_mean; NaN when none
    double perplexity_dense = NAN;
    double perplexity_msa = NAN;
    std::string label;   // short human description, e.g. "k16 B128 max sink0 cpu"
    // Extra, for browsers: what has been stored so far.
    int n_layers_stored = 0;
    int n_captures = 0;
    int64_t n_kernels = 0;
    int64_t finished_unix_ms = 0;  // 0 while incomplete
};

// One committed stage: the Writer records it in the same transaction as the
// rows, so `rows` is exactly what that stage added to its table.
struct StageRecord {
    std::string stage;  // begin | layers | capture | kernels | timings | summary | sweep_rows | config | finish
    int64_t rows = 0;
    int layer = -1;     // for capture stages
};

namespace detail {
class Database;
}

class Writer {
public:
    // Creates the file (and schema) if needed, migrates an older schema
    // forward, refuses anything that is not an msascope session.
    explicit Writer(const std::string& path);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    const std::string& path() const;

    // Identity only (model, text, tokens, config, backend, device, threads,
    // started time); the run is "incomplete" until finish_run.
    int64_t begin_run(const RunResult& identity, const std::string& kind = "run");
    void set_label(int64_t run, const std::string& label);
    // May be called several times (e.g. one layer at a time); a layer written twice is an error.
    void write_layers(int64_t run, const std::vector<LayerResult>& layers);
    // Selection as block ids (varint delta rows), scores/mass/recall as float16;
    // any empty part is stored as NULL.
    void write_capture(int64_t run, const LayerCapture& capture);
    void write_kernels(int64_t run, const std::vector<KernelRecord>& kernels);  // appends
    void write_timings(int64_t run, const std::vector<StageTiming>& timings);   // appends
    // Perplexities, needle hit rate, FLOPs, finish time, needles, warnings.
    void write_summary(int64_t run, const RunResult& result);
    // Rows of JSON objects (sweep/needle/bench tables) for generic display; appends.
    void write_sweep_rows(int64_t run, const nlohmann::json& rows);
    // The run's kind-specific config as one JSON object (a bench: its shape,
    // contexts, repetitions, peers); a later call replaces it.
    void write_config(int64_t run, const nlohmann::json& config);
    void finish_run(int64_t run);
    // begin_run + every stage + finish_run, one transaction per stage.
    int64_t write_run(const RunResult& result, const std::string& kind = "run");

private:
    void record_stage(int64_t run, const std::string& stage, int64_t rows, int layer = -1);
    void require_run(int64_t run);
    std::unique_ptr<detail::Database> db_;
};

class Reader {
public:
    explicit Reader(const std::string& path);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    const std::string& path() const;
    int schema_version() const;
    std::string writer_version() const;  // the app that created the file

    std::vector<RunSummary> runs() const;  // ascending id
    RunSummary summary(int64_t id) const;
    int64_t last_run() const;              // InputError when the file holds no run
    // Everything stored for the run; captures only when asked (they are large).
    RunResult load_run(int64_t id, bool with_captures = false) const;
    std::vector<int> captured_layers(int64_t id) const;
    LayerCapture load_capture(int64_t id, int layer) const;
    // Only the selection (cheap): for overlap statistics across many layers.
    Selection load_selection(int64_t id, int layer) const;
    nlohmann::json sweep_rows(int64_t id) const;  // array of objects
    nlohmann::json run_config(int64_t id) const;  // the object write_config stored; {} when none
    std::vector<StageRecord> stages(int64_t id) const;
    std::string status(int64_t id) const;
    // "ok" or SQLite's report (first lines), for diagnostics and tests.
    std::string integrity_check() const;

private:
    void require_run(int64_t id) const;
    std::unique_ptr<detail::Database> db_;
    int schema_version_ = 0;
};

// "FILE" or "FILE:RUN"; run = -1 means the file's last run. Paths may hold
// ':' themselves, so RUN is the digits after the LAST ':', and the whole text
// is a path when the tail is not digits ("a:b/s.db") or when only the whole
// text names an existing file. InputError for "", "s.db:" (empty RUN), an
// over-long RUN, and "s.db:x" when s.db exists but "s.db:x" does not (a RUN
// that is not a number).
struct RunRef {
    std::string path;
    int64_t run = -1;
};
RunRef parse_run_ref(const std::string& text);
// Resolves run = -1 to the last run and checks the id exists.
int64_t resolve_run(const Reader& reader, const RunRef& ref);

// The file format version this build writes and the newest it reads.
int current_schema_version();

}  // namespace msa::sessions
