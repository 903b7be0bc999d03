// Session size and speed on a run shaped like the default model over 8K
// tokens: 30 layers, 9 query heads in 3 GQA groups, B = 128, k = 16, random
// selections for every layer, full captures (scores, mass, recall) for one.
// Budgets: file < 64 MB; open + list runs + load one layer's heatmap data < 1 s.
//   bench_sessions [PATH]   (default: a temporary file, removed afterwards)
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "sessions/random_run.h"
#include "sessions/session.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

static void print_blob_bytes(const std::string& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return;
    sqlite3_stmt* s = nullptr;
    const char* query =
        "SELECT SUM(length(selection)), SUM(length(scores)), SUM(length(mass)), SUM(length(recall)), COUNT(*) "
        "FROM captures";
    if (sqlite3_prepare_v2(db, query, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        std::printf("  BLOB bytes: selections %.2f MB over %lld layers, scores %.2f MB, mass %.2f MB, recall %.2f MB\n",
                    sqlite3_column_double(s, 0) / 1e6, static_cast<long long>(sqlite3_column_int64(s, 4)),
                    sqlite3_column_double(s, 1) / 1e6, sqlite3_column_double(s, 2) / 1e6,
                    sqlite3_column_double(s, 3) / 1e6);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
}

int main(int argc, char** argv) {
    const bool temporary = argc < 2;
    const std::string path =
        temporary ? (fs::temp_directory_path() / ("msascope_bench_" + std::to_string(::getpid()) + ".db")).string()
                  : std::string(argv[1]);
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);

    msa::sessions::RandomRunShape shape;
    shape.n_tokens = 8192;
    shape.n_layers = 30;
    shape.n_heads = 9;
    shape.n_kv_heads = 3;
    shape.block = 128;
    shape.k = 16;
    shape.kernels_per_layer = 12;
    shape.full_layers = {7};

    auto t0 = Clock::now();
    const msa::RunResult run = msa::sessions::random_run(shape, 42);
    const double make_ms = ms_since(t0);
    const size_t raw_selection_bytes =
        size_t(shape.n_layers) * shape.n_tokens * shape.n_kv_heads * shape.k * sizeof(int32_t);

    t0 = Clock::now();
    int64_t id = 0;
    {
        msa::sessions::Writer writer(path);
        id = writer.write_run(run);
    }
    const double write_ms = ms_since(t0);
    const uint64_t file_bytes = fs::file_size(path);

    // What the GUI does on "open session": open, list, draw one heatmap.
    t0 = Clock::now();
    size_t heatmap_values = 0;
    size_t listed = 0;
    {
        msa::sessions::Reader reader(path);
        listed = reader.runs().size();
        const msa::LayerCapture capture = reader.load_capture(id, 7);
        heatmap_values = capture.scores.values.size() + capture.mass.values.size() + capture.selection.blocks.size();
    }
    const double open_ms = ms_since(t0);

    t0 = Clock::now();
    size_t selection_values = 0;
    {
        msa::sessions::Reader reader(path);
        for (int layer : reader.captured_layers(id)) selection_values += reader.load_selection(id, layer).blocks.size();
    }
    const double all_selections_ms = ms_since(t0);

    t0 = Clock::now();
    size_t kernels = 0;
    {
        msa::sessions::Reader reader(path);
        kernels = reader.load_run(id, false).kernels.size();
    }
    const double load_run_ms = ms_since(t0);

    std::printf("bench_sessions: %d tokens, %d layers, %d groups x %d slots, full capture of 1 layer, %zu kernels\n",
                shape.n_tokens, shape.n_layers, shape.n_kv_heads, shape.k, run.kernels.size());
    std::printf("  synthetic run made in %.0f ms; written in %.0f ms\n", make_ms, write_ms);
    std::printf("  file size: %.2f MB (selections raw int32 would be %.2f MB)   budget < 64 MB\n", file_bytes / 1e6,
                raw_selection_bytes / 1e6);
    print_blob_bytes(path);
    std::printf("  open + list %zu run(s) + load layer 7 heatmap data (%zu values): %.1f ms   budget < 1000 ms\n", listed,
                heatmap_values, open_ms);
    std::printf("  open + load all 30 layers' selections (%zu ids): %.1f ms\n", selection_values, all_selections_ms);
    std::printf("  open + load_run without captures (%zu kernels): %.1f ms\n", kernels, load_run_ms);

    if (temporary)
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
    const bool ok = file_bytes < 64ull * 1000 * 1000 && open_ms < 1000;
    std::printf("  %s\n", ok ? "within budget" : "OVER BUDGET");
    return ok ? 0 : 1;
}
