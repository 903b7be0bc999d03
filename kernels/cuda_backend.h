#pragma once
// The CUDA implementation of msa::ComputeBackend (core/backend.h): the forward
// of cuda_forward.h, the attention ops of cuda_attention.h, and every kernel
// launch of a run recorded by the CUPTI collector (cupti_collector.h) with its
// analytic cost. Plain C++ header, no CUDA types.
#include "core/backend.h"

namespace msa::cuda {

// The process's CUDA backend, created on first use and never destroyed (its
// device memory and cuBLAS handle must not be freed from a static destructor
// after the CUDA runtime has shut down). Throws msa::InputError
// ("no CUDA device: <reason>") when there is no usable GPU.
const ComputeBackend& cuda_backend();

}  // namespace msa::cuda
