// Bench runs in sessions, without a GPU: the committed H100 bench JSON
// (tests/bench/results/h100_msa_m3_s2.json, with CUPTI kernel records) is
// written as a run of kind "bench", read back and compared; the CLI imports it
// with `bench --from-json`, and `bench` proper refuses to run without a GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/errors.h"
#include "sessions/bench_run.h"
#include "sessions/compare.h"
#include "sessions/schema.h"
#include "sessions/session.h"
#include "sessions/sqlite_db.h"
#include "tests/support/cli_session.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace msa::sessions;

namespace {

const std::string kFixture = std::string(MSASCOPE_SOURCE_DIR) + "/tests/bench/results/h100_msa_m3_s2.json";

json fixture() {
    std::ifstream in(kFixture);
    return json::parse(in);
}

struct TempDir {
    fs::path dir;
    TempDir() {
        dir = fs::temp_directory_path() / ("msascope_bench_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~TempDir() { fs::remove_all(dir); }
    std::string path(const std::string& name) const { return (dir / name).string(); }
};

// Exit status and stderr of msascope-cli `args`.
std::pair<int, std::string> cli_stderr(const std::string& args, const std::string& err_file) {
    const int status = std::system((msa::cli_binary() + " " + args + " > /dev/null 2> " + err_file).c_str());
    std::ifstream in(err_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

}  // namespace

TEST(SessionBench, FixtureRoundTripsConfigRowsAndKernels) {
    TempDir tmp;
    const json bench = fixture();
    ASSERT_EQ(bench["kernels"].size(), 9u) << "the fixture's CUPTI records";
    int64_t id;
    {
        Writer writer(tmp.path("s.db"));
        id = write_bench_run(writer, bench, "h100.json");
    }
    Reader reader(tmp.path("s.db"));
    const RunSummary s = reader.summary(id);
    EXPECT_EQ(s.kind, "bench");
    EXPECT_EQ(s.status, "complete");
    EXPECT_EQ(s.device, "NVIDIA H100 80GB HBM3 (sm_90)");
    EXPECT_EQ(s.backend, "cuda");
    EXPECT_EQ(s.config.k, 16);
    EXPECT_EQ(s.config.block, 128);
    EXPECT_EQ(s.n_kernels, 9);
    EXPECT_EQ(s.label, "MiniMax-M3 8K,32K,128K k16 B128");

    const BenchRun run = load_bench_run(reader, id);
    EXPECT_EQ(run.config["shape"], bench["shape"]);
    EXPECT_EQ(run.config["contexts"], json::array({8192, 32768, 131072}));
    EXPECT_EQ(run.config["device"], bench["device"]);
    EXPECT_EQ(run.config["reps"], 3);
    EXPECT_EQ(run.config["peers"], bench["peers"]);
    EXPECT_EQ(run.config["source"], "h100.json");
    // The rows are the objects --json printed, unchanged.
    EXPECT_EQ(run.rows, bench["rows"]);
    EXPECT_EQ(run.decode_rows, bench["decode_rows"]);
    EXPECT_EQ(run.shape.name, "MiniMax-M3");
    EXPECT_EQ(run.shape.n_heads, 64);
    EXPECT_EQ(run.shape.index_heads, 4);

    const msa::RunResult loaded = reader.load_run(id);
    EXPECT_EQ(loaded.model_config.n_heads, 64);
    EXPECT_EQ(loaded.model_config.n_kv_heads, 4);
    EXPECT_EQ(loaded.model_config.head_dim, 128);
    ASSERT_EQ(loaded.kernels.size(), 9u);
    uint64_t last_end = 0;
    for (size_t i = 0; i < loaded.kernels.size(); ++i) {
        SCOPED_TRACE(i);
        const msa::KernelRecord& k = loaded.kernels[i];
        const json& j = bench["kernels"][i];
        EXPECT_EQ(k.name, j["name"]);
        EXPECT_EQ(k.phase, j["phase"]);
        EXPECT_EQ(k.context, j["context"].get<int64_t>());
        for (int d = 0; d < 3; ++d) EXPECT_EQ(k.grid[d], j["grid"][d].get<int>());
        for (int d = 0; d < 3; ++d) EXPECT_EQ(k.block[d], j["block"][d].get<int>());
        EXPECT_EQ(k.registers, j["registers"].get<int>());
        EXPECT_EQ(k.shared_bytes, j["shared_bytes"].get<int>());
        EXPECT_EQ(k.stream, j["stream"].get<uint32_t>());
        EXPECT_DOUBLE_EQ(k.flops, j["flops"].get<double>());
        EXPECT_DOUBLE_EQ(k.bytes, j["bytes"].get<double>());
        EXPECT_NEAR(k.ms(), j["ms"].get<double>(), 1e-6);
        // No start times in the file: laid end to end, in record order.
        EXPECT_GE(k.start_ns, last_end);
        last_end = k.end_ns;
        // And back to the JSON the CLI prints.
        const json again = kernel_json(k);
        EXPECT_EQ(again["name"], j["name"]);
        EXPECT_NEAR(again["tflops"].get<double>(), j["tflops"].get<double>(), 1e-3 * j["tflops"].get<double>());
    }
    EXPECT_TRUE(loaded.warnings.empty());

    // One stage per context (rows + kernels), the config first.
    std::vector<std::string> stages;
    for (const StageRecord& st : reader.stages(id)) stages.push_back(st.stage);
    ASSERT_GE(stages.size(), 3u);
    EXPECT_EQ(stages[0], "begin");
    EXPECT_EQ(stages[1], "config");
    EXPECT_EQ(std::count(stages.begin(), stages.end(), "sweep_rows"), 3);
    EXPECT_EQ(std::count(stages.begin(), stages.end(), "kernels"), 3);
    EXPECT_EQ(stages.back(), "finish");
}

TEST(SessionBench, LiveRecorderLeavesAnIncompleteRunWithTheContextsDone) {
    TempDir tmp;
    const json bench = fixture();
    Writer writer(tmp.path("s.db"));
    json header = {{"device", "test GPU"}, {"shape", bench["shape"]}, {"k", 8}, {"block", 64}, {"reps", 1},
                   {"contexts", {8192, 32768}}};
    BenchRecorder recorder(writer, header);
    // The kernel records of a live bench carry their real CUPTI times.
    msa::KernelRecord k;
    k.name = "index";
    k.phase = "index";
    k.start_ns = 5000;
    k.end_ns = 9000;
    k.context = 8192;
    recorder.add_context(bench["rows"][0], bench["decode_rows"][0], json::array({kernel_json(k)}));
    // ... killed before the second context: what was committed stays readable.
    Reader reader(tmp.path("s.db"));
    EXPECT_EQ(reader.status(recorder.run()), "incomplete");
    const BenchRun run = load_bench_run(reader, recorder.run());
    EXPECT_EQ(run.config["k"], 8);
    EXPECT_EQ(run.config["contexts"], json::array({8192, 32768}));
    ASSERT_EQ(run.rows.size(), 1u);
    EXPECT_EQ(run.rows[0], bench["rows"][0]);
    ASSERT_EQ(run.decode_rows.size(), 1u);
    const msa::RunResult loaded = reader.load_run(recorder.run());
    ASSERT_EQ(loaded.kernels.size(), 1u);
    EXPECT_EQ(loaded.kernels[0].start_ns, 5000u);
    EXPECT_EQ(loaded.kernels[0].end_ns, 9000u);
    EXPECT_EQ(loaded.kernels[0].context, 8192);
    EXPECT_EQ(loaded.config.k, 8);
    EXPECT_EQ(loaded.config.block, 64);
}

TEST(SessionBench, RejectsWhatIsNotABenchResult) {
    TempDir tmp;
    Writer writer(tmp.path("s.db"));
    auto expect_input_error = [&](const json& j, const std::string& words) {
        try {
            write_bench_run(writer, j);
            ADD_FAILURE() << "accepted " << j.dump();
        } catch (const msa::InputError& e) {
            EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        }
    };
    expect_input_error(json::object(), "no \"rows\"");
    expect_input_error({{"rows", json::array()}}, "no \"shape\"");
    expect_input_error({{"rows", json::array()}, {"shape", {{"n_heads", 0}, {"n_kv_heads", 1}, {"head_dim", 8}}}},
                       "n_heads");
    json bad_kernel = fixture();
    bad_kernel["kernels"][0].erase("ms");
    expect_input_error(bad_kernel, "has no \"ms\"");
}

TEST(SessionBench, CompareLinesUpRowsAndKernelsByContext) {
    TempDir tmp;
    json a = fixture(), b = fixture();
    // B: only the two larger contexts, 10% slower sparse.
    b["rows"].erase(0);
    b["decode_rows"].erase(0);
    json kernels = json::array();
    for (json k : b["kernels"])
        if (k["context"] != 8192) k["ms"] = k["ms"].get<double>() * 1.1, kernels.push_back(k);
    b["kernels"] = kernels;
    for (json& r : b["rows"]) r["sparse_ms"] = r["sparse_ms"].get<double>() * 1.1;
    int64_t ia, ib;
    {
        Writer writer(tmp.path("s.db"));
        ia = write_bench_run(writer, a);
        ib = write_bench_run(writer, b);
    }
    Reader reader(tmp.path("s.db"));
    json out = compare_runs(reader.load_run(ia), reader.load_run(ib));
    add_bench_comparison(out, load_bench_run(reader, ia), load_bench_run(reader, ib));
    bool contexts_differ = false;
    for (const json& d : out["config_diff"]) contexts_differ |= d["field"] == "contexts";
    EXPECT_TRUE(contexts_differ);
    auto metric = [&](const std::string& name) {
        for (const json& m : out["metrics"])
            if (m["name"] == name) return m;
        return json();
    };
    const json m32 = metric("32K sparse_ms");
    ASSERT_TRUE(m32.is_object());
    EXPECT_NEAR(m32["rel"].get<double>(), 0.1, 1e-9);
    EXPECT_EQ(m32["better"], "lower");
    const json m8 = metric("8K sparse_ms");
    ASSERT_TRUE(m8.is_object());
    EXPECT_TRUE(m8["b"].is_null()) << "B has no 8K row";
    EXPECT_TRUE(metric("decode 128K speedup").is_object());
    // A bench counts no attention FLOPs of a run of its own: no rows of zeros.
    EXPECT_TRUE(metric("msa_attention_flops").is_null());
    EXPECT_TRUE(metric("dense_attention_flops").is_null());
    // Kernels pair by name and context: B's 32K index kernel against A's 32K one.
    int paired = 0;
    for (const json& k : out["kernels"])
        if (k["a_ms"].is_number() && k["b_ms"].is_number()) {
            ++paired;
            EXPECT_NE(k["context"], 8192);
            EXPECT_NEAR(k["rel"].get<double>(), 0.1, 1e-6) << k.dump();
        }
    EXPECT_EQ(paired, 6);
}

TEST(SessionBench, VersionOneFilesMigrateAndKeepTheirKernels) {
    TempDir tmp;
    const std::string path = tmp.path("v1.db");
    {
        // A version-1 file as the previous release wrote it.
        detail::Database db(path, detail::Database::Mode::write);
        detail::Transaction txn(db, detail::Transaction::Kind::write);
        detail::migrate(db, 0, 1);
        db.exec("INSERT INTO runs(kind, status, writer_version, k, block, scorer, sink, index_kind, seed) "
                "VALUES ('run', 'complete', 'old', 16, 128, 'max', 0, 'free', 1)");
        db.exec("INSERT INTO strings(id, value) VALUES (1, 'kern'), (2, 'dense')");
        db.exec("INSERT INTO kernels VALUES (1, 1, 1, 2, 0, 7, 1, 1, 1, 1, 32, 1, 1, 16, 0, 100, 2100, 1e6, 1e3)");
        txn.commit();
    }
    Reader reader(path);
    EXPECT_EQ(reader.schema_version(), current_schema_version());
    const msa::RunResult r = reader.load_run(1);
    ASSERT_EQ(r.kernels.size(), 1u);
    EXPECT_EQ(r.kernels[0].context, 0);
    EXPECT_NEAR(r.kernels[0].ms(), 0.002, 1e-12);
    EXPECT_TRUE(reader.run_config(1).empty());
}

TEST(SessionBenchCli, FromJsonImportsAndBenchWithoutAGpuSaysSo) {
    if (!fs::exists(msa::cli_binary())) GTEST_SKIP() << "msascope-cli not built: " << msa::cli_binary();
    TempDir tmp;
    const std::string db = tmp.path("s.db"), err = tmp.path("err.txt");
    const msa::CliResult imported = msa::run_cli("bench --from-json " + kFixture + " --session " + db + " --json");
    ASSERT_EQ(imported.code, 0) << imported.out;
    const json out = json::parse(imported.out);
    EXPECT_EQ(out["run_id"], 1);
    EXPECT_EQ(out["kernels"], 9);
    EXPECT_EQ(out["rows"], 3);
    {
        Reader reader(db);
        EXPECT_EQ(reader.summary(1).kind, "bench");
        EXPECT_EQ(load_bench_run(reader, 1).rows, fixture()["rows"]);
    }
    // A second import, then compare: the bench rows are among the metrics.
    ASSERT_EQ(msa::run_cli("bench --from-json " + kFixture + " --session " + db).code, 0);
    const msa::CliResult compared = msa::run_cli("compare " + db + ":1 " + db + ":2 --json");
    ASSERT_EQ(compared.code, 0);
    const json cmp = json::parse(compared.out);
    bool found = false;
    for (const json& m : cmp["metrics"]) found |= m["name"] == "128K speedup";
    EXPECT_TRUE(found) << compared.out.substr(0, 400);
    EXPECT_EQ(cmp["a"]["kind"], "bench");
    // The table form too.
    const msa::CliResult table = msa::run_cli("compare " + db + ":1 " + db + ":2");
    ASSERT_EQ(table.code, 0);
    EXPECT_NE(table.out.find("8K sparse_ms"), std::string::npos);

    // Bad usage: one line on stderr, exit 2.
    for (const std::string& args : std::vector<std::string>{"bench --from-json " + kFixture, "bench --from-json /no/such.json --session " + db,
                                    "bench --from-json " + kFixture + " --session " + db + " --context 8K",
                                    "bench --preset msa-m3 --context 8K", "bench --preset msa-m3"}) {
        SCOPED_TRACE(args);
        const auto [code, text] = cli_stderr(args, err);
        EXPECT_EQ(code, 2) << text;
        EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    }
    const auto [code, text] = cli_stderr("bench --preset msa-m3 --context 8K", err);
    EXPECT_TRUE(text.find("GPU") != std::string::npos || text.find("CUDA") != std::string::npos) << text;
}
