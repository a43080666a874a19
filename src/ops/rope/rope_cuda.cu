// rope on CUDA: one thread per (token, head, rotated pair), q heads then k heads.
// The angle is the f32 product float(pos) * inv_freq (the op's definition); sincosf
// (not __sincosf) reduces large angles exactly, so long contexts keep ~1 ulp.
#include "backend/cuda/kernel_util.cuh"
#include "ops/rope/rope.h"

namespace tide {
namespace {

__global__ void RopeKernel(float* __restrict__ q, float* __restrict__ k, const int32_t* __restrict__ positions,
                           const float* __restrict__ inv_freq, int64_t n_tokens, int n_heads, int n_kv_heads,
                           int head_dim, int half, bool neox) {
  const int heads = n_heads + (k != nullptr ? n_kv_heads : 0);
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * heads * half) return;
  const int pair = static_cast<int>(i % half);
  const int64_t th = i / half;
  const int head = static_cast<int>(th % heads);
  const int64_t t = th / heads;
  float* v = head < n_heads ? q + (t * n_heads + head) * head_dim : k + (t * n_kv_heads + (head - n_heads)) * head_dim;
  const float angle = static_cast<float>(positions[t]) * inv_freq[pair];
  float s, c;
  sincosf(angle, &s, &c);
  const int a = neox ? pair : 2 * pair;
  const int b = neox ? pair + half : 2 * pair + 1;
  const float xa = v[a], xb = v[b];
  v[a] = xa * c - xb * s;
  v[b] = xb * c + xa * s;
}

}  // namespace

void RopeCuda(const RopeParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  const int half = p.rotary_dim / 2;
  const int heads = p.n_heads + (p.k != nullptr ? p.n_kv_heads : 0);
  const int64_t total = p.n_tokens * heads * half;
  constexpr int kThreads = 256;
  RopeKernel<<<static_cast<unsigned>(cuda::CeilDiv(total, kThreads)), kThreads, 0, cuda::AsStream(stream)>>>(
      p.q, p.k, p.positions, p.inv_freq, p.n_tokens, p.n_heads, p.n_kv_heads, p.head_dim, half,
      p.style == RopeStyle::kNeox);
  TIDE_CUDA_LAUNCHED("rope");
}

}  // namespace tide
