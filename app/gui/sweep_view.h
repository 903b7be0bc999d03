#pragma once
// A quality study (a `sweep` or `needle` run): perplexity, needle hit rate,
// recall and answers against k, one line per scorer, and the rows as a table.
// The charts are viz images (viz/study_charts.h) shown as textures, so
// "Export PNG" and `msascope-cli export --format png` write the same charts.
#include <memory>
#include <string>
#include <vector>

#include "app/gui/texture.h"
#include "viz/layout.h"

namespace msa {
struct RunResult;
}

namespace msa::gui {

class App;

class SweepView {
public:
    void draw(App& app, const viz::Rect& r);
    int charts_shown() const { return static_cast<int>(charts_.size()); }

private:
    void rows_table(App& app, float height);
    void export_png(App& app);

    // Chart textures and what they were rendered for: re-rendered only when
    // the run or the cell size changes.
    std::vector<std::unique_ptr<Texture>> charts_;
    // The run by address and by name: a new run may reuse a freed address.
    const RunResult* rendered_run_ = nullptr;
    std::string rendered_source_;
    int rendered_w_ = 0, rendered_h_ = 0;
};

}  // namespace msa::gui
