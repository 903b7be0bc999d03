#pragma once
// A `msascope-cli bench` result as a session run of kind "bench", written
// either live (one stage per context as the bench goes) or from the JSON that
// `bench --json` printed elsewhere (`bench --from-json FILE --session S.db`).
// Needs no CUDA: the JSON is the interface.
//
// Where each part goes:
//   runs         kind "bench", backend "cuda", device, k, block; model_path the
//                preset ("preset msa-m3") or the model the shape came from;
//                model_config the shape's heads and head dim (arch = shape name)
//   run_configs  {"shape":{...},"k","block","contexts":[...],"device","reps","peers","source"}
//   sweep_rows   the rows exactly as --json prints them, each with "table":
//                "prefill" (the "rows") or "decode" (the "decode_rows")
//   kernels      the --profile records, `context` = the context they ran at;
//                start/end from the record (start_ns, end_ns) when it has
//                them, else laid end to end in record order (their ms kept)
//   warnings     the bench's warnings
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/flops.h"
#include "core/run_result.h"
#include "sessions/session.h"

namespace msa::sessions {

// One kernel record as `bench --json` prints it (context, name, phase, grid,
// block, registers, shared_bytes, ms, stream, correlation_id, flops, bytes,
// tflops, start_ns, end_ns).
nlohmann::json kernel_json(const KernelRecord& k);
// Back to records; `t0_ns` is where records without start_ns/end_ns begin
// (advanced past each). InputError naming the record when one lacks name or ms.
std::vector<KernelRecord> kernels_from_json(const nlohmann::json& kernels, uint64_t* t0_ns = nullptr);

// Writes a bench stage by stage: the run is begun (incomplete) with its config
// on construction; each context's rows and kernels commit on their own; finish
// writes warnings and peers and marks it complete.
class BenchRecorder {
public:
    // header: the bench JSON's "device", "shape", "k", "block", "reps" (and
    // optionally "contexts", "peers", "source", "model"). InputError when
    // "shape" is not an object with n_heads, n_kv_heads and head_dim.
    BenchRecorder(Writer& writer, const nlohmann::json& header);
    int64_t run() const { return run_; }
    // One context: its prefill row, its decode row (null when none), its kernel records (JSON, as above).
    void add_context(const nlohmann::json& row, const nlohmann::json& decode_row, const nlohmann::json& kernels);
    void finish(const nlohmann::json& warnings, const nlohmann::json& peers);

private:
    Writer& writer_;
    nlohmann::json config_;
    int64_t run_ = -1;
    uint64_t clock_ns_ = 0;
};

// A context length as the tables say it: 8K, 128K, 1M (exact multiples of
// 1024 and 2^20), else the number.
std::string context_label(int64_t n);

// A whole `bench --json` object into one run (rows matched to decode rows and
// kernels by context). Returns the run id. InputError when `bench` is not a
// bench result (no "rows" array or no "shape").
int64_t write_bench_run(Writer& writer, const nlohmann::json& bench, const std::string& source = "");

// A stored bench run read back.
struct BenchRun {
    nlohmann::json config = nlohmann::json::object();  // as in run_configs
    nlohmann::json rows = nlohmann::json::array();     // prefill rows, without the "table" key
    nlohmann::json decode_rows = nlohmann::json::array();
    AttentionFlopsShape shape;                         // for the FLOPs model
    bool empty() const { return rows.empty() && decode_rows.empty(); }
};
BenchRun load_bench_run(const Reader& reader, int64_t run);
// The shape of a bench config ({} -> the run's model_config as a training-free shape).
AttentionFlopsShape bench_shape(const nlohmann::json& config, const ModelConfig& fallback);

// Bench rows of two runs lined up by table and context, appended to
// compare_runs' "metrics" (names "prefill 8192 sparse_ms", ...) and a config
// diff of shape and contexts. Either side may be empty (not a bench run).
void add_bench_comparison(nlohmann::json& comparison, const BenchRun& a, const BenchRun& b);

}  // namespace msa::sessions
