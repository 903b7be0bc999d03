#pragma once
// Command-line flags of the msascope GUI.
#include <string>

namespace msa::gui {

struct GuiOptions {
    std::string model;            // model file; runs msa::analyze on --text when no --session
    std::string text;             // text file
    int needles = 0;              // > 0: run on a generated document with this many planted facts
    int max_tokens = 8192;
    std::string session;          // session file to open
    long long run = -1;           // run id in the session (-1: last)
    std::string compare;          // FILE[:RUN] to compare against (compare view)
    std::string save;             // append the run made at start (model or synthetic) to this session file
    bool synthetic = false;       // synthetic attention demo input
    int synthetic_tokens = 4096;
    std::string view = "selection";
    int layer = -1, group = 0, head = 0, k = -1, block = -1, sink = -1;
    std::string scorer;
    int query = -1;               // query to inspect at start
    long long timeline_context = 0;  // profile timeline: only this bench context's kernels (0: all)
    int threads = 0;              // 0: all cores
    std::string screenshot_info;  // with --screenshot: also write what was shown, as JSON
    std::string screenshot;       // write a PNG of the window after `frames` frames and exit
    int width = 1600, height = 1000;
    int frames = 3;
};

// Parses argv; on --help or a bad flag prints and exits (0 / 2).
GuiOptions parse_options(int argc, char** argv);

}  // namespace msa::gui
