#pragma once
// What every msascope-cli command shares: model resolution, text input,
// progress on stderr, aligned tables, JSON numbers.
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "core/forward.h"

namespace msa::cli {

// --model: the flag's value, or the default model in the cache (with a
// one-line hint on how to fetch it when it is missing).
std::string resolve_model_path(const std::string& flag_value);

// Reads a UTF-8 text file; InputError when missing or empty.
std::string read_text_file(const std::string& path);

// A progress bar on stderr, drawn only when stderr is a terminal (scripts and
// CI logs get one line per stage instead of a redraw storm).
class Progress {
public:
    explicit Progress(std::string title);
    ~Progress();
    bool update(double fraction, const std::string& stage);
    ProgressFn callback();
    void finish();

private:
    std::string title_;
    bool tty_;
    bool finished_ = false;
    std::string last_stage_;
    int last_percent_ = -1;
    double start_ms_;
};

class Table {
public:
    explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void print(std::ostream& os) const;

private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
};

std::string fixed(double v, int decimals);    // "nan" -> "-"
std::string human_count(double v);            // 1.2 G, 35.4 M ...
nlohmann::json number_or_null(double v);      // NaN/inf -> null
void print_json(const nlohmann::json& j);     // one object on stdout

}  // namespace msa::cli
