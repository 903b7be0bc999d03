#include "viz/study_charts.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "core/errors.h"
#include "viz/chart.h"
#include "viz/colormap.h"
#include "viz/figure.h"

namespace msa::viz {

namespace {

double number_or_nan(const nlohmann::json& row, const char* key) {
    auto it = row.find(key);
    return it != row.end() && it->is_number() ? it->get<double>() : NAN;
}

// One line per (scorer, sink, block); the name mentions sink and block only
// when the table varies them, so a one-sink sweep reads "max", "random".
struct SeriesKey {
    std::string scorer;
    int sink = 0, block = 0;
    bool operator<(const SeriesKey& o) const {
        return std::tie(scorer, sink, block) < std::tie(o.scorer, o.sink, o.block);
    }
};

int scorer_order(const std::string& scorer) {
    static const std::vector<std::string> order = {"max", "mean", "quest", "random"};
    auto it = std::find(order.begin(), order.end(), scorer);
    return static_cast<int>(it - order.begin());
}

std::vector<LineSeries> series_of(const StudyTable& table, double StudyPoint::*metric) {
    std::map<SeriesKey, std::vector<const StudyPoint*>> groups;
    std::set<int> sinks, blocks;
    for (const StudyPoint& p : table.points) {
        groups[{p.scorer, p.sink, p.block}].push_back(&p);
        sinks.insert(p.sink);
        blocks.insert(p.block);
    }
    std::vector<std::pair<SeriesKey, std::vector<const StudyPoint*>>> ordered(groups.begin(), groups.end());
    std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
        return scorer_order(a.first.scorer) < scorer_order(b.first.scorer);
    });
    std::vector<LineSeries> out;
    for (auto& [key, points] : ordered) {
        std::sort(points.begin(), points.end(), [](const StudyPoint* a, const StudyPoint* b) { return a->k < b->k; });
        LineSeries s;
        s.name = key.scorer;
        if (sinks.size() > 1) s.name += " sink " + std::to_string(key.sink);
        if (blocks.size() > 1) s.name += " B " + std::to_string(key.block);
        Rgba c = scorer_colour(key.scorer);
        if (sinks.size() > 1 && key.sink == 0) c = {uint8_t(c.r * 0.6), uint8_t(c.g * 0.6), uint8_t(c.b * 0.6), 255};
        s.colour = c;
        s.markers = true;
        for (const StudyPoint* p : points) {
            s.x.push_back(p->k);
            s.y.push_back(p->*metric);
        }
        out.push_back(std::move(s));
    }
    return out;
}

bool any_finite(const StudyTable& table, double StudyPoint::*metric) {
    return std::any_of(table.points.begin(), table.points.end(),
                       [metric](const StudyPoint& p) { return std::isfinite(p.*metric); });
}

std::string budget_note(const StudyTable& table) {
    std::set<int> sinks, blocks;
    for (const StudyPoint& p : table.points) {
        sinks.insert(p.sink);
        blocks.insert(p.block);
    }
    std::string note;
    if (sinks.size() == 1) note += "sink " + std::to_string(*sinks.begin());
    if (blocks.size() == 1) note += std::string(note.empty() ? "" : ", ") + "B " + std::to_string(*blocks.begin());
    return note.empty() ? "" : ", " + note;
}

}  // namespace

bool is_study_kind(const std::string& kind) { return kind == "sweep" || kind == "needle"; }

StudyTable study_table(const nlohmann::json& rows) {
    StudyTable table;
    if (!rows.is_array()) throw InputError("study rows must be a JSON array");
    for (size_t i = 0; i < rows.size(); ++i) {
        const nlohmann::json& row = rows[i];
        if (!row.is_object() || !row.contains("k") || !row["k"].is_number_integer() || !row.contains("scorer") ||
            !row["scorer"].is_string())
            throw InputError("study row " + std::to_string(i + 1) + " has no integer k or no scorer");
        StudyPoint p;
        p.k = row["k"].get<int>();
        p.scorer = row["scorer"].get<std::string>();
        p.sink = row.value("sink", 0);
        p.block = row.value("block", 128);
        p.recall_mean = number_or_nan(row, "recall_mean");
        p.perplexity = number_or_nan(row, "perplexity");
        p.needle_hit_rate = number_or_nan(row, "needle_hit_rate");
        p.answers_correct = number_or_nan(row, "answers_correct");
        table.points.push_back(std::move(p));
    }
    return table;
}

StudyTable load_study_table(const sessions::Reader& reader, int64_t run) {
    StudyTable table = study_table(reader.sweep_rows(run));
    const sessions::RunSummary summary = reader.summary(run);
    table.kind = summary.kind;
    table.dense_perplexity = summary.perplexity_dense;
    table.tokens = summary.n_tokens;
    table.needles = static_cast<int>(reader.load_run(run).needles.size());
    return table;
}

Rgba scorer_colour(const std::string& scorer) {
    if (scorer == "max") return palette::sparse_bar;  // orange, MSA's own pooling, as in the heatmaps
    if (scorer == "mean") return {80, 160, 255, 255};
    if (scorer == "quest") return {110, 200, 120, 255};
    if (scorer == "random") return {235, 80, 80, 255};
    return {190, 150, 230, 255};
}

std::vector<std::string> study_metrics(const StudyTable& table) {
    std::vector<std::string> metrics;
    if (any_finite(table, &StudyPoint::perplexity)) metrics.push_back("perplexity");
    if (any_finite(table, &StudyPoint::needle_hit_rate)) metrics.push_back("needle_hit_rate");
    if (any_finite(table, &StudyPoint::recall_mean)) metrics.push_back("recall");
    if (any_finite(table, &StudyPoint::answers_correct)) metrics.push_back("answers");
    return metrics;
}

std::vector<StudyChart> study_charts(const StudyTable& table, int width, int height, int text_scale) {
    std::set<double> ks;
    for (const StudyPoint& p : table.points) ks.insert(p.k);
    LineChartSpec base;
    base.log_x = true;  // k doubles from point to point
    base.x_ticks.assign(ks.begin(), ks.end());
    base.x_label = "k (blocks kept per query)";
    base.text_scale = text_scale;

    std::vector<StudyChart> charts;
    for (const std::string& metric : study_metrics(table)) {
        LineChartSpec spec = base;
        double StudyPoint::*field = nullptr;
        if (metric == "perplexity") {
            field = &StudyPoint::perplexity;
            spec.title = "perplexity, MSA in every layer";
            spec.y_label = "perplexity (lower is better)";
            spec.y_from_zero = false;
            if (std::isfinite(table.dense_perplexity))
                spec.references.push_back({table.dense_perplexity, "dense " + short_number(table.dense_perplexity)});
        } else if (metric == "needle_hit_rate") {
            field = &StudyPoint::needle_hit_rate;
            spec.title = "needle block hit rate";
            spec.y_label = "fact block selected at its question";
            spec.y_lo = 0;
            spec.y_hi = 1;
        } else if (metric == "recall") {
            field = &StudyPoint::recall_mean;
            spec.title = "attention-mass recall";
            spec.y_label = "dense mass on the selected blocks";
            spec.y_lo = 0;
            spec.y_hi = 1;  // the top of the axis is the full budget's recall
        } else {
            field = &StudyPoint::answers_correct;
            spec.title = "answers correct, MSA in every layer";
            spec.y_label = table.needles > 0 ? "needles answered (of " + std::to_string(table.needles) + ")"
                                             : "needles answered";
            spec.y_lo = 0;
            if (table.needles > 0) spec.y_hi = table.needles;
        }
        charts.push_back({metric, line_chart(series_of(table, field), spec, width, height)});
    }
    return charts;
}

std::string study_caption(const StudyTable& table, const std::string& source) {
    std::string caption = source + "  " + table.kind + " run, " + std::to_string(table.tokens) + " tokens, " +
                          std::to_string(table.points.size()) + " combinations" + budget_note(table);
    if (table.needles > 0) caption += ", " + std::to_string(table.needles) + " needles";
    return caption;
}

Image study_figure(const StudyTable& table, const std::string& caption, int chart_width, int chart_height,
                   int text_scale) {
    std::vector<FigurePanel> panels;
    for (StudyChart& c : study_charts(table, chart_width, chart_height, text_scale))
        panels.push_back({std::move(c.image), "", {}, false});
    return compose_figure(panels, caption, 2, text_scale);
}

}  // namespace msa::viz
