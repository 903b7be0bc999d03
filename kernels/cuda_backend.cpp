// CUDA backend (cuda_backend.h).
//
// Kernel records. A KernelCollector is started lazily by the first op after
// take_kernel_records() and stopped by the next take, so it is active only
// while the backend works (the collector is process-wide: `bench --profile`
// starts its own and must not find ours running). Two fix-ups after stop():
//  - cuBLAS launches its kernels through the driver API, whose launches the
//    collector's runtime-API callback does not see (seen on an H100 with
//    cuBLAS 13: every nvjet / cutlass GEMM kernel came back untagged), so they
//    come back with no phase and no cost. When no record carries phase "gemm", the untagged
//    cuBLAS-named records are matched, in launch order, to the forward's GEMM log (one
//    entry per cublasGemmEx, with 2*M*N*K FLOPs); cuBLAS's split-K reduction
//    kernels take the phase and layer of their GEMM and no cost.
//  - The attention ops do not know the layer they serve; a record between two
//    records of the same layer gets that layer.
#include "kernels/cuda_backend.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "core/errors.h"
#include "kernels/cuda_attention.h"
#include "kernels/cuda_forward.h"
#include "kernels/cupti_collector.h"

namespace msa::cuda {
namespace {

bool looks_like_reduction(const std::string& name) {
    std::string s = name;
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s.find("splitkreduce") != std::string::npos || s.find("reduce") != std::string::npos;
}

bool looks_like_blas(const std::string& name) {
    for (const char* key : {"nvjet", "gemm", "cutlass", "xmma", "cublas"})
        if (name.find(key) != std::string::npos) return true;
    return false;
}

void attach_gemm_costs(std::vector<KernelRecord>& records, std::vector<KernelRecord> gemms) {
    bool tagged = false;
    for (const KernelRecord& r : records) tagged = tagged || r.phase == "gemm";
    if (tagged) {
        // The collector tagged cuBLAS launches itself (each GEMM's first kernel
        // carries its cost); any other cuBLAS kernel takes the phase at no cost.
        for (KernelRecord& r : records)
            if (r.phase.empty() && looks_like_blas(r.name)) r.phase = "gemm";
        return;
    }
    size_t next = 0;
    const KernelRecord* last = nullptr;
    for (KernelRecord& r : records) {
        if (!r.phase.empty() || !looks_like_blas(r.name)) continue;
        if (last && looks_like_reduction(r.name)) {
            r.phase = "gemm";
            r.layer = last->layer;
            continue;
        }
        if (next >= gemms.size()) break;
        last = &gemms[next++];
        r.phase = "gemm";
        r.layer = last->layer;
        r.flops = last->flops;
        r.bytes = last->bytes;
    }
}

void fill_layers(std::vector<KernelRecord>& records) {
    int prev = -1;
    for (size_t i = 0; i < records.size(); ++i) {
        if (records[i].layer >= 0) {
            prev = records[i].layer;
            continue;
        }
        if (prev < 0) continue;
        size_t j = i + 1;
        while (j < records.size() && records[j].layer < 0) ++j;
        if (j < records.size() && records[j].layer == prev)
            for (size_t m = i; m < j; ++m) records[m].layer = prev;
        i = j - 1;
    }
}

class CudaBackend final : public ComputeBackend {
public:
    CudaBackend() {
        const DeviceInfo info = device_info();
        device_ = info.name + " (sm_" + std::to_string(info.compute_major) + std::to_string(info.compute_minor) + ", " +
                  std::to_string(info.multiprocessors) + " SMs)";
    }

    std::string name() const override { return "cuda"; }
    std::string device() const override { return device_; }

    ForwardResult forward(const Model& model, const std::vector<int>& tokens,
                          const ForwardOptions& options) const override {
        collect();
        return engine_.forward(model, tokens, options);
    }
    void dense_attention(const QKV& qkv, float* out, int) const override {
        collect();
        msa::cuda::dense_attention(qkv, out);
    }
    Selection select_blocks(const IndexInputs& index, const MsaConfig& config, BlockScores* scores,
                            int) const override {
        collect();
        return msa::cuda::select_blocks(index, config, scores);
    }
    void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out, int) const override {
        collect();
        msa::cuda::sparse_attention(qkv, selection, block, out);
    }

    std::vector<KernelRecord> take_kernel_records() const override {
        std::unique_ptr<KernelCollector> collector;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            collector = std::move(collector_);
        }
        std::vector<KernelRecord> gemms = engine_.take_gemm_log();
        if (!collector) return {};
        std::vector<KernelRecord> records = collector->stop();
        if (collector->using_cupti()) attach_gemm_costs(records, std::move(gemms));
        fill_layers(records);
        return records;
    }

    std::vector<std::string> take_warnings() const override {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::string> out;
        out.swap(warnings_);
        return out;
    }

private:
    // Starts the collector if none of ours is running.
    void collect() const {
        std::lock_guard<std::mutex> lock(mutex_);
        if (collector_) return;
        auto c = std::make_unique<KernelCollector>(true);
        try {
            c->start();
        } catch (const std::runtime_error& e) {
            // Another collector (e.g. a benchmark's) is running: work on, unrecorded.
            note("kernel records off for this run: " + std::string(e.what()));
            return;
        }
        if (!c->warning().empty()) note(c->warning());
        collector_ = std::move(c);
    }
    void note(const std::string& w) const {
        if (std::find(warnings_.begin(), warnings_.end(), w) == warnings_.end()) warnings_.push_back(w);
    }

    std::string device_;
    mutable ForwardEngine engine_;
    mutable std::mutex mutex_;
    mutable std::unique_ptr<KernelCollector> collector_;
    mutable std::vector<std::string> warnings_;
};

}  // namespace

const ComputeBackend& cuda_backend() {
    std::string why;
    if (!cuda_available(&why)) throw InputError("no CUDA device: " + why);
    static const CudaBackend* backend = new CudaBackend();
    return *backend;
}

}  // namespace msa::cuda
