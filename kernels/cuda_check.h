#pragma once
// Host-side CUDA error checks for the kernels library: a failing runtime call
// becomes a std::runtime_error naming the call, the file and the line.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace msa::kern {

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* what, const char* file, int line) {
    throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(e) + " in " + what + " (" + file + ":" +
                             std::to_string(line) + ")");
}

}  // namespace msa::kern

#define MSA_CUDA_CHECK(call)                                                          \
    do {                                                                              \
        cudaError_t msa_err_ = (call);                                                \
        if (msa_err_ != cudaSuccess) ::msa::kern::cuda_fail(msa_err_, #call, __FILE__, __LINE__); \
    } while (0)

namespace msa::kern {
// sm_90a code in this binary and a compute capability 9.0 device (wgmma,
// mbarriers, bulk copies); defined in index_topk.cu.
bool wgmma_available();

// Multiprocessors of the current device: launchers size split-K and decode grids by it.
inline int sm_count() {
    int dev = 0, sms = 0;
    MSA_CUDA_CHECK(cudaGetDevice(&dev));
    MSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
}

// Raises a kernel's dynamic shared-memory limit the first time a launch needs
// more than the 48 KiB default, then never again: cudaFuncSetAttribute is a
// host call of a few microseconds, which decode steps (three small launches)
// would otherwise pay on every token. One counter per kernel (the template
// argument), atomic because the app launches from worker threads. Device 0
// only, like the rest of the engine.
template <auto Kernel>
void ensure_dynamic_smem(size_t bytes) {
    static std::atomic<size_t> granted{48 * 1024};
    if (bytes <= granted.load(std::memory_order_relaxed)) return;
    MSA_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    granted.store(bytes, std::memory_order_relaxed);
}

// Programmatic dependent launch for the decode step's chain of small kernels
// (scores -> top-k -> split attention -> combine): a kernel launched this way
// may start while the one before it finishes, and waits in
// wait_on_prior_grid() (mma_utils.cuh) until that one's memory is visible, so
// its launch latency and prologue overlap the predecessor's tail. Captured
// into CUDA graphs as programmatic edges. Kernels launched this way must call
// wait_on_prior_grid() before reading anything a predecessor wrote.
// Off unless MSA_PDL=1: measured on the H200 (session 4, graph step at 1M,
// every kernel releasing its dependents at its start) 0.1176 ms with PDL vs
// 0.1096 ms without, 0.0494 vs 0.0473 at 128K: the early-resident dependents
// cost more than the launch latency they hide.
inline bool pdl_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("MSA_PDL");
        return e && std::strcmp(e, "1") == 0;
    }();
    return on;
}
// launch_dependent with the grid in thread-block clusters of cluster_x CTAs
// along x (cluster_x = 0: no clusters).
template <class... Params, class... Args>
void launch_dependent_clusters(unsigned cluster_x, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                               cudaStream_t stream, Args&&... args) {
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    if (cluster_x > 0) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = cluster_x;
        attr[n].val.clusterDim.y = attr[n].val.clusterDim.z = 1;
        ++n;
    }
    if (pdl_enabled()) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n].val.programmaticStreamSerializationAllowed = 1;
        ++n;
    }
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = n;
    MSA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}
template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
    launch_dependent_clusters(0, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}
}  // namespace msa::kern
