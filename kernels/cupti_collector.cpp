// CUPTI activity collector with a CUDA-event fallback (see cupti_collector.h).
#include "kernels/cupti_collector.h"

#include <cuda_runtime.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

#ifdef MSASCOPE_HAVE_CUPTI
#include <cupti.h>
#endif

namespace msa::cuda {

namespace {
struct Tag {
    std::string phase, name;
    double flops = 0, bytes = 0;
    int layer = -1;
    cudaEvent_t begin = nullptr, end = nullptr;  // event mode only
};

std::string demangle(const char* name) {
    if (!name) return "?";
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string s = (status == 0 && out) ? out : name;
    std::free(out);
    return s;
}
}  // namespace

struct KernelCollector::Impl {
    bool cupti = false;
    bool running = false;
    std::string warning;
    uint64_t dropped = 0;
    std::vector<Tag> tags;
    std::map<uint32_t, int> corr_to_tag;  // correlation id -> tag index
    std::vector<KernelRecord> records;
#ifdef MSASCOPE_HAVE_CUPTI
    CUpti_SubscriberHandle subscriber = nullptr;
#endif
};

namespace {
std::mutex g_mutex;
KernelCollector* g_active = nullptr;
KernelCollector::Impl* g_impl = nullptr;
thread_local int t_open_tag = -1;  // tag open on this thread (-1: none)
}  // namespace

#ifdef MSASCOPE_HAVE_CUPTI
namespace {
constexpr size_t kBufferBytes = 8u << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
    *size = *buffer ? kBufferBytes : 0;
    *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t* buffer, size_t, size_t valid) {
    std::lock_guard<std::mutex> lock(g_mutex);
    CUpti_Activity* rec = nullptr;
    while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
        if (!g_impl || rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
        KernelRecord r;
        r.name = demangle(k->name);
        r.grid[0] = k->gridX;
        r.grid[1] = k->gridY;
        r.grid[2] = k->gridZ;
        r.block[0] = k->blockX;
        r.block[1] = k->blockY;
        r.block[2] = k->blockZ;
        r.registers = k->registersPerThread;
        r.shared_bytes = k->staticSharedMemory + k->dynamicSharedMemory;
        r.start_ns = k->start;
        r.end_ns = k->end;
        r.stream = k->streamId;
        r.correlation_id = k->correlationId;
        g_impl->records.push_back(std::move(r));
    }
    size_t dropped = 0;
    if (g_impl && cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS)
        g_impl->dropped += dropped;
    std::free(buffer);
}

// Runtime-API callback: remembers which tag each launch's correlation id belongs to.
void CUPTIAPI on_api(void*, CUpti_CallbackDomain domain, CUpti_CallbackId, const void* data) {
    if (domain != CUPTI_CB_DOMAIN_RUNTIME_API || t_open_tag < 0) return;
    const auto* info = static_cast<const CUpti_CallbackData*>(data);
    if (info->callbackSite != CUPTI_API_ENTER) return;
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_impl) g_impl->corr_to_tag[info->correlationId] = t_open_tag;
}

std::string cupti_error(CUptiResult r) {
    const char* s = nullptr;
    cuptiGetResultString(r, &s);
    return s ? s : "unknown CUPTI error";
}

// Subscribes and enables kernel activity; returns "" or why it failed.
std::string try_enable_cupti(KernelCollector::Impl& impl) {
    CUptiResult r = cuptiSubscribe(&impl.subscriber, on_api, nullptr);
    if (r != CUPTI_SUCCESS) return "cuptiSubscribe: " + cupti_error(r);
    r = cuptiEnableDomain(1, impl.subscriber, CUPTI_CB_DOMAIN_RUNTIME_API);
    if (r == CUPTI_SUCCESS) r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (r != CUPTI_SUCCESS) {
        cuptiUnsubscribe(impl.subscriber);
        impl.subscriber = nullptr;
        return cupti_error(r);
    }
    return "";
}
}  // namespace
#endif

KernelCollector::KernelCollector(bool prefer_cupti) : impl_(std::make_unique<Impl>()) {
#ifdef MSASCOPE_HAVE_CUPTI
    impl_->cupti = prefer_cupti;
    if (!prefer_cupti) impl_->warning = "CUPTI not requested: timing with CUDA events";
#else
    (void)prefer_cupti;
    impl_->warning = "built without CUPTI: timing with CUDA events";
#endif
}

KernelCollector::~KernelCollector() {
    if (impl_ && impl_->running) {
        try {
            stop();
        } catch (...) {
        }
    }
}

void KernelCollector::start() {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_active && g_active != this) throw std::runtime_error("another KernelCollector is running");
    impl_->tags.clear();
    impl_->records.clear();
    impl_->corr_to_tag.clear();
    impl_->dropped = 0;
#ifdef MSASCOPE_HAVE_CUPTI
    if (impl_->cupti) {
        std::string why = try_enable_cupti(*impl_);
        if (!why.empty()) {
            impl_->cupti = false;
            impl_->warning = "CUPTI unavailable (" + why + "): timing with CUDA events";
            std::fprintf(stderr, "msascope: warning: %s\n", impl_->warning.c_str());
        }
    }
#endif
    g_active = this;
    g_impl = impl_.get();
    impl_->running = true;
}

std::vector<KernelRecord> KernelCollector::stop() {
    if (!impl_->running) return {};
    cudaDeviceSynchronize();
#ifdef MSASCOPE_HAVE_CUPTI
    if (impl_->cupti) {
        cuptiActivityFlushAll(1);
        cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
        if (impl_->subscriber) {
            cuptiUnsubscribe(impl_->subscriber);
            impl_->subscriber = nullptr;
        }
    }
#endif
    std::lock_guard<std::mutex> lock(g_mutex);
    std::vector<KernelRecord> out;
    if (impl_->cupti) {
        out = std::move(impl_->records);
        std::sort(out.begin(), out.end(),
                  [](const KernelRecord& a, const KernelRecord& b) { return a.correlation_id < b.correlation_id; });
        // A tag's analytic cost belongs to the kernel that does its arithmetic.
        // An op may launch several kernels under one tag (block-major sparse
        // attention: count, plan, fill, attend, merge, once per window), so the
        // kernel name with the most time in the tag takes the cost, split over its
        // launches by duration; the helpers keep 0 (shown as '-'), and the sum over
        // the tag is still the op's cost. It goes by time: in a short decode step
        // the top-k outlasts the scorer and takes the index's cost.
        std::map<int, std::map<std::string, double>> ms_by_name;  // tag -> kernel name -> ms
        for (auto& r : out) {
            auto it = impl_->corr_to_tag.find(r.correlation_id);
            if (it == impl_->corr_to_tag.end()) continue;
            const Tag& t = impl_->tags[it->second];
            r.phase = t.phase;
            r.layer = t.layer;
            ms_by_name[it->second][r.name] += r.ms();
        }
        std::map<int, std::pair<std::string, double>> costed;  // tag -> (kernel name, its total ms)
        for (const auto& [tag, names] : ms_by_name) {
            auto best = std::max_element(names.begin(), names.end(),
                                         [](const auto& a, const auto& b) { return a.second < b.second; });
            costed[tag] = {best->first, best->second};
        }
        std::map<int, int> launches;  // of the costed kernel, for a split when no time was recorded
        for (const auto& r : out) {
            auto it = impl_->corr_to_tag.find(r.correlation_id);
            if (it != impl_->corr_to_tag.end() && r.name == costed[it->second].first) ++launches[it->second];
        }
        for (auto& r : out) {
            auto it = impl_->corr_to_tag.find(r.correlation_id);
            if (it == impl_->corr_to_tag.end() || r.name != costed[it->second].first) continue;
            const Tag& t = impl_->tags[it->second];
            const double total = costed[it->second].second;
            const double share = total > 0 ? r.ms() / total : 1.0 / launches[it->second];
            r.flops = t.flops * share;
            r.bytes = t.bytes * share;
        }
        if (impl_->dropped)
            std::fprintf(stderr, "msascope: warning: CUPTI dropped %llu kernel records\n",
                         static_cast<unsigned long long>(impl_->dropped));
    } else {
        // Event mode: one record per tag, times relative to the first tag's start.
        cudaEvent_t base = nullptr;
        for (auto& t : impl_->tags)
            if (t.begin) {
                base = t.begin;
                break;
            }
        uint32_t id = 0;
        for (auto& t : impl_->tags) {
            KernelRecord r;
            r.name = t.name;
            r.phase = t.phase;
            r.layer = t.layer;
            r.flops = t.flops;
            r.bytes = t.bytes;
            r.correlation_id = ++id;
            float a = 0, b = 0;
            if (base && t.begin && t.end && cudaEventElapsedTime(&a, base, t.begin) == cudaSuccess &&
                cudaEventElapsedTime(&b, base, t.end) == cudaSuccess) {
                r.start_ns = static_cast<uint64_t>(static_cast<double>(a) * 1e6);
                r.end_ns = static_cast<uint64_t>(static_cast<double>(b) * 1e6);
            }
            if (t.begin) cudaEventDestroy(t.begin);
            if (t.end) cudaEventDestroy(t.end);
            out.push_back(std::move(r));
        }
    }
    impl_->tags.clear();
    impl_->running = false;
    if (g_active == this) {
        g_active = nullptr;
        g_impl = nullptr;
    }
    return out;
}

bool KernelCollector::using_cupti() const { return impl_->cupti; }
const std::string& KernelCollector::warning() const { return impl_->warning; }
uint64_t KernelCollector::dropped_records() const { return impl_->dropped; }
KernelCollector* KernelCollector::active() { return g_active; }

LaunchTag::LaunchTag(const char* phase, const char* name, double flops, double bytes, void* stream, int layer) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_active || !g_impl) return;
    owner_ = g_active;
    Tag t;
    t.phase = phase ? phase : "";
    t.name = name ? name : t.phase;
    t.flops = flops;
    t.bytes = bytes;
    t.layer = layer;
    if (!g_impl->cupti) {
        cudaEventCreate(&t.begin);
        cudaEventCreate(&t.end);
        cudaEventRecord(t.begin, static_cast<cudaStream_t>(stream));
    }
    index_ = static_cast<int>(g_impl->tags.size());
    g_impl->tags.push_back(std::move(t));
    t_open_tag = index_;
    stream_ = stream;
}

LaunchTag::~LaunchTag() {
    if (!owner_) return;
    std::lock_guard<std::mutex> lock(g_mutex);
    t_open_tag = -1;
    if (g_active != owner_ || !g_impl || index_ < 0) return;
    Tag& t = g_impl->tags[index_];
    if (t.end) cudaEventRecord(t.end, static_cast<cudaStream_t>(stream_));
}

}  // namespace msa::cuda
