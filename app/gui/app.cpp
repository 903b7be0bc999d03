#include "app/gui/app.h"

#include <imgui.h>

#include <algorithm>
#include <iterator>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/gui/panel.h"
#include "core/parallel.h"
#include "sessions/session.h"

namespace msa::gui {

App::App(const GuiOptions& options) : options_(options) {
    threads_ = options.threads > 0 ? options.threads : default_threads();
    if (!viz::parse_page(options.view, page)) status_ = "unknown --view '" + options.view + "': showing selection";
    if (options.layer >= 0) capture_index = -1;  // resolved against the run once it is loaded
    group = options.group;
    head = options.head;
    query = options.query;
    timeline_context = options.timeline_context;

    if (!options.session.empty()) {
        std::string path = options.session;
        long long id = options.run;
        load("Opening " + path, [path, id](Job&) { return load_session_document(path, id); });
        sessions_.remember(path);
    } else if (!options.model.empty() && (!options.text.empty() || options.needles > 0)) {
        ModelRunRequest request;
        request.model_path = options.model;
        request.text_path = options.text;
        request.needles = options.text.empty() ? options.needles : 0;
        request.max_tokens = options.max_tokens;
        request.threads = threads_;
        request.save_to = options.save;
        if (options.k > 0) request.config.k = options.k;
        if (options.block > 0) request.config.block = options.block;
        if (options.sink >= 0) request.config.sink = options.sink;
        if (!options.scorer.empty()) request.config.scorer = parse_scorer(options.scorer);
        load("Running " + options.model, [request](Job& job) {
            return model_run_document(request, [&job](double f, const std::string& s) { return job.report(f, s); });
        });
    } else if (options.synthetic) {
        int n = options.synthetic_tokens;
        int threads = threads_;
        MsaConfig config;  // release defaults, or the budget given on the command line
        if (options.k > 0) config.k = options.k;
        if (options.block > 0) config.block = options.block;
        if (options.sink >= 0) config.sink = options.sink;
        if (!options.scorer.empty()) config.scorer = parse_scorer(options.scorer);
        std::string save = options.save;
        load("Synthetic attention", [n, threads, config, save](Job& job) {
            return synthetic_document(n, config, threads,
                                      [&job](double f, const std::string& s) { return job.report(f, s); }, save);
        });
    }
    if (!options.save.empty()) sessions_.remember_later(options.save);
    if (!options.compare.empty()) {
        sessions::RunRef ref = sessions::parse_run_ref(options.compare);
        load("Opening " + options.compare,
             [ref](Job&) { return load_session_document(ref.path, ref.run); }, true);
        sessions_.remember(ref.path);
    }
    model_panel_.init(options);
}

App::~App() {
    loader_.cancel();
    compare_loader_.cancel();
    repool_job_.cancel();
    scores_warmup_job_.cancel();
}

void App::load(const std::string& title, std::function<Document(Job&)> produce, bool as_compare) {
    Job& job = as_compare ? compare_loader_ : loader_;
    auto slot = std::make_shared<Document>();
    (as_compare ? compare_loaded_ : loaded_) = slot;
    job.start(title, [slot, produce = std::move(produce)](Job& j) { *slot = produce(j); });
}

void App::adopt(Document doc, bool as_compare) {
    if (as_compare) {
        b_ = std::move(doc);
        return;
    }
    a_ = std::move(doc);
    repooled_.reset();
    ++repooled_revision_;
    repooled_for_ = -1;
    // Another run: its layers' scores are not the last run's. Jobs still at
    // work on the last run stop, and what they finish is dropped by generation.
    repool_job_.cancel();
    scores_warmup_job_.cancel();
    scores_generation_ = scores_cache_->clear();
    warmup_for_ = -1;
    live_.reset();
    live_capture_ = nullptr;
    const RunResult& run = *a_.run;
    budget = run.config;
    if (!options_applied_) {
        // Command-line choices apply to the first run loaded.
        options_applied_ = true;
        if (options_.k > 0) budget.k = options_.k;
        if (options_.sink >= 0) budget.sink = options_.sink;
        if (options_.block > 0) budget.block = options_.block;
        if (!options_.scorer.empty()) {
            try {
                budget.scorer = parse_scorer(options_.scorer);
            } catch (const std::exception& e) {
                status_ = e.what();
            }
        }
        // Without --layer, the first layer with heatmap data: a CLI run keeps
        // selections for every layer but scores and mass for one.
        const std::vector<int> with_heatmaps = heatmap_captures();
        capture_index = with_heatmaps.empty() ? 0 : with_heatmaps.front();
        for (size_t i = 0; i < run.captures.size(); ++i)
            if (run.captures[i].layer == options_.layer) capture_index = static_cast<int>(i);
    }
    if (capture_index < 0 || capture_index >= static_cast<int>(run.captures.size())) capture_index = 0;
    int groups = run.model_config.n_kv_heads, heads = run.model_config.n_heads;
    if (group >= groups) group = 0;
    if (head >= heads) head = 0;
    // Inspect the last query by default: it sees every block, so its bars say the most.
    if (query < 0 || query >= static_cast<int>(run.tokens.size())) query = static_cast<int>(run.tokens.size()) - 1;
    heatmaps_.reset_view();
    // A sweep / needle run has rows, not captures: its page is the study charts.
    // A bench run has kernels and times, no layers: its page is the profile.
    if (!a_.study.empty()) page = viz::Page::sweep;
    else if (!a_.bench.empty() && page != viz::Page::compare) page = viz::Page::profile;
    else if (page == viz::Page::sweep) page = viz::Page::selection;
    if (run.captures.empty() && a_.study.empty() && a_.bench.empty())
        status_ = "this run has no captured layers: heatmaps need a run with captures";
}

void App::collect_jobs() {
    if (loader_.take_finished()) {
        if (!loader_.error().empty()) status_ = loader_.title() + ": " + loader_.error();
        else if (loaded_ && !loaded_->empty()) {
            adopt(std::move(*loaded_), false);
            // The run line beside the status names the source in full; a session's run id is enough here.
            status_ = a_.session_run >= 0 ? "Loaded run " + std::to_string(a_.session_run) : "Loaded " + a_.source;
        }
        loaded_.reset();
    }
    if (compare_loader_.take_finished()) {
        if (!compare_loader_.error().empty()) status_ = compare_loader_.title() + ": " + compare_loader_.error();
        else if (compare_loaded_ && !compare_loaded_->empty()) adopt(std::move(*compare_loaded_), true);
        compare_loaded_.reset();
    }
    if (repool_job_.take_finished()) {
        // A cancelled job was superseded by a newer request: not worth a status line.
        if (!repool_job_.error().empty()) {
            if (!repool_job_.cancelled()) status_ = "re-pooling: " + repool_job_.error();
        } else if (repool_result_ && repool_job_generation_ == scores_generation_ &&
                   repool_job_for_ == repooled_for_ && repool_job_config_.block == repool_requested_.block &&
                   repool_job_config_.scorer == repool_requested_.scorer) {
            repooled_ = std::move(*repool_result_);
            ++repooled_revision_;
            repooled_config_ = repool_job_config_;
        }
        repool_result_.reset();
    }
    if (scores_warmup_job_.take_finished() && !scores_warmup_job_.error().empty() && !scores_warmup_job_.cancelled()) {
        status_ = "caching the other scorers: " + scores_warmup_job_.error();
        warmup_failed_ = true;
    }
}

void App::settle() {
    for (int round = 0; round < 4; ++round) {
        loader_.wait();
        compare_loader_.wait();
        collect_jobs();
        update_selection();
        repool_job_.wait();
        collect_jobs();
        update_selection();
        scores_warmup_job_.wait();
        collect_jobs();
        update_selection();
    }
}

void App::jump_to(int index, int g) {
    if (a_.empty() || index < 0 || index >= static_cast<int>(a_.run->captures.size())) return;
    capture_index = index;
    group = g;
    head = g * group_size();
    page = viz::Page::selection;
}

int App::group_size() const {
    if (a_.empty() || a_.run->model_config.n_kv_heads <= 0) return 1;
    return std::max(1, a_.run->model_config.n_heads / a_.run->model_config.n_kv_heads);
}

const LayerCapture* App::capture() const {
    if (a_.empty() || capture_index < 0 || capture_index >= static_cast<int>(a_.run->captures.size())) return nullptr;
    if (using_repooled()) return &*repooled_;
    return &a_.run->captures[capture_index];
}

std::vector<int> App::heatmap_captures() const {
    std::vector<int> indices;
    if (a_.empty()) return indices;
    for (size_t i = 0; i < a_.run->captures.size(); ++i) {
        const LayerCapture& c = a_.run->captures[i];
        if (!c.scores.values.empty() || !c.mass.values.empty()) indices.push_back(static_cast<int>(i));
    }
    return indices;
}

int App::block_size() const {
    if (using_repooled()) return repooled_config_.block;
    return a_.empty() ? 128 : a_.run->config.block;
}

bool App::repool_pending() const {
    if (a_.empty() || using_repooled()) return false;
    return a_.run->config.block != budget.block || a_.run->config.scorer != budget.scorer;
}

bool App::using_repooled() const {
    return repooled_ && repooled_for_ == capture_index && repooled_config_.block == budget.block &&
           repooled_config_.scorer == budget.scorer;
}

std::string App::repool_problem() const {
    const LayerCapture* c = (a_.empty() || capture_index < 0 || capture_index >= int(a_.run->captures.size()))
                                ? nullptr
                                : &a_.run->captures[capture_index];
    if (!c) return "no captured layer";
    if (!viz::can_repool(*c))
        return "This run did not keep the layer's Q/K/V, so the scorer and block size cannot change here. "
               "Record it with msascope-cli run (without --no-qkv), or run it with them set in the Model panel.";
    if (a_.run->config.index == IndexKind::trained)
        return "This run used the trained index; re-pooling from Q/K/V would use the training-free one and "
               "show another selector. Run again with the scorer and block size set.";
    return "";
}

void App::start_repool() {
    const LayerCapture& original = a_.run->captures[capture_index];
    repool_requested_ = budget;
    repooled_for_ = capture_index;
    repooled_.reset();
    ++repooled_revision_;
    repool_job_for_ = capture_index;
    repool_job_config_ = budget;
    repool_job_generation_ = scores_generation_;
    // The cores go to what the user is waiting for; the warm-up resumes after it.
    scores_warmup_job_.cancel();
    auto result = std::make_shared<LayerCapture>();
    repool_result_ = result;
    MsaConfig config = budget;
    int threads = threads_;
    const int source_block = a_.run->config.block;
    const LayerCapture* source = &original;
    std::shared_ptr<const RunResult> keep_alive = a_.run;  // the capture lives in the run
    std::shared_ptr<viz::BlockScoresCache> cache = scores_cache_;
    const uint64_t generation = scores_generation_;
    repool_job_.start("Re-pooling layer " + std::to_string(original.layer),
                      [result, config, threads, source, source_block, keep_alive, cache, generation](Job& job) {
                          *result = viz::repool(*source, source_block, config, threads,
                                                [&job](double f, const std::string& stage) { return job.report(f, stage); });
                          // Switching back to this scorer later need not pool it again.
                          cache->insert(generation, {source->layer, config.block, config.scorer, config.seed},
                                        result->scores);
                      });
}

bool App::show_cached_scores() {
    const LayerCapture& original = a_.run->captures[capture_index];
    // The dense mass does not depend on the scorer: pair the cached scores with
    // the mass of the capture already at this block size, if there is one.
    const LayerCapture* mass_source = nullptr;
    if (budget.block == a_.run->config.block) mass_source = &original;
    else if (repooled_ && repooled_for_ == capture_index && repooled_config_.block == budget.block)
        mass_source = &*repooled_;
    if (!mass_source || mass_source->mass.values.empty()) return false;
    std::optional<LayerCapture> rescored = viz::rescore_from_cache(*scores_cache_, *mass_source, budget);
    if (!rescored) return false;
    repool_job_.cancel();  // if one runs, it computes what the cache already had
    repooled_ = std::move(*rescored);
    ++repooled_revision_;
    repooled_for_ = capture_index;
    repooled_config_ = repool_requested_ = budget;
    return true;
}

void App::warm_scores_cache() {
    const bool same_key = warmup_for_ == capture_index && warmup_block_ == budget.block;
    if (scores_warmup_job_.running()) {
        if (!same_key) scores_warmup_job_.cancel();  // the user moved to another layer or block size
        return;
    }
    // Only once the shown capture is at the current block size (cached scores
    // pair with its dense mass), and never beside a re-pooling job the user waits for.
    if (repool_job_.running() || repool_pending() || !repool_problem().empty()) return;
    if (same_key && warmup_failed_) return;
    const LayerCapture& original = a_.run->captures[capture_index];
    const AttentionShape& shape = original.qkv_shape;
    // A layer whose scorers do not fit the cache together would evict its own entries.
    if (std::size(viz::kAllScorers) * viz::block_scores_bytes(shape.n_tokens, shape.n_kv_heads, budget.block) >
        scores_cache_->max_bytes())
        return;
    std::vector<Scorer> scorers =
        viz::scorers_to_warm(*scores_cache_, original.layer, budget.block, budget.seed, budget.scorer);
    if (scorers.empty()) return;
    warmup_for_ = capture_index;
    warmup_block_ = budget.block;
    warmup_failed_ = false;
    const LayerCapture* source = &original;
    std::shared_ptr<const RunResult> keep_alive = a_.run;
    std::shared_ptr<viz::BlockScoresCache> cache = scores_cache_;
    const uint64_t generation = scores_generation_, seed = budget.seed;
    const int block = budget.block, threads = threads_;
    scores_warmup_job_.start("Caching other scorers of layer " + std::to_string(original.layer),
                             [cache, generation, source, keep_alive, block, seed, scorers, threads](Job& job) {
                                 viz::warm_scores_cache(*cache, generation, *source, block, seed, scorers, threads,
                                                        [&job](double f, const std::string& stage) {
                                                            return job.report(f, stage);
                                                        });
                             });
}

void App::update_selection() {
    const LayerCapture* c = capture();
    if (!c) {
        live_.reset();
        return;
    }
    bool already_requested = repooled_for_ == capture_index && repool_requested_.block == budget.block &&
                             repool_requested_.scorer == budget.scorer;
    // The user moved on (another block size, scorer or layer): stop the stale job at its next stage.
    if (repool_job_.running() && !already_requested) repool_job_.cancel();
    if (repool_pending() && repool_problem().empty()) {
        // Cached scores make a scorer change cost what a k change costs; without them, re-pool in the background.
        if (!show_cached_scores() && !repool_job_.running() && !already_requested) start_repool();
        c = capture();
    }
    warm_scores_cache();
    if (c->scores.values.empty() || c->mass.values.empty()) {
        live_.reset();  // selections-only capture: show what the run selected
        live_capture_ = c;
        return;
    }
    if (live_ && live_capture_ == c && live_revision_ == repooled_revision_ && live_k_ == budget.k &&
        live_sink_ == budget.sink)
        return;
    live_ = viz::reselect(*c, budget.k, budget.sink, block_size());
    live_capture_ = c;
    live_revision_ = repooled_revision_;
    live_k_ = budget.k;
    live_sink_ = budget.sink;
}

const Selection* App::selection() const {
    if (live_) return &live_->selection;
    const LayerCapture* c = capture();
    return (c && !c->selection.blocks.empty()) ? &c->selection : nullptr;
}

const std::vector<float>* App::recall() const {
    if (live_) return &live_->recall;
    const LayerCapture* c = capture();
    return (c && !c->recall.empty()) ? &c->recall : nullptr;
}

void App::draw_menu(const viz::Rect& r) {
    ImGui::SetNextWindowPos(ImVec2(r.x, r.y));
    ImGui::SetNextWindowSize(ImVec2(r.w, r.h));
    ImGui::Begin("##menu", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                     ImGuiWindowFlags_NoBringToFrontOnFocus);
    ImGui::SetCursorPosY(ImGui::GetCursorPosY() - 3);
    ImGui::TextColored(ImVec4(1.0f, 0.6f, 0.1f, 1.0f), "msascope");
    ImGui::SameLine(0, 18);
    for (viz::Page p : {viz::Page::selection, viz::Page::profile, viz::Page::compare, viz::Page::sweep}) {
        bool active = page == p;
        if (active) ImGui::PushStyleColor(ImGuiCol_Button, ImGui::GetStyleColorVec4(ImGuiCol_ButtonActive));
        const char* labels[] = {"Selection", "Profile", "Compare", "Sweep"};
        std::string label = labels[static_cast<int>(p)];
        if (ImGui::SmallButton(label.c_str())) page = p;
        if (active) ImGui::PopStyleColor();
        ImGui::SameLine();
    }
    ImGui::SameLine(0, 18);
    // The run line and the status share the rest of the strip: the status
    // (right-aligned) gets at most half, the run line what is left, each cut in
    // the middle when too long, so they cannot overlap at any window width.
    // Hovering a cut one shows it whole.
    const float gap = 20, right_margin = 12, x0 = ImGui::GetCursorPosX();
    const float avail = std::max(0.f, r.w - x0 - right_margin);
    const std::string status = viz::elide(status_, avail * 0.5f, text_width);
    const float line_budget = std::max(0.f, avail - (status.empty() ? 0.f : text_width(status) + gap));
    std::string line;
    if (!a_.empty()) {
        const RunResult& run = *a_.run;
        char config[200];
        if (!a_.bench.empty())  // a bench has contexts and a shape, no tokens, scorer or sink
            std::snprintf(config, sizeof config, "  |  bench, %zu contexts  |  k=%d B=%d  |  %s", a_.bench.rows.size(),
                          run.config.k, run.config.block, run.backend.c_str());
        else
            std::snprintf(config, sizeof config, "  |  %zu tokens  |  k=%d B=%d %s sink=%d  |  %s", run.tokens.size(),
                          run.config.k, run.config.block, to_string(run.config.scorer), run.config.sink,
                          run.backend.c_str());
        // Cut the source (a path, usually) first: the run's numbers say more.
        const float source_budget = std::max(text_width("/a...b"), line_budget - text_width(config));
        line = viz::elide(viz::elide(a_.source, source_budget, text_width) + config, line_budget, text_width);
    } else {
        line = viz::elide("no run loaded: open a session, run a model, or try synthetic attention", line_budget, text_width);
    }
    ImGui::TextDisabled("%s", line.c_str());
    if (!a_.empty() && line.find(a_.source) == std::string::npos && ImGui::IsItemHovered())
        ImGui::SetTooltip("%s", a_.source.c_str());
    if (!status.empty()) {
        ImGui::SameLine(r.w - text_width(status) - right_margin);
        ImGui::TextColored(ImVec4(0.95f, 0.8f, 0.4f, 1.0f), "%s", status.c_str());
        if (status != status_ && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", status_.c_str());
    }
    ImGui::End();
}

void App::frame(int width, int height) {
    collect_jobs();
    update_selection();
    viz::AppLayout layout = viz::compute_layout(static_cast<float>(width), static_cast<float>(height), page,
                                                ImGui::GetFrameHeight() + 8);
    draw_menu(layout.menu);
    model_panel_.draw(*this, layout.model);
    controls_.draw(*this, layout.controls);
    sessions_.draw(*this, layout.sessions);
    switch (page) {
        case viz::Page::selection:
            heatmaps_.draw(*this, layout.heatmaps);
            inspector_.draw(*this, layout.inspector);
            text_.draw(*this, layout.text);
            overview_.draw(*this, layout.overview);
            break;
        case viz::Page::profile: profile_.draw(*this, layout.content); break;
        case viz::Page::compare: compare_.draw(*this, layout.content); break;
        case viz::Page::sweep: sweep_.draw(*this, layout.content); break;
    }
}

}  // namespace msa::gui

namespace msa::gui {

std::string App::screenshot_info() const {
    nlohmann::json info;
    info["page"] = viz::to_string(page);
    info["source"] = a_.source;
    info["compare_source"] = b_.source;
    info["status"] = status_;
    const LayerCapture* c = capture();
    info["layer"] = c ? c->layer : -1;
    info["group"] = group;
    info["head"] = head;
    info["query"] = query;
    info["timeline_context"] = timeline_context;
    info["k"] = budget.k;
    info["sink"] = budget.sink;
    info["block"] = block_size();
    info["scorer"] = to_string(budget.scorer);
    info["study_rows"] = a_.study.points.size();
    info["study_charts"] = sweep_.charts_shown();
    const HeatmapView::Placement& p = heatmaps_.scores_placement();
    if (p.drawn)
        info["scores_heatmap"] = {{"x", p.x}, {"y", p.y}, {"w", p.w}, {"h", p.h}, {"q0", p.window.q0},
                                  {"q1", p.window.q1}, {"b0", p.window.b0}, {"b1", p.window.b1}};
    const TextView::Placement& tv = text_.placement();
    if (page == viz::Page::selection && tv.drawn)
        info["text_view"] = {{"x", tv.x}, {"y", tv.y}, {"w", tv.w}, {"h", tv.h}, {"first_token", tv.first_token},
                             {"last_token", tv.last_token}};
    return info.dump(1);
}

}  // namespace msa::gui
