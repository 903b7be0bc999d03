// msascope-cli compare FILE[:RUN] FILE[:RUN]: two stored runs side by side.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>

#include "app/cli/cli_common.h"
#include "app/cli/command.h"
#include "sessions/bench_run.h"
#include "sessions/compare.h"
#include "sessions/session.h"

namespace msa::cli {
namespace {

struct CompareArgs {
    std::string a, b;
    bool json = false;
    int top = 20;
};

struct LoadedRun {
    std::string file;
    sessions::RunSummary summary;
    RunResult result;
    sessions::BenchRun bench;  // a bench run's config and rows; empty otherwise
};

// Metrics, kernels and selections only: the scores and mass BLOBs are the
// bulk of a file and compare never reads them.
LoadedRun load(const std::string& text) {
    const sessions::RunRef ref = sessions::parse_run_ref(text);
    sessions::Reader reader(ref.path);
    const int64_t id = sessions::resolve_run(reader, ref);
    LoadedRun out{ref.path, reader.summary(id), reader.load_run(id, false), {}};
    for (int layer : reader.captured_layers(id)) {
        LayerCapture capture;
        capture.layer = layer;
        capture.selection = reader.load_selection(id, layer);
        out.result.captures.push_back(std::move(capture));
    }
    if (out.summary.kind == "bench") out.bench = sessions::load_bench_run(reader, id);
    return out;
}

std::string value_text(const nlohmann::json& v) {
    if (v.is_null()) return "-";
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_float()) {
        const double d = v.get<double>();
        const double magnitude = std::fabs(d);
        if (magnitude >= 1e6) return human_count(d);
        if (magnitude != 0 && magnitude < 1e-3) {
            char buffer[32];
            std::snprintf(buffer, sizeof buffer, "%.2e", d);
            return buffer;
        }
        return fixed(d, magnitude >= 100 ? 2 : 4);
    }
    return v.dump();
}

std::string percent(const nlohmann::json& rel) {
    if (!rel.is_number()) return "-";
    const double r = rel.get<double>() * 100;
    return (r > 0 ? "+" : "") + fixed(r, 1) + "%";
}

// Colour for a change: green when it improves, red when it worsens. Every
// coloured cell carries the same number of escape bytes, so the table's
// width arithmetic (which counts bytes) still lines the columns up.
struct Painter {
    bool enabled = false;
    std::string paint(const std::string& text, double delta, const std::string& better) const {
        if (!enabled) return text;
        const char* colour = "\x1b[39m";
        if (std::isfinite(delta) && delta != 0 && !better.empty()) {
            const bool improved = (better == "lower") == (delta < 0);
            colour = improved ? "\x1b[32m" : "\x1b[31m";
        }
        return colour + text + "\x1b[0m";
    }
};

double number(const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; }

int run_compare(const CompareArgs& args) {
    LoadedRun a = load(args.a);
    LoadedRun b = load(args.b);
    nlohmann::json result = sessions::compare_runs(a.result, b.result);
    sessions::add_bench_comparison(result, a.bench, b.bench);
    for (auto* side : {&a, &b}) {
        nlohmann::json& j = result[side == &a ? "a" : "b"];
        j["file"] = side->file;
        j["run"] = side->summary.id;
        j["label"] = side->summary.label;
        j["status"] = side->summary.status;
        j["kind"] = side->summary.kind;
    }
    if (args.json) {
        print_json(result);
        return 0;
    }

    const Painter painter{isatty(STDOUT_FILENO) == 1};
    std::cout << "A  " << a.file << ":" << a.summary.id << "  " << a.summary.label << " (" << a.summary.status << ")\n";
    std::cout << "B  " << b.file << ":" << b.summary.id << "  " << b.summary.label << " (" << b.summary.status << ")\n";
    if (!result["same_tokens"].get<bool>()) std::cout << "note: the runs saw different tokens\n";

    std::cout << "\nconfig differences\n";
    if (result["config_diff"].empty()) {
        std::cout << "  none\n";
    } else {
        Table diff({"field", "A", "B"});
        for (const auto& d : result["config_diff"]) diff.add({d["field"].get<std::string>(), value_text(d["a"]), value_text(d["b"])});
        diff.print(std::cout);
    }

    // Run-wide metrics in one table; the "layer L ..." ones regrouped into a
    // row per layer, which reads far better than 3 x n_layers lines.
    std::cout << "\nmetrics (delta = B - A, rel = delta / |A|)\n";
    Table metrics({"metric", "A", "B", "delta", "rel"});
    std::map<int, std::map<std::string, const nlohmann::json*>> per_layer;
    for (const auto& m : result["metrics"]) {
        const std::string name = m["name"].get<std::string>();
        if (name.rfind("layer ", 0) == 0) {
            const size_t space = name.find(' ', 6);
            if (space != std::string::npos) {
                per_layer[std::atoi(name.c_str() + 6)][name.substr(space + 1)] = &m;
                continue;
            }
        }
        const double delta = number(m["delta"]);
        const std::string better = m.value("better", "");
        metrics.add({name, value_text(m["a"]), value_text(m["b"]), painter.paint(value_text(m["delta"]), delta, better),
                     painter.paint(percent(m["rel"]), delta, better)});
    }
    metrics.print(std::cout);
    if (!per_layer.empty()) {
        std::cout << "\nper layer\n";
        Table layers({"layer", "recall A", "recall B", "delta", "p5 A", "p5 B", "error A", "error B", "delta"});
        auto get = [](const std::map<std::string, const nlohmann::json*>& row, const char* name, const char* key) {
            auto it = row.find(name);
            return it == row.end() ? nlohmann::json(nullptr) : (*it->second)[key];
        };
        for (const auto& [layer, row] : per_layer) {
            const nlohmann::json recall_delta = get(row, "recall_mean", "delta");
            const nlohmann::json error_delta = get(row, "output_rel_error", "delta");
            layers.add({std::to_string(layer), value_text(get(row, "recall_mean", "a")), value_text(get(row, "recall_mean", "b")),
                        painter.paint(value_text(recall_delta), number(recall_delta), "higher"),
                        value_text(get(row, "recall_p5", "a")), value_text(get(row, "recall_p5", "b")),
                        value_text(get(row, "output_rel_error", "a")), value_text(get(row, "output_rel_error", "b")),
                        painter.paint(value_text(error_delta), number(error_delta), "lower")});
        }
        layers.print(std::cout);
    }

    const auto& kernels = result["kernels"];
    if (!kernels.empty()) {
        std::vector<const nlohmann::json*> order;
        for (const auto& k : kernels) order.push_back(&k);
        auto magnitude = [](const nlohmann::json* k) {
            const double d = number((*k)["delta_ms"]);
            return std::isfinite(d) ? std::fabs(d) : -1.0;
        };
        std::stable_sort(order.begin(), order.end(),
                         [&](const nlohmann::json* x, const nlohmann::json* y) { return magnitude(x) > magnitude(y); });
        const size_t shown = std::min<size_t>(order.size(), size_t(std::max(args.top, 0)));
        std::cout << "\nkernels: top " << shown << " of " << order.size() << " launches by |delta| (i-th launch of a name in A vs B)\n";
        Table table({"kernel", "launch", "layer", "context", "A ms", "B ms", "delta ms", "rel"});
        for (size_t i = 0; i < shown; ++i) {
            const auto& k = *order[i];
            const double delta = number(k["delta_ms"]);
            const int64_t context = k.value("context", int64_t(0));
            table.add({k["name"].get<std::string>(), value_text(k["launch"]), value_text(k["layer"]),
                       context > 0 ? std::to_string(context) : "-", fixed(number(k["a_ms"]), 4),
                       fixed(number(k["b_ms"]), 4), painter.paint(fixed(delta, 4), delta, "lower"),
                       painter.paint(percent(k["rel"]), delta, "lower")});
        }
        table.print(std::cout);
        std::cout << "\nkernel totals by name\n";
        Table totals({"kernel", "A n", "B n", "A ms", "B ms", "delta ms", "rel"});
        for (const auto& t : result["kernel_totals"]) {
            const double delta = number(t["delta_ms"]);
            totals.add({t["name"].get<std::string>(), value_text(t["a_count"]), value_text(t["b_count"]),
                        fixed(number(t["a_ms"]), 3), fixed(number(t["b_ms"]), 3),
                        painter.paint(fixed(delta, 3), delta, "lower"), painter.paint(percent(t["rel"]), delta, "lower")});
        }
        totals.print(std::cout);
    }

    const auto& jaccard = result["selection_jaccard"];
    std::cout << "\nselection overlap (mean Jaccard of per-query selected " << jaccard["unit"].get<std::string>() << ")\n";
    if (jaccard["rows"].empty()) {
        std::cout << "  no layer has selections captured in both runs\n";
    } else {
        std::vector<std::string> headers = {"layer"};
        int groups = 0;
        for (const auto& r : jaccard["rows"]) groups = std::max(groups, r["group"].get<int>() + 1);
        for (int g = 0; g < groups; ++g) headers.push_back("group " + std::to_string(g));
        Table table(headers);
        std::vector<std::string> row;
        int current = -1;
        for (const auto& r : jaccard["rows"]) {
            if (r["layer"].get<int>() != current) {
                if (!row.empty()) table.add(row);
                current = r["layer"].get<int>();
                row = {std::to_string(current)};
            }
            row.push_back(fixed(number(r["jaccard"]), 3));
        }
        if (!row.empty()) table.add(row);
        table.print(std::cout);
        std::cout << "mean " << fixed(number(jaccard["mean"]), 4) << "\n";
    }
    return 0;
}

const RegisterCommand registration{Command{
    "compare", "Line up two stored runs: config, metrics, kernels, selection overlap", 70, [](CLI::App& sub) {
        auto args = std::make_shared<CompareArgs>();
        sub.add_option("a", args->a, "Session FILE[:RUN] (RUN defaults to the file's last run)")->required();
        sub.add_option("b", args->b, "Session FILE[:RUN]")->required();
        sub.add_flag("--json", args->json, "Print one JSON object");
        sub.add_option("--top", args->top, "Kernel launches to list, largest |delta| first")->capture_default_str();
        return std::function<int()>([args] { return run_compare(*args); });
    }}};

}  // namespace
}  // namespace msa::cli
