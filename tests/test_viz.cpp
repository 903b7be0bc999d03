// viz/: colormap, heatmap rendering (causal mask, selection outline, level of
// detail), layout and PNG output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "core/msa.h"
#include "viz/chart.h"
#include "core/errors.h"
#include "viz/colormap.h"
#include "viz/image.h"
#include "viz/figure.h"
#include "viz/heatmap.h"
#include "viz/layout.h"
#include "viz/query_stats.h"
#include "viz/study_charts.h"
#include "viz/text_layout.h"

using namespace msa;
using namespace msa::viz;

namespace {

// Block scores [N, 1, nb] with score = value(t, b) on visible blocks, -inf beyond.
template <class Fn>
BlockScores make_scores(int n, int block, Fn value) {
    BlockScores s;
    s.n_tokens = n;
    s.n_groups = 1;
    s.n_blocks = (n + block - 1) / block;
    s.values.assign(static_cast<size_t>(n) * s.n_blocks, -std::numeric_limits<float>::infinity());
    for (int t = 0; t < n; ++t)
        for (int b = 0; b <= t / block; ++b) s.values[static_cast<size_t>(t) * s.n_blocks + b] = value(t, b);
    return s;
}

// A selection that keeps exactly `blocks` (when visible) for every query.
Selection make_selection(int n, int nb, int block, std::vector<int> blocks) {
    Selection sel;
    sel.n_tokens = n;
    sel.n_groups = 1;
    sel.slots = static_cast<int>(blocks.size());
    sel.blocks.assign(static_cast<size_t>(n) * sel.slots, -1);
    for (int t = 0; t < n; ++t) {
        int i = 0;
        for (int b : blocks)
            if (b <= t / block && b < nb) sel.row(t, 0)[i++] = b;
    }
    return sel;
}

}  // namespace

TEST(Colormap, LightnessRisesMonotonically) {
    double previous = -1;
    for (int i = 0; i <= 256; ++i) {
        double l = cie_lightness(viridis(i / 256.0));
        EXPECT_GE(l, previous - 0.05) << "at t = " << i / 256.0;  // rounding to 8 bits may wobble by a hair
        previous = l;
    }
    EXPECT_GT(cie_lightness(viridis(1.0)) - cie_lightness(viridis(0.0)), 60.0);
}

TEST(Colormap, EndsMatchViridisAndClamp) {
    EXPECT_EQ(viridis(0.0), (Rgba{68, 1, 84, 255}));
    EXPECT_EQ(viridis(1.0), (Rgba{253, 231, 37, 255}));
    EXPECT_EQ(viridis(-3.0), viridis(0.0));
    EXPECT_EQ(viridis(7.0), viridis(1.0));
    EXPECT_EQ(viridis(NAN), viridis(0.0));
}

TEST(Colormap, LogRangeNormalizes) {
    ColorRange r{1e-4, 1.0, ValueScale::log10};
    EXPECT_NEAR(r.normalize(1e-4), 0.0, 1e-12);
    EXPECT_NEAR(r.normalize(1e-2), 0.5, 1e-12);
    EXPECT_NEAR(r.normalize(1.0), 1.0, 1e-12);
    EXPECT_NEAR(r.value_at(0.5), 1e-2, 1e-12);
    EXPECT_NEAR(r.normalize(0.0), 0.0, 1e-12);  // zero mass clamps to the floor
}

TEST(Heatmap, CausalTriangleIsMasked) {
    const int n = 64, block = 8;
    BlockScores scores = make_scores(n, block, [](int, int) { return 1.0f; });
    HeatmapPyramid pyramid(HeatmapSource::from_scores(scores, 0, block));
    HeatmapStyle style;
    style.range = {0, 1};
    // One pixel per query and per block.
    Image img = render_heatmap(pyramid, nullptr, 0, HeatmapWindow::whole(n, 8), 8, n, style);
    for (int t = 0; t < n; ++t)
        for (int b = 0; b < 8; ++b) {
            if (b <= t / block) EXPECT_EQ(img.at(b, t), viridis(1.0)) << t << "," << b;
            else EXPECT_EQ(img.at(b, t), palette::masked) << t << "," << b;
        }
}

TEST(Heatmap, SelectedBlockShowsOutlineColour) {
    const int n = 256, block = 16, nb = 16;
    BlockScores scores = make_scores(n, block, [](int t, int b) { return static_cast<float>((t + b) % 7); });
    HeatmapPyramid pyramid(HeatmapSource::from_scores(scores, 0, block));
    Selection sel = make_selection(n, nb, block, {3});
    HeatmapStyle style;
    style.range = {0, 6};
    // 10 pixels per block across, 1 pixel per query: block 3 spans x in [30, 40).
    Image img = render_heatmap(pyramid, &sel, 0, HeatmapWindow::whole(n, nb), nb * 10, n, style);
    const int t = 200;  // sees block 3
    EXPECT_EQ(img.at(30, t), palette::selected_outline);
    EXPECT_EQ(img.at(39, t), palette::selected_outline);
    EXPECT_NE(img.at(35, t), palette::selected_outline);  // interior keeps the score colour
    EXPECT_NE(img.at(55, t), palette::selected_outline);  // block 5 is not selected
    // Queries that cannot see block 3 (t < 48) have nothing outlined there.
    EXPECT_EQ(img.at(35, 10), palette::masked);
    EXPECT_NE(img.at(30, 10), palette::selected_outline);
}

TEST(Heatmap, LevelOfDetailAggregatesRows) {
    const int n = 4096, block = 128, nb = 32;
    // Score 1 only on query rows that are multiples of 64, else 0.
    BlockScores scores = make_scores(n, block, [](int t, int) { return t % 64 == 0 ? 1.0f : 0.0f; });
    HeatmapPyramid pyramid(HeatmapSource::from_scores(scores, 0, block));
    EXPECT_GT(pyramid.levels(), 10);
    float v = 0;
    ASSERT_TRUE(pyramid.cell(0, 64, 0, Aggregate::max, v));
    EXPECT_FLOAT_EQ(v, 1.0f);
    ASSERT_TRUE(pyramid.cell(0, 64, 0, Aggregate::mean, v));
    EXPECT_FLOAT_EQ(v, 1.0f / 64);
    ASSERT_TRUE(pyramid.cell(1, 2, 0, Aggregate::max, v));
    EXPECT_FLOAT_EQ(v, 0.0f);
    // Block 31 is visible only from query 3968 on: mean over [3840, 4096) counts only those rows.
    ASSERT_TRUE(pyramid.cell(3840, 4096, 31, Aggregate::mean, v));
    EXPECT_FLOAT_EQ(v, 2.0f / 128);
    EXPECT_FALSE(pyramid.cell(0, 128, 31, Aggregate::max, v));

    // 64 pixel rows over 4096 queries: each pixel covers 64 rows, one of which is 1.
    HeatmapStyle style;
    style.range = {0, 1};
    style.aggregate = Aggregate::max;
    Image max_img = render_heatmap(pyramid, nullptr, 0, HeatmapWindow::whole(n, nb), nb, 64, style);
    EXPECT_EQ(max_img.at(0, 40), viridis(1.0));
    style.aggregate = Aggregate::mean;
    Image mean_img = render_heatmap(pyramid, nullptr, 0, HeatmapWindow::whole(n, nb), nb, 64, style);
    EXPECT_EQ(mean_img.at(0, 40), viridis(1.0 / 64));
}

TEST(Heatmap, ZoomedWindowRendersOnlyItsRange) {
    const int n = 1024, block = 64, nb = 16;
    BlockScores scores = make_scores(n, block, [](int, int b) { return static_cast<float>(b); });
    HeatmapPyramid pyramid(HeatmapSource::from_scores(scores, 0, block));
    HeatmapStyle style;
    style.range = {0, 15};
    HeatmapWindow w{512, 1024, 4, 8};  // queries 512.., blocks 4..7
    Image img = render_heatmap(pyramid, nullptr, 0, w, 4, 512, style);
    for (int x = 0; x < 4; ++x) EXPECT_EQ(img.at(x, 300), viridis((4 + x) / 15.0));
    EXPECT_EQ(w.block_at(2.5, 4, nb), 6);
    EXPECT_EQ(w.query_at(0, 512, n), 512);
}

TEST(Heatmap, WindowZoomAndClamp) {
    HeatmapWindow w = HeatmapWindow::whole(1000, 10);
    w.zoom(0.5, 0.5, 0.5, 0.5);
    EXPECT_NEAR(w.q0, 250, 1e-9);
    EXPECT_NEAR(w.q1, 750, 1e-9);
    w.pan(10, -10);  // far outside: clamping brings it back
    w.clamp_to(1000, 10);
    EXPECT_GE(w.q0, 0);
    EXPECT_LE(w.b1, 10);
    EXPECT_NEAR(w.q1 - w.q0, 500, 1e-9);
}

TEST(Heatmap, SelectionDifferenceColours) {
    const int n = 128, block = 16, nb = 8;
    Selection a = make_selection(n, nb, block, {1, 2});
    Selection b = make_selection(n, nb, block, {2, 3});
    Image img = render_selection_difference(a, b, 0, block, nb, HeatmapWindow::whole(n, nb), nb, n);
    EXPECT_EQ(img.at(1, 100), palette::only_a);
    EXPECT_EQ(img.at(2, 100), palette::both);
    EXPECT_EQ(img.at(3, 100), palette::only_b);
    EXPECT_EQ(img.at(7, 10), palette::masked);
    EXPECT_NEAR(selection_jaccard(a, a), 1.0, 1e-12);
    EXPECT_LT(selection_jaccard(a, b), 1.0);
}

TEST(QueryStats, RankFollowsTopKOrder) {
    const float row[] = {0.5f, 2.0f, 2.0f, -1.0f};
    EXPECT_EQ(block_rank(row, 4, 1), 1);  // tie: lower id first
    EXPECT_EQ(block_rank(row, 4, 2), 2);
    EXPECT_EQ(block_rank(row, 4, 0), 3);
    EXPECT_EQ(block_rank(row, 3, 3), 0);  // not visible
    EXPECT_EQ(ranked_blocks(row, 4, 2), (std::vector<int>{1, 2}));
}

TEST(Layout, PanelsFitAndDoNotOverlap) {
    for (auto [w, h] : {std::pair{1600.f, 1000.f}, std::pair{1280.f, 720.f}, std::pair{2560.f, 1440.f}}) {
        AppLayout l = compute_layout(w, h, Page::selection);
        std::vector<Rect> rects = {l.model, l.controls, l.sessions, l.heatmaps, l.inspector, l.text, l.overview};
        for (size_t i = 0; i < rects.size(); ++i) {
            EXPECT_GE(rects[i].x, 0);
            EXPECT_LE(rects[i].right(), w + 0.5f);
            EXPECT_LE(rects[i].bottom(), h + 0.5f);
            EXPECT_GT(rects[i].w, 50);
            EXPECT_GT(rects[i].h, 50);
            for (size_t j = i + 1; j < rects.size(); ++j) {
                bool apart = rects[i].right() <= rects[j].x || rects[j].right() <= rects[i].x ||
                             rects[i].bottom() <= rects[j].y || rects[j].bottom() <= rects[i].y;
                EXPECT_TRUE(apart) << "panels " << i << " and " << j << " overlap at " << w << "x" << h;
            }
        }
    }
    Page p;
    EXPECT_TRUE(parse_page("text", p));
    EXPECT_EQ(p, Page::selection);
    EXPECT_TRUE(parse_page("compare", p));
    EXPECT_EQ(p, Page::compare);
    EXPECT_TRUE(parse_page("sweep", p));
    EXPECT_EQ(p, Page::sweep);
    EXPECT_FALSE(parse_page("nonsense", p));
}

// One pixel per byte: a stand-in for the font's measure.
float bytes_wide(const std::string& s) { return static_cast<float>(s.size()); }

TEST(TextLayout, TokensSplitAtNewlinesAndPrintableText) {
    const std::vector<std::string> tokens = {"Hello", " world\n", "a\tb", "\n\n", "x\ry\x01", ""};
    std::vector<TextPiece> p = split_tokens(tokens, bytes_wide);
    ASSERT_EQ(p.size(), 7u);
    EXPECT_EQ(p[1].text, " world");
    EXPECT_TRUE(p[1].newline_after);
    EXPECT_FLOAT_EQ(p[1].lead, 1);
    EXPECT_EQ(p[2].text, "a    b");
    EXPECT_TRUE(p[3].newline_after && p[4].newline_after);  // a blank line: two pieces of token 3
    EXPECT_EQ(p[3].token, 3);
    EXPECT_EQ(p[4].token, 3);
    EXPECT_EQ(p[5].text, "xy?");
    EXPECT_EQ(p[6].token, 5);  // an empty token still has its piece
    // Paragraphs: a lone newline reads as a space, a blank line still breaks.
    std::vector<TextPiece> q = split_tokens({"one", "\n", "two", "\n", "\n", "three"}, bytes_wide, Newlines::paragraphs);
    ASSERT_EQ(q.size(), 6u);
    EXPECT_EQ(q[1].text, " ");
    EXPECT_FALSE(q[1].newline_after);
    EXPECT_TRUE(q[3].newline_after && q[4].newline_after);
    // An indented line after a newline (code, a list) keeps its break.
    q = split_tokens({"f():", "\n", "    return"}, bytes_wide, Newlines::paragraphs);
    EXPECT_TRUE(q[1].newline_after);
}

TEST(TextLayout, WrapsBetweenWordsAndFindsTheLineOfAToken) {
    std::vector<TextPiece> p = split_tokens({"The", " quick", " brown", " fox"}, bytes_wide);
    TextLines lines = wrap_pieces(p, 10);
    EXPECT_EQ(lines.first_piece, (std::vector<int>{0, 2, 4}));
    EXPECT_FLOAT_EQ(p[2].x, -1);  // the wrapped line's leading space hangs left
    EXPECT_FLOAT_EQ(p[3].x, 5);
    // Sub-word tokens move down together; a word longer than the line breaks inside.
    p = split_tokens({"The", " sub", "div", "iding"}, bytes_wide);
    lines = wrap_pieces(p, 8);
    EXPECT_EQ(lines.first_piece, (std::vector<int>{0, 1, 3, 4}));
    EXPECT_FLOAT_EQ(p[2].x, 3);
    EXPECT_EQ(line_of_token(p, lines, 2), 1);
    EXPECT_EQ(line_of_token(p, lines, 3), 2);
    // Newlines break; a blank line is a line of its own.
    p = split_tokens({"a", "\n\n", "b"}, bytes_wide);
    lines = wrap_pieces(p, 100);
    EXPECT_EQ(lines.count(), 3);
    EXPECT_EQ(line_of_token(p, lines, 2), 2);
    std::vector<TextPiece> none;
    EXPECT_EQ(wrap_pieces(none, 10).count(), 0);
}

TEST(Layout, ElideKeepsBothEndsOrTheStartAndFits) {
    // 7 px per byte: a stand-in for the font's measure.
    auto width = [](const std::string& s) { return 7.0f * s.size(); };
    const std::string path = "/home/someone/projects/long/folder/name/sessions/run.db:12";
    EXPECT_EQ(elide(path, 1000, width), path);
    const std::string cut = elide(path, 140, width);  // 20 bytes
    EXPECT_LE(width(cut), 140);
    EXPECT_EQ(cut.size(), 20u);  // the longest that fits
    EXPECT_EQ(cut.substr(0, 9), "/home/som");
    EXPECT_EQ(cut.substr(9, 3), "...");
    EXPECT_EQ(cut.substr(12), "un.db:12");
    EXPECT_EQ(elide(path, 140, width, Cut::end), "/home/someone/pro...");
    EXPECT_EQ(elide(path, 21, width), "...");
    EXPECT_EQ(elide(path, 20, width), "");
    // Never splits a UTF-8 character: every kept byte run decodes.
    const std::string accents = "\xc3\xa9t\xc3\xa9/\xc3\xa9t\xc3\xa9/\xc3\xa9t\xc3\xa9.db";
    for (float w = 21; w < width(accents); w += 7) {
        const std::string s = elide(accents, w, width);
        ASSERT_LE(width(s), w);
        for (size_t i = 0; i < s.size(); ++i) {
            const bool lead = (static_cast<unsigned char>(s[i]) & 0xE0) == 0xC0;
            const bool continuation = (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
            if (lead) {
                ASSERT_TRUE(i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) << s;
            }
            if (continuation) {
                ASSERT_TRUE(i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xE0) == 0xC0) << s;
            }
        }
    }
}

TEST(Chart, TicksAndLabels) {
    std::vector<double> ticks = nice_ticks(0, 1, 5);  // steps of 1, 2 or 5 x 10^n
    ASSERT_EQ(ticks.size(), 6u);
    EXPECT_NEAR(ticks[1], 0.2, 1e-12);
    EXPECT_NEAR(ticks.back(), 1.0, 1e-12);
    EXPECT_EQ(log_ticks(2, 2000), (std::vector<double>{10, 100, 1000}));
    EXPECT_EQ(short_number(4096), "4K");
    EXPECT_EQ(short_number(1048576), "1M");
    EXPECT_EQ(short_number(1500), "1500");
}

TEST(Chart, CutTimeAxisShortensOnlyLongIdleGaps) {
    // Busy [0, 2] (two overlapping spans), [2.5, 3] and [100, 101], 3.5 in all:
    // at 1 / 3.5 of that the 0.5 gap stays, the 97 one is drawn 1 long.
    const CutTimeAxis axis = cut_idle_gaps({{100, 101}, {0, 1}, {0.5, 2}, {2.5, 3}}, 1 / 3.5);
    EXPECT_DOUBLE_EQ(axis.drawn_length, 5.0);
    ASSERT_EQ(axis.cuts.size(), 1u);
    EXPECT_DOUBLE_EQ(axis.cuts[0].idle, 97.0);
    EXPECT_DOUBLE_EQ(axis.cuts[0].resume, 100.0);
    EXPECT_DOUBLE_EQ(axis.cuts[0].drawn, 3.5);
    EXPECT_DOUBLE_EQ(axis(0), 0.0);
    EXPECT_DOUBLE_EQ(axis(1.5), 1.5);
    EXPECT_DOUBLE_EQ(axis(2.25), 2.25);
    EXPECT_DOUBLE_EQ(axis(3), 3.0);
    EXPECT_GT(axis(50), 3.0);
    EXPECT_LT(axis(50), 4.0);
    EXPECT_DOUBLE_EQ(axis(100), 4.0);
    EXPECT_DOUBLE_EQ(axis(100.5), 4.5);
    EXPECT_DOUBLE_EQ(axis(101), 5.0);
    for (double t = -1, last = -1e9; t < 102; t += 0.25) {
        EXPECT_GE(axis(t), last) << t;
        last = axis(t);
    }
    // No gap over the limit (1.5 busy, the limit 1): the axis is the identity over the data.
    const CutTimeAxis flat = cut_idle_gaps({{0, 1}, {1.5, 2}}, 1 / 1.5);
    EXPECT_TRUE(flat.cuts.empty());
    EXPECT_DOUBLE_EQ(flat.drawn_length, 2.0);
    EXPECT_DOUBLE_EQ(flat(1.25), 1.25);
    EXPECT_DOUBLE_EQ(cut_idle_gaps({}, 1.0).drawn_length, 0.0);
    EXPECT_TRUE(cut_idle_gaps({{0, 1}, {50, 51}}, INFINITY).cuts.empty());
}

size_t count_colour(const Image& img, Rgba c, int x0 = 0, int y0 = 0, int x1 = 1 << 30, int y1 = 1 << 30) {
    size_t n = 0;
    for (int y = std::max(0, y0); y < std::min(img.height, y1); ++y)
        for (int x = std::max(0, x0); x < std::min(img.width, x1); ++x) n += img.at(x, y) == c;
    return n;
}

TEST(Chart, LineChartDrawsSeriesLegendAndReference) {
    const Rgba red{230, 40, 40, 255}, blue{40, 90, 230, 255}, grey{200, 200, 100, 255};
    LineSeries a{{2, 4, 8, 16}, {40, 20, 17, 16}, red, false, true, "max"};
    LineSeries b{{2, 4, 8, 16}, {40, 30, 25, 20}, blue, false, true, "random"};
    LineChartSpec spec;
    spec.title = "perplexity vs k";
    spec.x_label = "k";
    spec.y_label = "perplexity";
    spec.log_x = true;
    spec.x_ticks = {2, 4, 8, 16};
    spec.y_from_zero = false;
    spec.references = {{15.6, "dense", grey}};
    spec.text_scale = 2;
    Image img = line_chart({a, b}, spec, 600, 400);
    ASSERT_EQ(img.width, 600);
    // Lines, markers and the legend swatch of each series; the dashed reference.
    EXPECT_GT(count_colour(img, red), 300u);
    EXPECT_GT(count_colour(img, blue), 300u);
    EXPECT_GT(count_colour(img, grey), 100u);
    // The curves lie above the dashed reference (perplexity above dense): find
    // the dashed row (the longest grey run of rows in the plot) and the lowest red pixel.
    int ref_row = -1, lowest_red = -1;
    size_t best = 0;
    for (int y = 0; y < img.height; ++y) {
        size_t grey_in_row = count_colour(img, grey, 0, y, img.width, y + 1);
        if (grey_in_row > best) best = grey_in_row, ref_row = y;
        if (count_colour(img, red, 100, y, 560, y + 1) > 0) lowest_red = y;
    }
    ASSERT_GT(best, 200u) << "no dashed reference line";
    EXPECT_LT(lowest_red, ref_row + 2 * spec.text_scale + 1);
    if (std::getenv("MSASCOPE_KEEP_CHARTS")) write_png(img, "/tmp/msascope_line_chart.png");
    // Text is drawn (title, ticks, labels) in the palette colours.
    EXPECT_GT(count_colour(img, palette::text), 200u);
    EXPECT_GT(count_colour(img, palette::axis), 200u);
}

TEST(Chart, LineChartWithoutDataSaysSoAndOnePointIsCentred) {
    LineChartSpec spec;
    spec.title = "empty";
    Image none = line_chart({LineSeries{{1}, {NAN}, {255, 0, 0, 255}, false, false, ""}}, spec, 200, 120);
    EXPECT_EQ(count_colour(none, {255, 0, 0, 255}), 0u);
    EXPECT_GT(count_colour(none, palette::axis), 10u);  // "no data"
    Image one = line_chart({LineSeries{{16}, {0.5}, {255, 0, 0, 255}, true, false, ""}}, spec, 200, 120);
    int sum_x = 0, n = 0;
    for (int y = 0; y < one.height; ++y)
        for (int x = 0; x < one.width; ++x)
            if (one.at(x, y) == Rgba{255, 0, 0, 255}) sum_x += x, ++n;
    ASSERT_GT(n, 0);
    EXPECT_NEAR(double(sum_x) / n, 110, 25);  // mid-plot, not on an axis
}

TEST(Figure, WrapsPanelsIntoColumns) {
    std::vector<FigurePanel> panels;
    for (int i = 0; i < 3; ++i) panels.push_back({Image(100, 50, {10, 200, 10, 255}), "", {}, false});
    Image row = compose_figure(panels, "");
    Image grid = compose_figure(panels, "", 2);
    EXPECT_GT(row.width, 300);
    EXPECT_LT(grid.width, 240);
    EXPECT_GT(grid.height, 100);
    EXPECT_EQ(count_colour(grid, {10, 200, 10, 255}), 3u * 100 * 50);
}

nlohmann::json study_rows() {
    nlohmann::json rows = nlohmann::json::array();
    for (const char* scorer : {"max", "random"})
        for (int k : {2, 4, 8, 16}) {
            const bool max = std::string(scorer) == "max";
            rows.push_back({{"k", k}, {"scorer", scorer}, {"sink", 1}, {"block", 128},
                            {"recall_mean", 1 - (max ? 0.3 : 0.5) / k}, {"perplexity", 15 + (max ? 20 : 40) / k},
                            {"needle_hit_rate", nullptr}, {"answers_correct", max ? k / 2 : 1}});
        }
    return rows;
}

TEST(StudyCharts, ReadsRowsAndChartsEveryMeasuredMetric) {
    StudyTable table = study_table(study_rows());
    table.dense_perplexity = 15;
    table.needles = 12;
    ASSERT_EQ(table.points.size(), 8u);
    EXPECT_EQ(table.points[0].scorer, "max");
    EXPECT_TRUE(std::isnan(table.points[0].needle_hit_rate));  // null = not measured
    // No hit rate in these rows: perplexity, recall and answers only.
    EXPECT_EQ(study_metrics(table), (std::vector<std::string>{"perplexity", "recall", "answers"}));
    std::vector<StudyChart> charts = study_charts(table, 500, 320, 1);
    ASSERT_EQ(charts.size(), 3u);
    for (const StudyChart& c : charts) {
        EXPECT_GT(count_colour(c.image, scorer_colour("max")), 50u) << c.metric;
        EXPECT_GT(count_colour(c.image, scorer_colour("random")), 50u) << c.metric;
    }
    Image figure = study_figure(table, study_caption(table, "s.db:1"), 500, 320, 1);
    EXPECT_GE(figure.width, 1000);
    EXPECT_GE(figure.height, 640);
    EXPECT_EQ(study_caption(table, "s.db:1"), "s.db:1   run, 0 tokens, 8 combinations, sink 1, B 128, 12 needles");
}

TEST(StudyCharts, BadRowsAreInputErrors) {
    EXPECT_THROW(study_table(nlohmann::json::object()), InputError);
    EXPECT_THROW(study_table(nlohmann::json::array({{{"scorer", "max"}}})), InputError);
    EXPECT_THROW(study_table(nlohmann::json::array({{{"k", 4}}})), InputError);
    EXPECT_NO_THROW(study_table(nlohmann::json::array()));
}

TEST(Png, WritesAReadablePngFile) {
    Image img = legend_bar(8, 32, true);
    EXPECT_EQ(img.at(0, 0), viridis(1.0));
    EXPECT_EQ(img.at(0, 31), viridis(0.0));
    std::string path = ::testing::TempDir() + "msascope_viz_test.png";
    write_png(img, path);
    std::ifstream in(path, std::ios::binary);
    char sig[8] = {};
    in.read(sig, 8);
    EXPECT_EQ(std::string(sig + 1, 3), "PNG");
    std::remove(path.c_str());
}

// Every segment of a glyph is drawn, also for one-character labels: '8' is 9
// stb_easy_font quads (14 pixels at scale 1), more than an "average" glyph's
// buffer share; its lower-left stroke (x = 0, y = 4..5) is the last quad.
TEST(Text, OneCharacterLabelKeepsEverySegment) {
    msa::viz::Image image(8, 10, msa::viz::Rgba{0, 0, 0, 255});
    msa::viz::draw_text(image, 0, 0, "8", msa::viz::Rgba{255, 255, 255, 255}, 1);
    int lit = 0;
    for (int y = 0; y < image.height; ++y)
        for (int x = 0; x < image.width; ++x) lit += image.pixels[(size_t(y) * image.width + x) * 4] == 255;
    EXPECT_EQ(lit, 14);
    EXPECT_EQ(image.pixels[(size_t(5) * image.width + 0) * 4], 255) << "lower-left stroke of '8' missing";
}

TEST(Layout, ShortKernelNamesDropReturnTypeNamespacesAndParameters) {
    using msa::viz::short_kernel_name;
    EXPECT_EQ(short_kernel_name("void msa::kern::attn_fwd_kernel<128, 4, 64, 2>(msa::kern::AttnParams)"),
              "attn_fwd_kernel<128, 4, 64, 2>");
    EXPECT_EQ(short_kernel_name("void msa::kern::(anonymous namespace)::index_decode_kernel<128, 4, false>("
                                "msa::kern::IndexTopkOp, float*, int, int)"),
              "index_decode_kernel<128, 4, false>");
    EXPECT_EQ(short_kernel_name("msa::kern::topk_decode_parts_kernel(float const*, int, int)"), "topk_decode_parts_kernel");
    EXPECT_EQ(short_kernel_name("dense attention"), "dense attention");  // event-mode tag names stay
    EXPECT_EQ(short_kernel_name("void f<(int)3>(int)"), "f<(int)3>");
}
