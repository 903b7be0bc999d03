#pragma once
// Charts of a quality study (a `sweep` or `needle` run): perplexity, needle
// hit rate, recall and answers against k, one line per scorer. The sweep view
// shows these images and its "Export PNG" writes them, so the window, the
// export and `msascope-cli export --format png` draw the same pixels.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sessions/session.h"
#include "viz/image.h"

namespace msa::viz {

// One stored row (sessions: sweep_rows); NaN where the study did not measure it.
struct StudyPoint {
    int k = 0, sink = 0, block = 0;
    std::string scorer;
    double recall_mean = NAN, perplexity = NAN, needle_hit_rate = NAN, answers_correct = NAN;
};

struct StudyTable {
    std::string kind;  // sweep | needle
    std::vector<StudyPoint> points;
    double dense_perplexity = NAN;
    int needles = 0;   // planted facts (answers are out of this many)
    int tokens = 0;
    bool empty() const { return points.empty(); }
};

// True for the run kinds whose rows this module draws.
bool is_study_kind(const std::string& kind);

// Rows as the CLI writes them (k, scorer, sink, block, recall_mean,
// perplexity, needle_hit_rate, answers_correct; null = not measured).
// InputError naming the row when one lacks k or scorer.
StudyTable study_table(const nlohmann::json& rows);
// The table of a stored sweep/needle run, with its dense perplexity and needle count.
StudyTable load_study_table(const sessions::Reader& reader, int64_t run);

// Colour of a scorer's line, the same in every chart and legend.
Rgba scorer_colour(const std::string& scorer);

// The metrics the table measured, in chart order: perplexity, needle_hit_rate,
// recall, answers (a needle run has no recall, a text sweep no hit rate).
std::vector<std::string> study_metrics(const StudyTable& table);

// One chart per measured metric (perplexity with the dense reference line,
// needle hit rate, recall, answers), each width x height.
struct StudyChart {
    std::string metric;  // perplexity | needle_hit_rate | recall | answers
    Image image;
};
std::vector<StudyChart> study_charts(const StudyTable& table, int width, int height, int text_scale);
// "SOURCE  sweep run, 7639 tokens, 20 combinations, sink 1, B 128, 12 needles":
// the figure's caption (sink and B named when the whole table shares them).
std::string study_caption(const StudyTable& table, const std::string& source);
// The charts in a two-column figure under a caption: what "Export PNG" writes.
Image study_figure(const StudyTable& table, const std::string& caption, int chart_width = 760,
                   int chart_height = 460, int text_scale = 2);

}  // namespace msa::viz
