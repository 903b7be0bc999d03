#pragma once
// Exports from a session: CSV of any table, Perfetto / Chrome trace JSON of
// the kernel records.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/run_result.h"
#include "sessions/session.h"

namespace msa::sessions {

// runs (every run in the file), layers, groups, heads, kernels, timings,
// needles, warnings, stages, sweep_rows, and the capture tables selections,
// scores, mass, recall (one row per query and group/head; `layer` picks one
// captured layer, -1 = all captured layers).
const std::vector<std::string>& csv_tables();

// RFC 4180 CSV with a header row; NaN is an empty cell. InputError for an
// unknown table or a layer that was not captured.
void write_csv(const Reader& reader, int64_t run, const std::string& table, std::ostream& out, int layer = -1);

// {"traceEvents":[...], "displayTimeUnit":"ns", "otherData":{...}}:
// one "X" event per timed kernel (name, cat = phase, ph, ts and dur in µs
// relative to the first launch, pid 1, tid = CUDA stream, args with launch
// shape, registers, shared memory, correlation id, layer, FLOPs, bytes), and
// "M" events naming the process and each stream's thread. Kernels without
// timing (start = end = 0) are left out and counted in otherData.
nlohmann::json perfetto_trace(const RunResult& run, const std::string& process_name);

}  // namespace msa::sessions
