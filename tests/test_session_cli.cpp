// msascope-cli end to end: compare / export (JSON keys, output files, exit
// codes) and what `run` stores for the app to re-pool.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/forward.h"
#include "core/model.h"
#include "sessions/random_run.h"
#include "sessions/session.h"
#include "tests/support/cli_session.h"
#include "viz/live_selection.h"

namespace fs = std::filesystem;
using namespace msa::sessions;

namespace {

// Every command here runs the real binary; stderr is discarded.
msa::CliResult cli(const std::string& args) { return msa::run_cli(args); }

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
    if (!fs::exists(msa::cli_binary())) GTEST_SKIP() << "msascope-cli not built: " << msa::cli_binary();
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

    msa::CliResult r = cli("compare " + a + ":1 " + a + " --json");
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

// `run` keeps the capture layer's Q/K/V (float16) in the session, and the app's
// re-pooling of them at another block size and scorer gives what core's engine
// gives on the model's own Q/K/V.
TEST(SessionCli, RunKeepsQkvAndRepoolingMatchesTheEngine) {
    if (!fs::exists(msa::cli_binary())) GTEST_SKIP() << "msascope-cli not built: " << msa::cli_binary();
    Files files;
    const int layer = 1, n = 400;
    const std::string input = msa::write_tiny_model_and_text(files.dir, n);
    const std::string session = files.dir + "/s.db";
    ASSERT_EQ(cli("run " + input + " --k 2 --capture-layers 1 --no-perplexity --threads 1 --session " + session).code, 0);
    ASSERT_EQ(cli("run " + input + " --k 2 --capture-layers 1 --no-perplexity --no-qkv --threads 1 --session " + session).code,
              0);

    Reader reader(session);
    const msa::RunResult run = reader.load_run(1, true);
    ASSERT_EQ(run.captures.size(), 2u);  // all layers' selections; layer 1 in full
    const msa::LayerCapture& stored = run.captures[layer];
    ASSERT_EQ(stored.layer, layer);
    ASSERT_TRUE(msa::viz::can_repool(stored)) << "run did not keep Q/K/V";
    EXPECT_FALSE(msa::viz::can_repool(reader.load_capture(2, layer))) << "--no-qkv kept them anyway";

    // The model's own Q/K/V of that layer, from a forward outside the CLI.
    const msa::Model model = msa::load_model(files.dir + "/tiny.gguf");
    ASSERT_EQ(static_cast<int>(run.tokens.size()), n);
    msa::AttentionShape shape;
    std::vector<float> q, k, v;
    msa::ForwardOptions forward;
    forward.attention = [&](int l, const msa::QKV& qkv, const msa::IndexInputs*, float* out) {
        if (l == layer) {
            shape = qkv.shape;
            const size_t q_size = size_t(shape.n_tokens) * shape.n_heads * shape.head_dim;
            const size_t kv_size = size_t(shape.n_tokens) * shape.n_kv_heads * shape.head_dim;
            q.assign(qkv.q, qkv.q + q_size), k.assign(qkv.k, qkv.k + kv_size), v.assign(qkv.v, qkv.v + kv_size);
        }
        msa::dense_attention(qkv, out, 1);
    };
    msa::forward(model, run.tokens, forward);
    EXPECT_EQ(stored.qkv_shape.n_tokens, n);
    EXPECT_EQ(stored.qkv_shape.n_heads, shape.n_heads);
    EXPECT_EQ(stored.qkv_shape.n_kv_heads, shape.n_kv_heads);
    EXPECT_EQ(stored.qkv_shape.head_dim, shape.head_dim);
    auto expect_half_close = [](const std::vector<float>& back, const std::vector<float>& ref, const char* what) {
        ASSERT_EQ(back.size(), ref.size()) << what;
        for (size_t i = 0; i < ref.size(); ++i)
            ASSERT_NEAR(back[i], ref[i], std::fabs(ref[i]) * 4.9e-4 + 6e-8) << what << " at " << i;
    };
    expect_half_close(stored.q, q, "q");
    expect_half_close(stored.k, k, "k");
    expect_half_close(stored.v, v, "v");

    // Re-pooled at B = 64 with mean pooling, as the app does, vs the engine on the original Q/K/V.
    msa::MsaConfig other;
    other.block = 64;
    other.scorer = msa::Scorer::mean;
    other.k = 3;
    const msa::LayerCapture repooled = msa::viz::repool(stored, run.config.block, other, 2);
    const msa::QKV exact{q.data(), k.data(), v.data(), shape};
    const msa::BlockScores scores = msa::score_blocks(msa::free_index_inputs(exact), 64, msa::Scorer::mean, other.seed);
    const msa::BlockMass mass = msa::dense_block_mass(exact, 64);
    ASSERT_EQ(repooled.scores.n_blocks, (n + 63) / 64);
    ASSERT_EQ(repooled.scores.values.size(), scores.values.size());
    for (size_t i = 0; i < scores.values.size(); ++i) {
        if (std::isinf(scores.values[i])) {
            ASSERT_EQ(repooled.scores.values[i], scores.values[i]) << "block score " << i;
        } else {
            // Float16 Q and K: each product term off by <= 2^-10 of |q_i k_i|.
            ASSERT_NEAR(repooled.scores.values[i], scores.values[i], 2e-3 * (1 + std::fabs(scores.values[i])))
                << "block score " << i;
        }
    }
    ASSERT_EQ(repooled.mass.values.size(), mass.values.size());
    for (size_t i = 0; i < mass.values.size(); ++i)
        ASSERT_NEAR(repooled.mass.values[i], mass.values[i], 2e-3) << "dense mass " << i;
    // Selection and recall follow the re-pooled scores at the new budget.
    const msa::Selection selection = msa::select_blocks(repooled.scores, other.k, other.sink, other.block);
    EXPECT_EQ(repooled.selection.blocks, selection.blocks);
    EXPECT_EQ(repooled.selection.slots, 3);
    EXPECT_EQ(repooled.recall, msa::attention_recall(repooled.mass, selection, shape.group_size()));

    // A scorer change at the run's own block size reuses the stored dense mass.
    other.block = run.config.block;
    EXPECT_EQ(msa::viz::repool(stored, run.config.block, other, 1).mass.values, stored.mass.values);
}

// A sweep / needle run has no heatmaps: its PNG is the sweep view's charts;
// one that stored no rows is bad input (exit 2).
TEST(SessionCli, ExportPngOfAStudyRunDrawsItsCharts) {
    if (!fs::exists(msa::cli_binary())) GTEST_SKIP() << "msascope-cli not built: " << msa::cli_binary();
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
