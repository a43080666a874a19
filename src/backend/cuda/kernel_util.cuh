// Small device helpers shared by the ops' .cu files: weight-element loads for every
// dtype the CUDA kernels read, warp reductions, and the launch check.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/cuda_check.h"

namespace tide::cuda {

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Multiprocessors of the current device (read once; the engine uses one device).
inline int NumSms() {
  static const int n = [] {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return 100;
    }
    return sms;
  }();
  return n;
}

// One element of a weight row as f32. W is float, __half or __nv_bfloat16.
template <typename W>
__device__ __forceinline__ float ToF32(W v);
template <>
__device__ __forceinline__ float ToF32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float ToF32<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float ToF32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace tide::cuda
