// silu_mul on CUDA: one thread per output element; expf (not __expf) keeps ~2 ulp.
#include "backend/cuda/kernel_util.cuh"
#include "ops/silu_mul/silu_mul.h"

namespace tide {
namespace {

__global__ void SiluMulKernel(const float* __restrict__ gate_up, float* __restrict__ out, int64_t m, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= m * n) return;
  const int64_t r = i / n, j = i - r * n;
  const float g = gate_up[r * 2 * n + j], u = gate_up[r * 2 * n + n + j];
  out[i] = g / (1.f + expf(-g)) * u;
}

}  // namespace

void SiluMulCuda(const SiluMulParams& p, void* stream) {
  if (p.m == 0 || p.n == 0) return;
  constexpr int kThreads = 256;
  SiluMulKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.m * p.n, kThreads)), kThreads, 0, cuda::AsStream(stream)>>>(
      p.gate_up, p.out, p.m, p.n);
  TIDE_CUDA_LAUNCHED("silu_mul");
}

}  // namespace tide
