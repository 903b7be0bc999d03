#pragma once
// Session files: open one, list its runs, open a run (as A) or put it beside
// the current one (as B, for the compare view).
#include <string>
#include <vector>

#include "sessions/session.h"
#include "viz/layout.h"

namespace msa::gui {

class App;

class SessionsBrowser {
public:
    void remember(const std::string& path);  // adds to the file list and lists its runs
    // For a file a background run is about to create: listed once it exists.
    void remember_later(const std::string& path) { pending_ = path; }
    void draw(App& app, const viz::Rect& r);

private:
    void refresh();
    char path_[512] = {};
    std::vector<std::string> files_;
    int current_ = -1;
    std::vector<sessions::RunSummary> runs_;
    std::string error_;
    std::string pending_;
};

}  // namespace msa::gui
