// cache_write on CUDA: one thread per float of the step's K and V rows; slot -1 skips.
#include "backend/cuda/kernel_util.cuh"
#include "ops/cache_write/cache_write.h"

namespace tide {
namespace {

__global__ void CacheWriteKernel(const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ k_cache,
                                 float* __restrict__ v_cache, const int64_t* __restrict__ slots, int64_t n_tokens,
                                 int64_t row) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * row) return;
  const int64_t t = i / row, j = i - t * row;
  const int64_t slot = slots[t];
  if (slot < 0) return;
  k_cache[slot * row + j] = k[i];
  v_cache[slot * row + j] = v[i];
}

}  // namespace

void CacheWriteCuda(const CacheWriteParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  const int64_t row = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
  constexpr int kThreads = 256;
  CacheWriteKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.n_tokens * row, kThreads)), kThreads, 0,
                     cuda::AsStream(stream)>>>(p.k, p.v, p.k_cache, p.v_cache, p.slots, p.n_tokens, row);
  TIDE_CUDA_LAUNCHED("cache_write");
}

}  // namespace tide
