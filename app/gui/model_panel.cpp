#include "app/gui/model_panel.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "app/gui/app.h"
#include "app/gui/panel.h"
#include "core/model.h"

namespace msa::gui {

namespace {
void copy_into(char* dst, size_t n, const std::string& s) {
    std::strncpy(dst, s.c_str(), n - 1);
    dst[n - 1] = 0;
}
}  // namespace

void ModelPanel::init(const GuiOptions& options) {
    std::string model = options.model;
    if (model.empty()) {
        try {
            model = default_model_path();
        } catch (const std::exception&) {
        }
    }
    copy_into(model_path_, sizeof model_path_, model);
    copy_into(text_path_, sizeof text_path_, options.text);
    max_tokens_ = options.max_tokens;
    if (options.needles > 0) needles_ = options.needles;
    synthetic_tokens_ = options.synthetic_tokens;
}

void ModelPanel::draw(App& app, const viz::Rect& r) {
    begin_panel("Model & text", r);
    Job& job = app.loader();
    bool busy = job.running();
    ImGui::PushItemWidth(-70);
    ImGui::InputText("model", model_path_, sizeof model_path_);
    ImGui::InputTextWithHint("text", "empty: a generated needle document", text_path_, sizeof text_path_);
    const float half = (ImGui::GetContentRegionAvail().x - 70) / 2;
    ImGui::SetNextItemWidth(half - 20);
    ImGui::InputInt("tokens", &max_tokens_, 1024, 4096);
    max_tokens_ = std::clamp(max_tokens_, 2, 1 << 20);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(-70);
    ImGui::InputInt("needles", &needles_, 1, 4);
    needles_ = std::clamp(needles_, 1, 256);
    if (ImGui::IsItemHovered())
        ImGui::SetTooltip("with the text field empty, Run generates a document with this many planted facts and questions");
    ImGui::InputText("save to", save_path_, sizeof save_path_);
    ImGui::PopItemWidth();
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("session file (.db) the run is appended to; empty: not saved");
    ImGui::Checkbox("perplexity (MSA in every layer, slower)", &perplexity_);
    ImGui::TextDisabled("budget: k=%d  B=%d  %s  sink=%d  (Controls)", app.budget.k, app.budget.block,
                        to_string(app.budget.scorer), app.budget.sink);

    std::error_code ec;
    // An empty text field runs the generated multi-needle document (the app's default text).
    const bool generated = text_path_[0] == 0;
    bool model_ok = std::filesystem::exists(model_path_, ec), text_ok = generated || std::filesystem::exists(text_path_, ec);
    ImGui::BeginDisabled(busy || !model_ok || !text_ok);
    if (ImGui::Button("Run")) {
        ModelRunRequest request;
        request.model_path = model_path_;
        request.text_path = text_path_;
        request.needles = generated ? needles_ : 0;
        request.max_tokens = max_tokens_;
        request.config = app.budget;
        request.threads = app.threads();
        request.perplexity = perplexity_;
        request.save_to = save_path_;
        app.load("Running " + std::filesystem::path(model_path_).filename().string(), [request](Job& j) {
            return model_run_document(request, [&j](double f, const std::string& s) { return j.report(f, s); });
        });
    }
    ImGui::EndDisabled();
    if (!busy && (!model_ok || !text_ok) && ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled))
        ImGui::SetTooltip("%s", !model_ok ? "model file not found" : "text file not found");
    ImGui::SameLine();
    ImGui::BeginDisabled(busy);
    if (ImGui::Button("Synthetic")) {
        int n = synthetic_tokens_, threads = app.threads();
        MsaConfig config = app.budget;
        std::string save = save_path_;
        app.load("Synthetic attention", [n, config, threads, save](Job& j) {
            return synthetic_document(n, config, threads, [&j](double f, const std::string& s) { return j.report(f, s); },
                                      save);
        });
    }
    ImGui::EndDisabled();
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("concentrated, topic-structured attention built from Q/K/V; no model needed");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(-1);
    ImGui::InputInt("##synthetic tokens", &synthetic_tokens_, 1024, 4096);
    synthetic_tokens_ = std::clamp(synthetic_tokens_, 256, 65536);

    if (busy) {
        char overlay[160];
        std::snprintf(overlay, sizeof overlay, "%s  %.0f%%  (%.1f s)", job.stage().c_str(), job.fraction() * 100,
                      job.seconds());
        ImGui::ProgressBar(static_cast<float>(job.fraction()), ImVec2(-70, 0), overlay);
        ImGui::SameLine();
        if (ImGui::Button("Cancel")) job.cancel();
    } else if (!app.doc().empty()) {
        const RunResult& run = *app.doc().run;
        const ModelConfig& m = run.model_config;
        ImGui::Separator();
        ImGui::Text("%s: %d layers, %d q heads / %d kv heads, d=%d", m.arch.c_str(), m.n_layers, m.n_heads,
                    m.n_kv_heads, m.head_dim);
        if (!app.doc().bench.empty())
            ImGui::Text("bench: %zu contexts, %zu kernel records, %s", app.doc().bench.rows.size(), run.kernels.size(),
                        run.device.c_str());
        else
            ImGui::Text("%zu tokens, %zu captured layers, backend %s", run.tokens.size(), run.captures.size(),
                        run.backend.c_str());
        if (std::isfinite(run.perplexity_dense) && std::isfinite(run.perplexity_msa))
            ImGui::Text("perplexity dense %.3f  msa %.3f", run.perplexity_dense, run.perplexity_msa);
        else if (std::isfinite(run.perplexity_dense))
            ImGui::Text("perplexity dense %.3f  (no MSA forward in this run)", run.perplexity_dense);
        // Wrapped: a warning is a sentence, and the panel is narrow.
        ImGui::PushTextWrapPos(0);
        for (const std::string& w : run.warnings) ImGui::TextColored(ImVec4(1, 0.75f, 0.3f, 1), "! %s", w.c_str());
        ImGui::PopTextWrapPos();
    }
    ImGui::End();
}

}  // namespace msa::gui
