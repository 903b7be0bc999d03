#pragma once
// Host-side CUDA error checks for the kernels library: a failing runtime call
// becomes a std::runtime_error naming the call, the file and the line.
#include <cuda_runtime.h>

#include <atomic>
#include <stdexcept>
#include <string>

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
}  // namespace msa::kern
