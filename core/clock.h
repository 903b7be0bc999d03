#pragma once
// The two clocks msascope reads: a monotonic one for durations and the wall
// clock for the timestamps sessions store.
#include <chrono>
#include <cstdint>

namespace msa {

inline double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

inline int64_t unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace msa
