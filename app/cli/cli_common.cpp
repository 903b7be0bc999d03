#include "core/clock.h"
#include "app/cli/cli_common.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>

#include "core/errors.h"
#include "core/model.h"

namespace msa::cli {
namespace {
}  // namespace

std::string resolve_model_path(const std::string& flag_value) {
    if (!flag_value.empty()) return flag_value;
    std::string path = default_model_path();
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
        throw InputError("no --model given and the default model is not at " + path +
                         " (run scripts/fetch_model.sh to fetch it)");
    return path;
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError("cannot open text file " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.empty()) throw InputError("text file " + path + " is empty");
    return text;
}

Progress::Progress(std::string title) : title_(std::move(title)), tty_(isatty(STDERR_FILENO)), start_ms_(now_ms()) {}

Progress::~Progress() { finish(); }

bool Progress::update(double fraction, const std::string& stage) {
    int percent = static_cast<int>(std::floor(std::max(0.0, std::min(1.0, fraction)) * 100));
    double elapsed = (now_ms() - start_ms_) / 1000;
    if (tty_) {
        if (percent == last_percent_ && stage == last_stage_) return true;
        const int width = 30;
        int filled = percent * width / 100;
        std::string bar(filled, '#');
        bar += std::string(width - filled, '.');
        std::string eta = "";
        if (fraction > 0.02) eta = ", ~" + std::to_string(static_cast<int>(elapsed * (1 - fraction) / fraction)) + " s left";
        std::fprintf(stderr, "\r%s [%s] %3d%% %-28.28s (%.0f s%s)   ", title_.c_str(), bar.c_str(), percent,
                     stage.c_str(), elapsed, eta.c_str());
        std::fflush(stderr);
    } else if (stage != last_stage_) {
        std::fprintf(stderr, "%s: %s (%d%%, %.0f s)\n", title_.c_str(), stage.c_str(), percent, elapsed);
    }
    last_percent_ = percent;
    last_stage_ = stage;
    return true;
}

ProgressFn Progress::callback() {
    return [this](double f, const std::string& stage) { return update(f, stage); };
}

void Progress::finish() {
    if (finished_) return;
    finished_ = true;
    if (tty_ && last_percent_ >= 0) std::fprintf(stderr, "\n");
}

void Table::print(std::ostream& os) const {
    std::vector<size_t> width(headers_.size(), 0);
    for (size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
    for (const auto& row : rows_)
        for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
        for (size_t i = 0; i < width.size(); ++i) {
            const std::string cell = i < cells.size() ? cells[i] : "";
            // First column reads as a label (left), the rest as numbers (right).
            if (i == 0)
                os << cell << std::string(width[i] - cell.size(), ' ');
            else
                os << "  " << std::string(width[i] - cell.size(), ' ') << cell;
        }
        os << "\n";
    };
    line(headers_);
    size_t total = 0;
    for (size_t w : width) total += w + 2;
    os << std::string(total - 2, '-') << "\n";
    for (const auto& row : rows_) line(row);
}

std::string fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string human_count(double v) {
    if (!std::isfinite(v)) return "-";
    const char* units[] = {"", " K", " M", " G", " T", " P", " E"};
    int u = 0;
    while (std::fabs(v) >= 1000 && u < 6) {
        v /= 1000;
        ++u;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
    return buf;
}

nlohmann::json number_or_null(double v) {
    if (!std::isfinite(v)) return nullptr;
    return v;
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace msa::cli
