// rms_norm on CUDA: one block per row. Pass 1 adds the residual (when fused) and sums
// squares in f32 per thread, then across the block; pass 2 scales. Each thread touches
// the same columns in both passes, so x may alias y.
#include "backend/cuda/kernel_util.cuh"
#include "ops/rms_norm/rms_norm.h"

namespace tide {
namespace {

constexpr int kThreads = 256;

__global__ void RmsNormKernel(const float* x, float* __restrict__ residual, const float* __restrict__ weight, float* y,
                              int64_t n, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * n;
  float* yr = y + row * n;
  float* rr = residual != nullptr ? residual + row * n : nullptr;
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) {
    float v = xr[j];
    if (rr != nullptr) {
      v = rr[j] + v;  // the residual stream is f32: one rounded add, as on the CPU
      rr[j] = v;
    }
    sum = fmaf(v, v, sum);
  }
  __shared__ float partial[kThreads / 32];
  sum = cuda::WarpSum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.f;
    s = cuda::WarpSum(s);
    if (threadIdx.x == 0) partial[0] = s;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / static_cast<float>(n) + eps);
  const float* src = rr != nullptr ? rr : xr;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) yr[j] = weight[j] * (src[j] * inv);
}

}  // namespace

void RmsNormCuda(const RmsNormParams& p, void* stream) {
  if (p.m == 0) return;
  RmsNormKernel<<<static_cast<unsigned>(p.m), kThreads, 0, cuda::AsStream(stream)>>>(p.x, p.residual, p.weight, p.y, p.n,
                                                                                    p.eps);
  TIDE_CUDA_LAUNCHED("rms_norm");
}

}  // namespace tide
