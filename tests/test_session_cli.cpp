// msascope-cli compare / export end to end: JSON keys, output files, exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sessions/random_run.h"
#include "sessions/session.h"

namespace fs = std::filesystem;
using namespace msa::sessions;

namespace {

std::string cli_path() { return std::string(MSASCOPE_BINARY_DIR) + "/app/msascope-cli"; }

struct Result {
    int code = -1;
    std::string out;
};

// Runs the CLI with stderr discarded; returns its exit code and stdout.
Result cli(const std::string& args) {
    Result r;
    const std::string command = cli_path() + " " + args + " 2>/dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return r;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) r.out.append(buffer, n);
    const int status = ::pclose(pipe);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

bool is_png(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[8] = {};
    in.read(magic, 8);
    return std::string(magic + 1, 3) == "PNG";
}

struct Files {
    std::string dir;
    Files() {
        dir = (fs::temp_directory_path() / ("msascope_cli_" + std::to_string(::getpid()))).string();
        fs::create_directories(dir);
    }
    ~Files() { fs::remove_all(dir); }
};

}  // namespace

TEST(SessionCli, CompareAndExport) {
    if (!fs::exists(cli_path())) GTEST_SKIP() << "msascope-cli not built: " << cli_path();
    Files files;
    const std::string a = files.dir + "/a.db", b = files.dir + "/b.db";
    RandomRunShape shape;
    shape.n_tokens = 512;
    shape.full_layers = {2};
    {
        Writer writer(a);
        writer.write_run(random_run(shape, 1));
        msa::RunResult second = random_run(shape, 2);
        second.config.k = 8;
        writer.write_run(second);
    }
    { Writer(b).write_run(random_run(shape, 3)); }

    Result r = cli("compare " + a + ":1 " + a + " --json");
    ASSERT_EQ(r.code, 0);
    const auto j = nlohmann::json::parse(r.out);
    for (const char* key : {"a", "b", "config_diff", "metrics", "kernels", "selection_jaccard"}) EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j["a"]["run"], 1);
    EXPECT_EQ(j["b"]["run"], 2);  // no RUN: the file's last run
    bool k_differs = false;
    for (const auto& d : j["config_diff"]) k_differs = k_differs || (d["field"] == "k" && d["a"] == 16 && d["b"] == 8);
    EXPECT_TRUE(k_differs) << j["config_diff"].dump();
    r = cli("compare " + a + ":1 " + b);
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("selection overlap"), std::string::npos);
    EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "no colour when stdout is not a terminal";

    r = cli("export " + a + ":1 --format csv --table layers");
    ASSERT_EQ(r.code, 0);
    EXPECT_EQ(r.out.rfind("layer,recall_mean", 0), 0u);
    r = cli("export " + a + " --format perfetto");
    ASSERT_EQ(r.code, 0);
    const auto trace = nlohmann::json::parse(r.out);
    EXPECT_EQ(trace["traceEvents"].size(), shape.n_layers * size_t(shape.kernels_per_layer) + 1 + 2 * 2);
    const std::string png = files.dir + "/h.png";
    ASSERT_EQ(cli("export " + a + ":1 --format png --out " + png).code, 0);
    EXPECT_TRUE(is_png(png)) << png;

    EXPECT_EQ(cli("export " + a + ":9 --format csv").code, 2);
    EXPECT_EQ(cli("export " + a + ": --format csv").code, 2);
    EXPECT_EQ(cli("export " + a + " --format csv --table nope").code, 2);
    EXPECT_EQ(cli("export " + a + " --format gif").code, 2);
    EXPECT_EQ(cli("export " + a + ":1 --format png --layer 0 --out " + png).code, 2);  // selection-only layer
    EXPECT_EQ(cli("compare " + files.dir + "/missing.db " + a).code, 2);
}

// A sweep / needle run has no heatmaps: its PNG is the sweep view's charts;
// one that stored no rows is bad input (exit 2).
TEST(SessionCli, ExportPngOfAStudyRunDrawsItsCharts) {
    if (!fs::exists(cli_path())) GTEST_SKIP() << "msascope-cli not built: " << cli_path();
    Files files;
    const std::string path = files.dir + "/study.db";
    {
        Writer writer(path);
        msa::RunResult identity = random_run(RandomRunShape{}, 4);
        const int64_t run = writer.begin_run(identity, "sweep");
        nlohmann::json rows = nlohmann::json::array();
        for (int k : {2, 4, 8})
            rows.push_back({{"k", k}, {"scorer", "max"}, {"sink", 1}, {"block", 128}, {"recall_mean", 1 - 1.0 / k},
                            {"perplexity", 15 + 10.0 / k}, {"needle_hit_rate", nullptr}});
        writer.write_sweep_rows(run, rows);
        writer.finish_run(run);
        writer.finish_run(writer.begin_run(identity, "needle"));  // no rows stored
    }
    const std::string png = files.dir + "/study.png";
    ASSERT_EQ(cli("export " + path + ":1 --format png --out " + png).code, 0);
    EXPECT_TRUE(is_png(png)) << png;
    EXPECT_EQ(cli("export " + path + ":2 --format png --out " + png).code, 2);
}
