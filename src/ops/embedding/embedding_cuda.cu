// embedding on CUDA: one thread per output float, converting the table's dtype
// (f32/f16/bf16; the model stores quantised tables as f32 on the GPU).
#include "backend/cuda/kernel_util.cuh"
#include "ops/embedding/embedding.h"

namespace tide {
namespace {

template <typename W>
__global__ void EmbeddingKernel(const int32_t* __restrict__ tokens, const W* __restrict__ table, float* __restrict__ out,
                                int64_t n_tokens, int64_t dim) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * dim) return;
  const int64_t t = i / dim, j = i - t * dim;
  out[i] = cuda::ToF32(table[static_cast<int64_t>(tokens[t]) * dim + j]);
}

}  // namespace

void EmbeddingCuda(const EmbeddingParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  const int64_t dim = p.table.shape[1];
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>(cuda::CeilDiv(p.n_tokens * dim, kThreads));
  cudaStream_t s = cuda::AsStream(stream);
  switch (p.table.dtype) {
    case DType::kF32:
      EmbeddingKernel<<<blocks, kThreads, 0, s>>>(p.tokens, p.table.as<const float>(), p.out, p.n_tokens, dim);
      break;
    case DType::kF16:
      EmbeddingKernel<<<blocks, kThreads, 0, s>>>(p.tokens, p.table.as<const __half>(), p.out, p.n_tokens, dim);
      break;
    case DType::kBF16:
      EmbeddingKernel<<<blocks, kThreads, 0, s>>>(p.tokens, p.table.as<const __nv_bfloat16>(), p.out, p.n_tokens, dim);
      break;
    default:
      TIDE_CHECK(false && "embedding (CUDA): quantised tables are widened at load");
  }
  TIDE_CUDA_LAUNCHED("embedding");
}

}  // namespace tide
