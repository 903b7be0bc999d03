#include "app/gui/job.h"

#include <chrono>
#include <exception>

namespace msa::gui {

namespace {
double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Job::~Job() {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
}

void Job::start(std::string title, std::function<void(Job&)> work) {
    wait();
    unclaimed_ = false;
    title_ = std::move(title);
    done_ = false;
    cancel_ = false;
    fraction_ = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stage_ = "starting";
        error_.clear();
    }
    started_ = now_seconds();
    thread_ = std::thread([this, work = std::move(work)] {
        try {
            work(*this);
        } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = e.what();
        }
        done_ = true;
    });
}

bool Job::take_finished() {
    if (unclaimed_) {
        unclaimed_ = false;
        return true;
    }
    if (!thread_.joinable() || !done_) return false;
    thread_.join();
    return true;
}

void Job::wait() {
    if (!thread_.joinable()) return;
    thread_.join();
    unclaimed_ = true;  // take_finished still reports it once
}

bool Job::report(double fraction, const std::string& stage) {
    fraction_ = fraction;
    std::lock_guard<std::mutex> lock(mutex_);
    stage_ = stage;
    return !cancel_;
}

std::string Job::stage() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stage_;
}

std::string Job::error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
}

double Job::seconds() const { return now_seconds() - started_; }

}  // namespace msa::gui
