// msascope-cli export FILE[:RUN] --format csv|perfetto|png: a stored run's
// tables as CSV, its kernels as a Perfetto trace, or one layer's heatmap as PNG
// (a sweep / needle run's PNG is its charts, as the app's sweep view draws them).
#include <algorithm>
#include <fstream>
#include <sstream>
#include <iostream>

#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "core/errors.h"
#include "sessions/export.h"
#include "sessions/session.h"
#include "viz/colormap.h"
#include "viz/heatmap.h"
#include "viz/image.h"
#include "viz/study_charts.h"

namespace msa::cli {
namespace {

struct ExportArgs {
    std::string ref;
    std::string format;
    std::string table = "layers";
    std::string out;
    int layer = -1;
    std::string heatmap = "scores";  // png: scores (per group) | mass (per head)
    int group = 0;
    int head = 0;
    int width = 0;   // png: 0 = from the data
    int height = 0;
};

// Writes `text` to --out, or to stdout when no path (or "-") was given.
void emit(const std::string& out, const std::string& text) {
    if (out.empty() || out == "-") {
        std::cout << text;
        std::cout.flush();
        return;
    }
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    if (!file) throw InputError("cannot write " + out);
    file << text;
    file.close();
    if (!file) throw std::runtime_error("writing " + out + " failed");
}

int pick_layer(const sessions::Reader& reader, int64_t run, int wanted, bool need_scores, bool need_mass) {
    const std::vector<int> layers = reader.captured_layers(run);
    if (wanted >= 0) return wanted;  // load_capture names the problem if it was not captured
    for (int layer : layers) {
        const LayerCapture c = reader.load_capture(run, layer);
        if ((!need_scores || !c.scores.values.empty()) && (!need_mass || !c.mass.values.empty())) return layer;
    }
    throw InputError(reader.path() + ": run " + std::to_string(run) + " has no layer captured with " +
                     (need_scores ? "block scores" : "dense block mass") +
                     " (store them with a full capture, e.g. `run --capture full`)");
}

viz::Image heatmap_png(const sessions::Reader& reader, int64_t run, const ExportArgs& a, std::string& title) {
    const bool scores = a.heatmap == "scores";
    if (!scores && a.heatmap != "mass") throw InputError("--heatmap must be scores or mass, not '" + a.heatmap + "'");
    const sessions::RunSummary summary = reader.summary(run);
    const int layer = pick_layer(reader, run, a.layer, scores, !scores);
    const LayerCapture capture = reader.load_capture(run, layer);
    const int block = summary.config.block;
    viz::HeatmapSource source;
    int group = a.group;
    if (scores) {
        if (capture.scores.values.empty())
            throw InputError(reader.path() + ": run " + std::to_string(run) + " layer " + std::to_string(layer) +
                             " has no block scores stored");
        if (a.group < 0 || a.group >= capture.scores.n_groups)
            throw InputError("--group " + std::to_string(a.group) + " is out of range (0.." +
                             std::to_string(capture.scores.n_groups - 1) + ")");
        source = viz::HeatmapSource::from_scores(capture.scores, a.group, block);
    } else {
        if (capture.mass.values.empty())
            throw InputError(reader.path() + ": run " + std::to_string(run) + " layer " + std::to_string(layer) +
                             " has no dense block mass stored");
        if (a.head < 0 || a.head >= capture.mass.n_heads)
            throw InputError("--head " + std::to_string(a.head) + " is out of range (0.." +
                             std::to_string(capture.mass.n_heads - 1) + ")");
        source = viz::HeatmapSource::from_mass(capture.mass, a.head, block);
        // The head's selection is its GQA group's.
        const int groups = std::max(1, capture.selection.n_groups);
        group = a.head / std::max(1, capture.mass.n_heads / groups);
    }
    if (!source.valid()) throw InputError(reader.path() + ": the stored heatmap is empty");
    const viz::HeatmapPyramid pyramid(source);
    viz::HeatmapStyle style;
    pyramid.value_range(style.range.lo, style.range.hi);
    const int width = a.width > 0 ? a.width : std::clamp(source.n_blocks * 8, 256, 2048);
    const int height = a.height > 0 ? a.height : std::clamp(source.n_rows, 256, 2048);
    if (width > 16384 || height > 16384) throw InputError("--width/--height must be at most 16384");
    const Selection* selection = capture.selection.blocks.empty() ? nullptr : &capture.selection;
    const viz::Image map = viz::render_heatmap(pyramid, selection, group, viz::HeatmapWindow::whole(source.n_rows, source.n_blocks),
                                               width, height, style);
    title = "run " + std::to_string(run) + "  layer " + std::to_string(layer) + "  " +
            (scores ? "block scores, group " + std::to_string(a.group) : "dense mass, head " + std::to_string(a.head)) +
            "  (" + summary.label + ")  queries down, key blocks across";
    const viz::Image legend = viz::legend_with_labels(style.range, height, scores ? "score" : "mass");
    constexpr int kMargin = 8, kTitle = 22;
    viz::Image canvas(kMargin * 3 + width + legend.width, kMargin * 2 + kTitle + std::max(height, legend.height),
                      viz::palette::background);
    viz::draw_text(canvas, kMargin, kMargin, title, viz::palette::text, 1);
    canvas.blit(map, kMargin, kMargin + kTitle);
    canvas.blit(legend, kMargin * 2 + width, kMargin + kTitle);
    return canvas;
}

viz::Image study_png(const sessions::Reader& reader, int64_t run, std::string& title) {
    const viz::StudyTable table = viz::load_study_table(reader, run);
    if (table.empty()) throw InputError(reader.path() + ": run " + std::to_string(run) + " has no sweep rows stored");
    title = viz::study_caption(table, reader.path() + ":" + std::to_string(run));
    return viz::study_figure(table, title);
}

int run_export(const ExportArgs& a) {
    const sessions::RunRef ref = sessions::parse_run_ref(a.ref);
    const sessions::Reader reader(ref.path);
    const int64_t run = sessions::resolve_run(reader, ref);
    if (a.format == "csv") {
        std::ostringstream text;
        sessions::write_csv(reader, run, a.table, text, a.layer);
        emit(a.out, text.str());
    } else if (a.format == "perfetto") {
        const RunResult result = reader.load_run(run, false);
        const sessions::RunSummary summary = reader.summary(run);
        std::string process = "msascope run " + std::to_string(run) + " " + summary.label;
        if (!result.device.empty()) process += " on " + result.device;
        if (result.kernels.empty())
            std::cerr << "msascope-cli: note: run " << run << " has no kernel records; the trace is empty\n";
        emit(a.out, sessions::perfetto_trace(result, process).dump() + "\n");
    } else if (a.format == "png") {
        if (a.out.empty() || a.out == "-") throw InputError("--format png needs --out FILE.png");
        std::string title;
        // A sweep / needle run has no heatmaps: its PNG is the sweep view's charts.
        const viz::Image image = viz::is_study_kind(reader.summary(run).kind) ? study_png(reader, run, title)
                                                                              : heatmap_png(reader, run, a, title);
        viz::write_png(image, a.out);
        std::cerr << "wrote " << a.out << ": " << title << "\n";
    } else {
        throw InputError("--format must be csv, perfetto or png, not '" + a.format + "'");
    }
    return 0;
}

const RegisterCommand registration{Command{
    "export", "Export a stored run: CSV of a table, Perfetto trace of kernels, PNG of a heatmap", 80, [](CLI::App& sub) {
        auto args = std::make_shared<ExportArgs>();
        std::string tables;
        for (const auto& t : sessions::csv_tables()) tables += (tables.empty() ? "" : ", ") + t;
        sub.add_option("run", args->ref, "Session FILE[:RUN] (RUN defaults to the file's last run)")->required();
        sub.add_option("--format", args->format, "csv | perfetto | png")->required();
        sub.add_option("--table", args->table, "CSV table: " + tables)->capture_default_str();
        sub.add_option("--out", args->out, "Output file (default: stdout; required for png)");
        sub.add_option("--layer", args->layer, "Captured layer (csv capture tables, png; default: all / first with data)");
        sub.add_option("--heatmap", args->heatmap, "png: scores (per group) or mass (per head)")->capture_default_str();
        sub.add_option("--group", args->group, "png scores: GQA group")->capture_default_str();
        sub.add_option("--head", args->head, "png mass: query head")->capture_default_str();
        sub.add_option("--width", args->width, "png: heatmap width in pixels (default from the data)");
        sub.add_option("--height", args->height, "png: heatmap height in pixels (default from the data)");
        return std::function<int()>([args] { return run_export(*args); });
    }}};

}  // namespace
}  // namespace msa::cli
