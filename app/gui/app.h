#pragma once
// The application state every view reads, and the frame that lays the views
// out. Views hold only their own view state (zoom, scroll, textures); what is
// shown (run, layer, group, budget) lives here so that all views agree.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/gui/compare_view.h"
#include "app/gui/controls_panel.h"
#include "app/gui/document.h"
#include "app/gui/heatmap_view.h"
#include "app/gui/job.h"
#include "app/gui/layer_overview.h"
#include "app/gui/model_panel.h"
#include "app/gui/options.h"
#include "app/gui/profile_view.h"
#include "app/gui/query_inspector.h"
#include "app/gui/sessions_browser.h"
#include "app/gui/sweep_view.h"
#include "app/gui/text_view.h"
#include "viz/layout.h"
#include "viz/live_selection.h"
#include "viz/scores_cache.h"

namespace msa::gui {

class App {
public:
    explicit App(const GuiOptions& options);
    ~App();

    // Builds one frame of UI for a framebuffer of width x height.
    void frame(int width, int height);
    // Screenshot mode: block until background work is done and its result is in.
    void settle();

    // ---- documents -------------------------------------------------------
    const Document& doc() const { return a_; }
    const Document& compare_doc() const { return b_; }
    // Load in the background; the result replaces run A (or B for compare).
    void load(const std::string& title, std::function<Document(Job&)> produce, bool as_compare = false);
    Job& loader() { return loader_; }
    Job& compare_loader() { return compare_loader_; }

    // ---- what is shown ---------------------------------------------------
    viz::Page page = viz::Page::selection;
    int capture_index = 0;  // into run->captures
    int group = 0;
    int head = 0;
    int query = -1;         // inspected query, -1 none
    int64_t timeline_context = 0;  // profile timeline of a bench: one context's kernels, 0 all
    MsaConfig budget;       // k, block, scorer, sink the views show (may differ from the run's)
    void jump_to(int capture_index, int group);

    const LayerCapture* capture() const;           // repooled when the scorer / block changed
    const Selection* selection() const;            // at the current k / sink
    const std::vector<float>* recall() const;      // [N, Hq] at the current k / sink
    const viz::LayerSelectionStats* live() const { return live_ ? &*live_ : nullptr; }
    // Captures of the run with block scores or dense mass (heatmap data), as indices into run->captures.
    std::vector<int> heatmap_captures() const;
    int block_size() const;                        // of the shown capture
    int group_size() const;
    bool repool_pending() const;                   // scorer/block differ from the shown capture's
    bool using_repooled() const;                   // the shown capture is a re-pooled one
    std::string repool_problem() const;            // why it cannot re-pool, empty when it can
    Job& repool_job() { return repool_job_; }
    // Pools the scorers not shown, for the shown layer and block size, in the
    // background, so that a later scorer change only re-selects.
    const Job& scores_warmup_job() const { return scores_warmup_job_; }
    // Changes whenever the shown capture is replaced by another re-pooled one
    // (which may live at the same address): views key their caches on it.
    uint64_t capture_revision() const { return repooled_revision_; }
    int threads() const { return threads_; }

    // JSON describing what the last frame showed (run, layer, group, budget, and
    // where the block-score heatmap lies in window pixels), for screenshot tests.
    std::string screenshot_info() const;

    void set_status(const std::string& s) { status_ = s; }
    const std::string& status() const { return status_; }
    const GuiOptions& options() const { return options_; }

private:
    void collect_jobs();
    void adopt(Document doc, bool as_compare);
    void update_selection();
    void start_repool();
    bool show_cached_scores();
    void warm_scores_cache();
    void draw_menu(const viz::Rect& r);

    GuiOptions options_;
    int threads_ = 1;
    Document a_, b_;
    Job loader_, compare_loader_;
    std::shared_ptr<Document> loaded_, compare_loaded_;
    bool options_applied_ = false;

    // Block scores of other scorers, filled by scores_warmup_job_ and by
    // re-pooling jobs; shared with their threads, which may outlive a frame.
    std::shared_ptr<viz::BlockScoresCache> scores_cache_ = std::make_shared<viz::BlockScoresCache>();
    uint64_t scores_generation_ = 0;  // the cache's generation for the current run
    Job scores_warmup_job_;
    int warmup_for_ = -1, warmup_block_ = 0;  // capture index and block size it pools for
    bool warmup_failed_ = false;              // for that key: do not retry every frame

    // Re-pooled capture (scorer / block changed) and its key.
    Job repool_job_;
    std::shared_ptr<LayerCapture> repool_result_;
    int repool_job_for_ = -1;    // what the running job computes: the user may have moved on
    MsaConfig repool_job_config_;
    uint64_t repool_job_generation_ = 0;
    std::optional<LayerCapture> repooled_;
    uint64_t repooled_revision_ = 0;
    int repooled_for_ = -1;
    MsaConfig repooled_config_;
    MsaConfig repool_requested_;

    // Live selection at the current k / sink and its key.
    std::optional<viz::LayerSelectionStats> live_;
    const LayerCapture* live_capture_ = nullptr;
    uint64_t live_revision_ = 0;
    int live_k_ = -1, live_sink_ = -1;

    std::string status_;

    ModelPanel model_panel_;
    ControlsPanel controls_;
    SessionsBrowser sessions_;
    HeatmapView heatmaps_;
    QueryInspector inspector_;
    TextView text_;
    LayerOverview overview_;
    ProfileView profile_;
    CompareView compare_;
    SweepView sweep_;
};

}  // namespace msa::gui
