#include "app/gui/sessions_browser.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "app/gui/app.h"
#include "app/gui/panel.h"

namespace msa::gui {

void SessionsBrowser::remember(const std::string& path) {
    auto it = std::find(files_.begin(), files_.end(), path);
    if (it == files_.end()) {
        files_.push_back(path);
        it = files_.end() - 1;
    }
    current_ = static_cast<int>(it - files_.begin());
    refresh();
}

void SessionsBrowser::refresh() {
    runs_.clear();
    error_.clear();
    if (current_ < 0 || current_ >= static_cast<int>(files_.size())) return;
    try {
        sessions::Reader reader(files_[current_]);
        runs_ = reader.runs();
    } catch (const std::exception& e) {
        error_ = e.what();
    }
}

void SessionsBrowser::draw(App& app, const viz::Rect& r) {
    begin_panel("Sessions", r);
    if (!pending_.empty() && !app.loader().running()) {
        std::string path = std::move(pending_);
        pending_.clear();
        remember(path);
    }
    ImGui::SetNextItemWidth(-110);
    bool enter = ImGui::InputTextWithHint("##session path", "session.db", path_, sizeof path_,
                                          ImGuiInputTextFlags_EnterReturnsTrue);
    ImGui::SameLine();
    if ((ImGui::Button("Open") || enter) && path_[0]) remember(path_);
    ImGui::SameLine();
    if (ImGui::Button("Refresh")) refresh();
    if (files_.size() > 1) {
        ImGui::SetNextItemWidth(-1);
        if (ImGui::BeginCombo("##files", files_[current_].c_str())) {
            for (int i = 0; i < static_cast<int>(files_.size()); ++i)
                if (ImGui::Selectable(files_[i].c_str(), i == current_)) {
                    current_ = i;
                    refresh();
                }
            ImGui::EndCombo();
        }
    } else if (current_ >= 0) {
        ImGui::TextDisabled("%s", viz::elide(files_[current_], ImGui::GetContentRegionAvail().x, text_width).c_str());
        if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", files_[current_].c_str());
    }
    if (!error_.empty()) {
        ImGui::PushTextWrapPos(0);
        ImGui::TextColored(ImVec4(1, 0.5f, 0.4f, 1), "%s", error_.c_str());
        ImGui::PopTextWrapPos();
    }
    if (current_ >= 0 && error_.empty() && runs_.empty()) ImGui::TextDisabled("no runs in this file");
    if (!runs_.empty() &&
        ImGui::BeginTable("runs", 5, ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_SizingStretchProp,
                          ImVec2(0, ImGui::GetContentRegionAvail().y))) {
        ImGui::TableSetupScrollFreeze(0, 1);
        ImGui::TableSetupColumn("id", ImGuiTableColumnFlags_WidthFixed, 24);
        ImGui::TableSetupColumn("run");
        ImGui::TableSetupColumn("tokens", ImGuiTableColumnFlags_WidthFixed, 44);
        ImGui::TableSetupColumn("recall", ImGuiTableColumnFlags_WidthFixed, 40);
        ImGui::TableSetupColumn("", ImGuiTableColumnFlags_WidthFixed, 54);
        ImGui::TableHeadersRow();
        const std::string& file = files_[current_];
        for (const sessions::RunSummary& s : runs_) {
            ImGui::TableNextRow();
            ImGui::PushID(static_cast<int>(s.id));
            ImGui::TableNextColumn();
            ImGui::Text("%lld", static_cast<long long>(s.id));
            ImGui::TableNextColumn();
            // Study runs say so: their label is only the grid's first combination.
            const std::string label = s.label.empty() ? s.kind : s.kind == "run" ? s.label : s.kind + " " + s.label;
            ImGui::TextUnformatted(viz::elide(label, ImGui::GetContentRegionAvail().x, text_width, viz::Cut::end).c_str());
            if (ImGui::IsItemHovered())
                ImGui::SetTooltip("%s\n%s run, %s\nmodel %s\n%s %s\n%d layers, %d captures, %lld kernels", label.c_str(),
                                  s.kind.c_str(), s.status.c_str(), s.model_path.c_str(), s.backend.c_str(), s.device.c_str(),
                                  s.n_layers_stored, s.n_captures, static_cast<long long>(s.n_kernels));
            ImGui::TableNextColumn();
            if (s.n_tokens > 0) ImGui::Text("%d", s.n_tokens);
            else ImGui::TextDisabled("-");  // a bench: its contexts are in the label
            ImGui::TableNextColumn();
            if (std::isfinite(s.recall_mean)) ImGui::Text("%.3f", s.recall_mean);
            else ImGui::TextDisabled("-");
            ImGui::TableNextColumn();
            long long id = s.id;
            if (ImGui::SmallButton("A"))
                app.load("Opening " + file + ":" + std::to_string(id),
                         [file, id](Job&) { return load_session_document(file, id); });
            if (ImGui::IsItemHovered())
                ImGui::SetTooltip(viz::is_study_kind(s.kind) ? "open this run (its charts: the Sweep page)"
                                  : s.kind == "bench"        ? "open this run (kernels and times: the Profile page)"
                                                             : "open this run");
            ImGui::SameLine();
            if (ImGui::SmallButton("B")) {
                app.load("Opening " + file + ":" + std::to_string(id),
                         [file, id](Job&) { return load_session_document(file, id); }, true);
                app.page = viz::Page::compare;
            }
            if (ImGui::IsItemHovered()) ImGui::SetTooltip("compare the current run with this one");
            ImGui::PopID();
        }
        ImGui::EndTable();
    }
    ImGui::End();
}

}  // namespace msa::gui
