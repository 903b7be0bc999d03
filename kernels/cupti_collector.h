#pragma once
// Kernel timings for msascope: CUPTI activity records (CONCURRENT_KERNEL) when
// CUPTI is present and permitted, CUDA events around each tagged launch
// otherwise (with a warning saying why). No CUDA types in this header.
//
// Launchers attach analytic cost with a LaunchTag scope around their kernel
// launches: a CUPTI runtime-API callback reads the correlation id of every
// launch made while the tag is open, and the activity records that come back
// with those ids get the tag's phase, FLOPs and bytes (the first kernel of a
// tag carries the cost; helper kernels of the same tag, e.g. a split-K merge,
// carry the phase with zero cost).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/run_result.h"

namespace msa::cuda {

class KernelCollector {
public:
    // prefer_cupti = false forces the CUDA-event fallback (tests use it).
    explicit KernelCollector(bool prefer_cupti = true);
    ~KernelCollector();
    KernelCollector(const KernelCollector&) = delete;
    KernelCollector& operator=(const KernelCollector&) = delete;

    void start();                      // becomes the active collector
    std::vector<KernelRecord> stop();  // flushes and returns the records in launch order

    bool using_cupti() const;
    const std::string& warning() const;  // why the fallback is in use ("" with CUPTI)
    uint64_t dropped_records() const;    // CUPTI records lost (buffers full)

    static KernelCollector* active();  // the started collector, or null

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Open while a launcher issues its kernels. stream: a cudaStream_t (as void*).
class LaunchTag {
public:
    LaunchTag(const char* phase, const char* name, double flops, double bytes, void* stream = nullptr, int layer = -1);
    ~LaunchTag();
    LaunchTag(const LaunchTag&) = delete;
    LaunchTag& operator=(const LaunchTag&) = delete;

private:
    KernelCollector* owner_ = nullptr;
    int index_ = -1;
    void* stream_ = nullptr;
};

}  // namespace msa::cuda
