// add on CUDA: one thread per element (memory-bound; the residual adds of MoE combines).
#include "backend/cuda/kernel_util.cuh"
#include "ops/add/add.h"

namespace tide {
namespace {

__global__ void AddKernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, float alpha) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = fmaf(alpha, x[i], y[i]);
}

}  // namespace

void AddCuda(const AddParams& p, void* stream) {
  if (p.n == 0) return;
  constexpr int kThreads = 256;
  AddKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.n, kThreads)), kThreads, 0, cuda::AsStream(stream)>>>(p.x, p.y, p.n,
                                                                                                        p.alpha);
  TIDE_CUDA_LAUNCHED("add");
}

}  // namespace tide
