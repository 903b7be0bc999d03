#pragma once
// Model & text: pick the files, run msa::analyze on a background thread with
// progress and cancel, or start the synthetic attention demo.
#include <string>

#include "app/gui/options.h"
#include "viz/layout.h"

namespace msa::gui {

class App;

class ModelPanel {
public:
    void init(const GuiOptions& options);
    void draw(App& app, const viz::Rect& r);

private:
    char model_path_[512] = {};
    char text_path_[512] = {};
    char save_path_[512] = {};
    int max_tokens_ = 8192;
    int synthetic_tokens_ = 4096;
    int needles_ = 12;  // with no text file: the generated multi-needle document's facts
    bool perplexity_ = false;
};

}  // namespace msa::gui
