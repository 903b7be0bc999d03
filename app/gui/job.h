#pragma once
// Long work (a model run, a synthetic run, re-pooling) on its own thread, so
// the window never freezes. The UI thread polls progress every frame and takes
// the result when the job is done.
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace msa::gui {

class Job {
public:
    Job() = default;
    ~Job();
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;

    // `work` runs on the job's thread; it should call report() and stop early
    // when cancelled() turns true. Exceptions become error().
    void start(std::string title, std::function<void(Job&)> work);
    bool running() const { return thread_.joinable() && !done_; }
    bool idle() const { return !thread_.joinable() && !unclaimed_; }
    // True once, on the frame the job has finished: the caller then collects its result.
    bool take_finished();
    void wait();

    void cancel() { cancel_ = true; }
    bool cancelled() const { return cancel_; }
    // For msa::ProgressFn: returns false when cancelled.
    bool report(double fraction, const std::string& stage);

    const std::string& title() const { return title_; }
    double fraction() const { return fraction_; }
    std::string stage() const;
    std::string error() const;
    double seconds() const;  // since start

private:
    std::thread thread_;
    std::string title_;
    std::atomic<bool> done_{false}, cancel_{false};
    std::atomic<double> fraction_{0};
    mutable std::mutex mutex_;
    std::string stage_, error_;
    double started_ = 0;
    bool unclaimed_ = false;  // joined by wait() but not yet taken
};

}  // namespace msa::gui
