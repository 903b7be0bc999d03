// The desktop app as a person sees it: msascope renders each view under a
// virtual X server (xvfb-run) and writes a PNG; these tests read the pixels.
// Inputs: two synthetic-attention runs saved to a session by the app itself
// (k=16, and k=4 with the sink forced), so session loading is exercised too;
// and one recorded by msascope-cli on a tiny generated model.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <stb_image.h>

#include "sessions/bench_run.h"
#include "sessions/session.h"
#include "tests/support/cli_session.h"
#include "viz/colormap.h"
#include "viz/live_selection.h"
#include "viz/query_stats.h"
#include "viz/study_charts.h"

namespace fs = std::filesystem;

namespace {

struct Png {
    int w = 0, h = 0;
    std::vector<unsigned char> rgba;
    msa::viz::Rgba at(int x, int y) const {
        const unsigned char* p = &rgba[(static_cast<size_t>(y) * w + x) * 4];
        return {p[0], p[1], p[2], p[3]};
    }
};

Png read_png(const std::string& path) {
    Png png;
    int channels = 0;
    unsigned char* data = stbi_load(path.c_str(), &png.w, &png.h, &channels, 4);
    if (!data) return png;
    png.rgba.assign(data, data + static_cast<size_t>(png.w) * png.h * 4);
    stbi_image_free(data);
    return png;
}

double luminance_variance(const Png& png) {
    double sum = 0, sum2 = 0;
    size_t n = static_cast<size_t>(png.w) * png.h;
    for (size_t i = 0; i < n; ++i) {
        double l = 0.3 * png.rgba[i * 4] + 0.59 * png.rgba[i * 4 + 1] + 0.11 * png.rgba[i * 4 + 2];
        sum += l;
        sum2 += l * l;
    }
    double mean = sum / n;
    return sum2 / n - mean * mean;
}

size_t count_colour(const Png& png, msa::viz::Rgba c, int x0, int y0, int x1, int y1) {
    size_t n = 0;
    for (int y = std::max(0, y0); y < std::min(png.h, y1); ++y)
        for (int x = std::max(0, x0); x < std::min(png.w, x1); ++x) n += png.at(x, y) == c;
    return n;
}

class GuiScreenshots : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (std::system("command -v xvfb-run > /dev/null 2>&1") != 0) return;
        dir_ = new fs::path(fs::temp_directory_path() / ("msascope_gui_" + std::to_string(::getpid())));
        fs::create_directories(*dir_);
        session_ = (*dir_ / "runs.db").string();
        ok_ = run_app("--synthetic --synthetic-tokens 4096 --save " + session_, "make_a") == 0 &&
              run_app("--synthetic --synthetic-tokens 4096 --k 4 --sink 1 --save " + session_, "make_b") == 0;
    }
    static void TearDownTestSuite() {
        if (dir_) fs::remove_all(*dir_);
        delete dir_;
        dir_ = nullptr;
    }
    // Runs msascope with `args` and a screenshot named `name`; returns its exit status.
    static int run_app(const std::string& args, const std::string& name) {
        std::string png = (*dir_ / (name + ".png")).string(), info = (*dir_ / (name + ".json")).string();
        std::string cmd = "xvfb-run -a -s '-screen 0 1600x1000x24' " + std::string(MSASCOPE_GUI_BINARY) + " " + args +
                          " --width 1600 --height 1000 --screenshot " + png + " --screenshot-info " + info + " 2> " +
                          (*dir_ / (name + ".log")).string();
        return std::system(cmd.c_str());
    }
    static Png shot(const std::string& name) { return read_png((*dir_ / (name + ".png")).string()); }
    // A committed bench JSON (tests/bench/results) imported into a new session file; returns its path.
    static std::string bench_session(const std::string& json_name, const std::string& db_name) {
        const std::string session = (*dir_ / db_name).string();
        std::ifstream in(std::string(MSASCOPE_SOURCE_DIR) + "/tests/bench/results/" + json_name);
        msa::sessions::Writer writer(session);
        msa::sessions::write_bench_run(writer, nlohmann::json::parse(in));
        return session;
    }
    static nlohmann::json info(const std::string& name) {
        std::ifstream in(*dir_ / (name + ".json"));
        return nlohmann::json::parse(in, nullptr, false);
    }
    void SetUp() override {
        if (!dir_) GTEST_SKIP() << "xvfb-run is not installed";
        ASSERT_TRUE(ok_) << "msascope could not create the synthetic session in " << *dir_;
    }
    static fs::path* dir_;
    static std::string session_;
    static bool ok_;
};

fs::path* GuiScreenshots::dir_ = nullptr;
std::string GuiScreenshots::session_;
bool GuiScreenshots::ok_ = false;

TEST_F(GuiScreenshots, EveryViewRendersSomething) {
    for (const char* view : {"selection", "profile", "compare"}) {
        std::string name = std::string("view_") + view;
        ASSERT_EQ(run_app("--session " + session_ + " --run 1 --compare " + session_ + ":2 --view " + view, name), 0)
            << view;
        Png png = shot(name);
        ASSERT_EQ(png.w, 1600) << view;
        ASSERT_EQ(png.h, 1000) << view;
        EXPECT_GT(luminance_variance(png), 200.0) << view << " looks blank";
        EXPECT_EQ(info(name)["page"], view);
    }
}

// Checks that the block-score heatmap of a screenshot outlines exactly the
// blocks `selection` keeps for `group`: sampled pixel rows, left edges of
// blocks every query of the row selects, insides of blocks none selects.
void expect_outlines_match(const Png& png, const nlohmann::json& shown, const msa::Selection& selection, int group,
                           int min_checked) {
    ASSERT_TRUE(shown.contains("scores_heatmap")) << shown.dump();
    const int block = shown["block"];
    const auto& hm = shown["scores_heatmap"];
    const int px = static_cast<int>(hm["x"].get<double>()), py = static_cast<int>(hm["y"].get<double>());
    const int w = static_cast<int>(hm["w"].get<double>()), h = static_cast<int>(hm["h"].get<double>());
    const double q0 = hm["q0"], q1 = hm["q1"], b0 = hm["b0"], b1 = hm["b1"];
    const double rows_per_px = (q1 - q0) / h, px_per_block = w / (b1 - b0);
    ASSERT_GE(px_per_block, 3.0);

    int checked_selected = 0, checked_unselected = 0;
    for (int y = 4; y < h - 4; y += 23) {
        int first = static_cast<int>(std::ceil(q0 + y * rows_per_px)), last = static_cast<int>(std::ceil(q0 + (y + 1) * rows_per_px)) - 1;
        if (rows_per_px <= 1) first = last = static_cast<int>(std::floor(q0 + (y + 0.5) * rows_per_px));
        for (int b = static_cast<int>(b0); b < static_cast<int>(b1); ++b) {
            if (b > first / block) continue;  // keep to cells every query of the pixel row can see
            int all = 0, none = 0, rows = 0;
            for (int t = first; t <= last; ++t, ++rows) {
                bool s = msa::viz::is_selected(selection, t, group, b);
                all += s;
                none += !s;
            }
            // Pixel columns of block b (inner ones, away from anti-aliasing at the edges).
            int x_left = static_cast<int>(std::ceil((b - b0) * px_per_block - 0.5));
            int x_right = static_cast<int>(std::ceil((b + 1 - b0) * px_per_block - 0.5)) - 1;
            if (all == rows) {
                bool edge = false;
                for (int dx = -1; dx <= 1; ++dx)
                    edge |= png.at(px + x_left + dx, py + y) == msa::viz::palette::selected_outline;
                EXPECT_TRUE(edge) << "query rows " << first << "-" << last << " select block " << b
                                  << " but its left edge is not outlined";
                ++checked_selected;
            } else if (none == rows) {
                for (int x = x_left + 1; x < x_right; ++x)
                    EXPECT_NE(png.at(px + x, py + y), msa::viz::palette::selected_outline)
                        << "block " << b << " is not selected by rows " << first << "-" << last;
                ++checked_unselected;
            }
        }
    }
    EXPECT_GT(checked_selected, min_checked);
    EXPECT_GT(checked_unselected, min_checked);
}

TEST_F(GuiScreenshots, OutlineMarksExactlyTheSelectedBlocks) {
    const int layer = 2, group = 1, k = 8;
    ASSERT_EQ(run_app("--session " + session_ + " --run 1 --layer " + std::to_string(layer) + " --group " +
                          std::to_string(group) + " --k " + std::to_string(k),
                      "outline"),
              0);
    nlohmann::json shown = info("outline");
    EXPECT_EQ(shown["layer"], layer);
    EXPECT_EQ(shown["k"], k);
    // The same re-selection the app made, from the same stored scores.
    msa::sessions::Reader reader(session_);
    msa::LayerCapture capture = reader.load_capture(1, layer);
    msa::viz::LayerSelectionStats live = msa::viz::reselect(capture, k, 0, shown["block"]);
    expect_outlines_match(shot("outline"), shown, live.selection, group, 20);
}

// A session recorded by msascope-cli (not by the app) opened at another block
// size and scorer: the app re-pools the layer from the Q/K/V the CLI kept and
// outlines what that re-pooling selects.
TEST_F(GuiScreenshots, RepoolsACliRecordedSessionAtAnotherBlockSize) {
    if (!fs::exists(msa::cli_binary())) GTEST_SKIP() << "msascope-cli not built";
    const std::string input = msa::write_tiny_model_and_text(dir_->string(), 500);
    const std::string session = (*dir_ / "cli.db").string();
    ASSERT_EQ(msa::run_cli("run " + input + " --k 4 --capture-layers 1 --no-perplexity --threads 1 --session " + session).code,
              0);
    const int layer = 1, group = 1, k = 3;
    ASSERT_EQ(run_app("--session " + session + " --layer 1 --group 1 --k 3 --block 64 --scorer mean", "repool_cli"), 0);
    nlohmann::json shown = info("repool_cli");
    EXPECT_EQ(shown["layer"], layer);
    EXPECT_EQ(shown["block"], 64) << "the app did not re-pool: " << shown["status"];
    EXPECT_EQ(shown["scorer"], "mean");
    EXPECT_EQ(shown["status"].get<std::string>().find("re-pooling"), std::string::npos) << shown["status"];

    msa::sessions::Reader reader(session);
    msa::MsaConfig config;
    config.block = 64;
    config.scorer = msa::Scorer::mean;
    config.k = k;
    const msa::LayerCapture repooled = msa::viz::repool(reader.load_capture(1, layer), 128, config, 1);
    expect_outlines_match(shot("repool_cli"), shown, repooled.selection, group, 10);
}

// The text view beside the inspector: the inspected query's token and its own
// block marked, and the other blocks in view shaded exactly when the session's
// selection (re-selected at --k as the app does) keeps them.
TEST_F(GuiScreenshots, TextViewHighlightsTheQuerysSelectedBlocks) {
    const int layer = 2, k = 4;
    msa::sessions::Reader reader(session_);
    const msa::LayerCapture capture = reader.load_capture(1, layer);
    for (int query : {200, 2100, 4000}) {
        SCOPED_TRACE("query " + std::to_string(query));
        const std::string name = "text_" + std::to_string(query);
        ASSERT_EQ(run_app("--session " + session_ + " --run 1 --layer 2 --k 4 --view text --query " + std::to_string(query),
                          name),
                  0);
        const nlohmann::json shown = info(name);
        EXPECT_EQ(shown["page"], "selection");
        EXPECT_EQ(shown["query"], query);
        ASSERT_TRUE(shown.contains("text_view")) << shown.dump();
        const auto& tv = shown["text_view"];
        const int x0 = tv["x"].get<double>(), y0 = tv["y"].get<double>();
        const int x1 = x0 + tv["w"].get<double>(), y1 = y0 + tv["h"].get<double>();
        const int first = tv["first_token"], last = tv["last_token"], block = shown["block"];
        EXPECT_LE(first, query);
        EXPECT_GE(last, query) << "the view did not scroll to the query";
        const Png png = shot(name);
        EXPECT_GT(count_colour(png, msa::viz::palette::text_query, x0, y0, x1, y1), 40u) << "no query mark";
        EXPECT_GT(count_colour(png, msa::viz::palette::text_local, x0, y0, x1, y1), 2000u) << "its own block is not marked";
        // Blocks in view before the query's own: shaded iff selected.
        const msa::viz::LayerSelectionStats live = msa::viz::reselect(capture, k, 0, block);
        int kept_in_view = 0;
        for (int b = first / block; b < query / block; ++b) kept_in_view += msa::viz::is_selected(live.selection, query, 0, b);
        const size_t shaded = count_colour(png, msa::viz::palette::text_selected, x0, y0, x1, y1);
        if (kept_in_view) EXPECT_GT(shaded, 200u) << kept_in_view << " selected blocks in view, none shaded";
        else EXPECT_EQ(shaded, 0u) << "no block in view is selected, yet some are shaded";
    }
}

TEST_F(GuiScreenshots, CompareViewShowsTwoHeatmapsAndTheirDifference) {
    ASSERT_EQ(run_app("--session " + session_ + " --run 1 --compare " + session_ + ":2 --view compare --layer 3",
                      "compare"),
              0);
    Png png = shot("compare");
    // The compare page's lower half holds three equal columns right of the left panels.
    const int x0 = 380, x1 = png.w - 10, y0 = png.h / 2, y1 = png.h - 10, col = (x1 - x0) / 3;
    size_t outline_a = count_colour(png, msa::viz::palette::selected_outline, x0, y0, x0 + col, y1);
    size_t outline_b = count_colour(png, msa::viz::palette::selected_outline, x0 + col, y0, x0 + 2 * col, y1);
    size_t both = count_colour(png, msa::viz::palette::both, x0 + 2 * col, y0, x1, y1);
    size_t only_a = count_colour(png, msa::viz::palette::only_a, x0 + 2 * col, y0, x1, y1);
    EXPECT_GT(outline_a, 500u) << "no heatmap with selections for run A";
    EXPECT_GT(outline_b, 500u) << "no heatmap with selections for run B";
    EXPECT_GT(both, 1000u) << "difference map lacks blocks selected by both runs";
    EXPECT_GT(only_a, 1000u) << "run A keeps k=16 vs B's k=4: A-only blocks must show";
}

// A sweep run as msascope-cli writes it (rows + dense perplexity + needles),
// with made-up numbers: the view must chart it, one line per scorer.
std::string write_study_session(const fs::path& dir, const std::string& kind) {
    const std::string path = (dir / (kind + ".db")).string();
    msa::sessions::Writer writer(path);
    msa::RunResult identity;
    identity.model_path = "no-such-model.gguf";
    identity.tokens.assign(2048, 1);
    identity.backend = "cpu";
    identity.config.sink = 1;
    for (int i = 0; i < 12; ++i) identity.needles.push_back({"key" + std::to_string(i), "v", 100 * i, 100 * i + 5, 2000});
    const int64_t run = writer.begin_run(identity, kind);
    nlohmann::json rows = nlohmann::json::array();
    for (const char* scorer : {"max", "mean", "random"})
        for (int k : {2, 4, 8, 16, 32}) {
            const double weak = std::string(scorer) == "max" ? 1 : std::string(scorer) == "mean" ? 2 : 4;
            rows.push_back({{"k", k}, {"scorer", scorer}, {"sink", 1}, {"block", 128},
                            {"recall_mean", kind == "needle" ? nlohmann::json(nullptr) : nlohmann::json(1 - 0.3 * weak / k)},
                            {"perplexity", 15.6 + 20 * weak / k},
                            {"needle_hit_rate", std::min(1.0, k / (16.0 * weak))},
                            {"answers_correct", std::min(12, static_cast<int>(12 * k / (16 * weak)))}});
        }
    writer.write_sweep_rows(run, rows);
    identity.perplexity_dense = 15.6;
    writer.write_summary(run, identity);
    writer.finish_run(run);
    return path;
}

TEST_F(GuiScreenshots, SweepViewChartsEveryScorer) {
    for (const std::string kind : {"sweep", "needle"}) {
        SCOPED_TRACE(kind);
        const std::string session = write_study_session(*dir_, kind);
        // No --view: opening a study run shows its charts by itself.
        ASSERT_EQ(run_app("--session " + session, "study_" + kind), 0);
        Png png = shot("study_" + kind);
        nlohmann::json shown = info("study_" + kind);
        EXPECT_EQ(shown["page"], "sweep");
        EXPECT_EQ(shown["study_rows"], 15);
        // sweep: perplexity, hit rate, recall, answers; needle: no recall.
        EXPECT_EQ(shown["study_charts"], kind == "sweep" ? 4 : 3);
        EXPECT_GT(luminance_variance(png), 200.0) << "looks blank";
        // Each scorer's line colour right of the left-hand panels, in quantity (lines, markers, legend).
        for (const char* scorer : {"max", "mean", "random"})
            EXPECT_GT(count_colour(png, msa::viz::scorer_colour(scorer), 380, 40, png.w, png.h), 2000u) << scorer;
        EXPECT_EQ(count_colour(png, msa::viz::scorer_colour("quest"), 380, 40, png.w, png.h), 0u)
            << "quest was not in the rows";
    }
    // --view sweep picks the page explicitly too.
    ASSERT_EQ(run_app("--session " + (*dir_ / "sweep.db").string() + " --run 1 --view sweep", "study_view"), 0);
    EXPECT_EQ(info("study_view")["page"], "sweep");
}

// A real H100 bench (the committed JSON with CUPTI records) imported into a
// session: opening it shows the Profile page, with the measured time ratios
// drawn as points beside the FLOPs curve.
TEST_F(GuiScreenshots, BenchRunOpensOnTheProfilePageWithMeasuredPoints) {
    const std::string session = bench_session("h100_msa_m3_s2.json", "bench.db");
    ASSERT_EQ(run_app("--session " + session, "bench"), 0);
    EXPECT_EQ(info("bench")["page"], "profile");
    Png png = shot("bench");
    EXPECT_GT(luminance_variance(png), 200.0) << "looks blank";
    // The FLOPs chart is the lower right quarter: the legend swatches (10x10)
    // and three points of each measured ratio (SDPA / MSA green, our dense / MSA pink).
    const int x0 = png.w / 2, y0 = png.h / 2;
    EXPECT_GT(count_colour(png, {120, 230, 140, 255}, x0, y0, png.w, png.h), 130u) << "SDPA / MSA points";
    EXPECT_GT(count_colour(png, {230, 120, 200, 255}, x0, y0, png.w, png.h), 130u) << "our dense / MSA points";
    EXPECT_GT(count_colour(png, {255, 140, 0, 255}, x0, y0, png.w, png.h), 300u) << "the analytic curve";
}

// One context's kernels alone on the timeline (--timeline-context, or the
// buttons above it): at 8K the sparse kernels take a large share of the width
// instead of slivers beside the 128K dense kernel. A context that does not
// parse is a one-line error and exit code 2.
TEST_F(GuiScreenshots, TimelineShowsOneContextAlone) {
    const std::string session = bench_session("h200_msa_m3_s10.json", "bench_h200.db");
    ASSERT_EQ(run_app("--session " + session, "timeline_all"), 0);
    ASSERT_EQ(run_app("--session " + session + " --timeline-context 8K", "timeline_8k"), 0);
    EXPECT_EQ(info("timeline_all")["timeline_context"], 0);
    EXPECT_EQ(info("timeline_8k")["timeline_context"], 8192);
    // The timeline lies between the kernel table and the bench tables.
    const Png all = shot("timeline_all"), one = shot("timeline_8k");
    auto sparse_pixels = [](const Png& png) {
        return count_colour(png, msa::viz::palette::sparse_bar, png.w / 4, png.h / 4, png.w, png.h * 55 / 100);
    };
    const size_t a = sparse_pixels(all), b = sparse_pixels(one);
    EXPECT_GT(b, 3 * a + 2000) << "sparse-kernel pixels: every context " << a << ", 8K alone " << b;
    const int bad = run_app("--session " + session + " --timeline-context 8Q", "timeline_bad");
    EXPECT_TRUE(WIFEXITED(bad) && WEXITSTATUS(bad) == 2) << "status " << bad;
}

}  // namespace
