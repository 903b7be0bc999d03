#pragma once
// Host-side CUDA error checks for the kernels library: a failing runtime call
// becomes a std::runtime_error naming the call, the file and the line.
#include <cuda_runtime.h>

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
}  // namespace msa::kern
