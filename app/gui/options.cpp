#include "app/gui/options.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/flops.h"
#include "core/model.h"

namespace msa::gui {

GuiOptions parse_options(int argc, char** argv) {
    GuiOptions o;
    CLI::App cli{"msascope: see which key blocks MiniMax Sparse Attention selects, what it misses, and what it costs"};
    cli.add_option("--model", o.model, "model file (.gguf or Hugging Face folder)");
    cli.add_option("--text", o.text, "text file to run through the model");
    cli.add_option("--needles", o.needles,
                   "run the model (default: the cached SmolLM2) on a generated document with N planted facts");
    cli.add_option("--tokens", o.max_tokens, "keep at most this many tokens of the text")->capture_default_str();
    cli.add_option("--session", o.session, "session file (.db) to open");
    cli.add_option("--run", o.run, "run id in the session (default: the last run)");
    cli.add_option("--compare", o.compare, "second run for the compare view: FILE[:RUN]");
    cli.add_option("--save", o.save, "append the run made at start (model or synthetic) to this session file");
    cli.add_flag("--synthetic", o.synthetic, "synthetic attention demo input (no model needed)");
    cli.add_option("--synthetic-tokens", o.synthetic_tokens, "tokens of the synthetic input")->capture_default_str();
    cli.add_option("--view", o.view, "page to show: selection (heatmap, inspector, text, overview), profile, compare, sweep (a sweep / needle run)")
        ->capture_default_str();
    cli.add_option("--layer", o.layer, "layer to show");
    cli.add_option("--group", o.group, "GQA group (block scores)");
    cli.add_option("--head", o.head, "query head (dense mass)");
    cli.add_option("--k", o.k, "blocks kept per query (re-selects live)");
    cli.add_option("--block", o.block, "block size B (re-pools; needs Q/K)");
    cli.add_option("--scorer", o.scorer, "max | mean | quest | random (re-pools; needs Q/K)");
    cli.add_option("--sink", o.sink, "1: force block 0 too");
    cli.add_option("--query", o.query, "query position to inspect");
    std::string timeline_context;
    cli.add_option("--timeline-context", timeline_context,
                   "profile page of a bench: the timeline shows only this context's kernels (e.g. 128K)");
    cli.add_option("--threads", o.threads, "CPU threads for runs (0: all)");
    cli.add_option("--screenshot", o.screenshot, "write a PNG of the window after --frames frames, then exit");
    cli.add_option("--screenshot-info", o.screenshot_info, "with --screenshot: write what was shown (JSON) here");
    cli.add_option("--width", o.width, "window width")->capture_default_str();
    cli.add_option("--height", o.height, "window height")->capture_default_str();
    cli.add_option("--frames", o.frames, "frames to render before the screenshot")->capture_default_str();
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        std::exit(cli.exit(e) == 0 ? 0 : 2);
    }
    if (!timeline_context.empty()) {
        std::vector<long long> sizes;
        try {
            sizes = parse_size_list(timeline_context);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "msascope: --timeline-context: %s\n", e.what());
            std::exit(2);
        }
        if (sizes.size() != 1) {
            std::fprintf(stderr, "msascope: --timeline-context takes one context, not '%s'\n", timeline_context.c_str());
            std::exit(2);
        }
        o.timeline_context = sizes.front();
    }
    if (o.needles > 0 && o.model.empty()) o.model = default_model_path();
    return o;
}

}  // namespace msa::gui
