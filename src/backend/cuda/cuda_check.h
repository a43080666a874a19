// Error handling for CUDA code (.cu files and backend/cuda/*.cc only: it includes the
// CUDA runtime header, which model/, kv/ and engine/ never see).
//
//   TIDE_CUDA_RETURN_IF_ERROR(call)  at boundaries: a failed call becomes a Status
//   TIDE_CUDA_CHECK(call)            programmer invariants only (e.g. a handle we made)
//   TIDE_CUDA_LAUNCHED("kernel")     after a launch: remembers a failure for the next
//                                    boundary (the op dispatchers return void)
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/cuda_api.h"
#include "base/check.h"
#include "base/status.h"

namespace tide::cuda {

inline Status ToStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return OkStatus();
  const std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  if (e == cudaErrorMemoryAllocation) return ResourceExhausted(msg);
  return Internal(msg);
}

inline cudaStream_t AsStream(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace tide::cuda

#define TIDE_CUDA_RETURN_IF_ERROR(call) \
  RETURN_IF_ERROR(::tide::cuda::ToStatus((call), #call))

#define TIDE_CUDA_CHECK(call)                                                              \
  do {                                                                                     \
    const cudaError_t _tide_e = (call);                                                    \
    if (_tide_e != cudaSuccess)                                                            \
      ::tide::internal::CheckFailed(__FILE__, __LINE__,                                    \
                                    std::string(#call) + ": " + cudaGetErrorName(_tide_e)); \
  } while (0)

#define TIDE_CUDA_LAUNCHED(what)                                                  \
  do {                                                                            \
    const cudaError_t _tide_e = cudaGetLastError();                               \
    if (_tide_e != cudaSuccess) ::tide::cuda::NoteLaunchError(_tide_e, (what));   \
  } while (0)
