// rope_cache_write on CUDA: block (token, head) over the stacked row's q, k and v heads;
// its threads take the head's rotated pairs (then the unrotated tail), reading the
// projection once and writing q to q_out and k/v straight into their cache slot. The
// rotation is ops/rope_cuda.cu's, expression for expression (f32 angle, sincosf), so the
// fused and unfused paths agree bit for bit.
#include "backend/cuda/kernel_util.cuh"
#include "ops/rope_cache_write/rope_cache_write.h"

namespace tide {
namespace {

constexpr int kThreads = 64;

__global__ void __launch_bounds__(kThreads)
    RopeCacheWriteKernel(RopeCacheWriteParams p) {
  const int64_t t = blockIdx.x;
  const int head = static_cast<int>(blockIdx.y);
  const int hd = p.head_dim, half = p.rotary_dim / 2;
  const float* src = p.qkv + t * p.qkv_stride + static_cast<int64_t>(head) * hd;
  float* dst;
  bool rotate = true;
  if (head < p.n_heads) {
    dst = p.q_out + (t * p.n_heads + head) * hd;
  } else {
    const int64_t slot = p.slots[t];
    if (slot < 0) return;
    const int kv_head = (head - p.n_heads) % p.n_kv_heads;
    const bool is_k = head < p.n_heads + p.n_kv_heads;
    dst = (is_k ? p.k_cache : p.v_cache) + (slot * p.n_kv_heads + kv_head) * hd;
    rotate = is_k;
  }
  if (!rotate) {
    for (int d = threadIdx.x; d < hd; d += kThreads) dst[d] = src[d];
    return;
  }
  const bool neox = p.style == RopeStyle::kNeox;
  const int32_t pos = p.positions[t];
  for (int pair = threadIdx.x; pair < half; pair += kThreads) {
    const float angle = static_cast<float>(pos) * p.inv_freq[pair];
    float s, c;
    sincosf(angle, &s, &c);
    const int a = neox ? pair : 2 * pair;
    const int b = neox ? pair + half : 2 * pair + 1;
    const float xa = src[a], xb = src[b];
    dst[a] = xa * c - xb * s;
    dst[b] = xb * c + xa * s;
  }
  for (int d = p.rotary_dim + threadIdx.x; d < hd; d += kThreads) dst[d] = src[d];
}

}  // namespace

void RopeCacheWriteCuda(const RopeCacheWriteParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  const dim3 grid(static_cast<unsigned>(p.n_tokens), static_cast<unsigned>(p.n_heads + 2 * p.n_kv_heads));
  RopeCacheWriteKernel<<<grid, kThreads, 0, cuda::AsStream(stream)>>>(p);
  TIDE_CUDA_LAUNCHED("rope_cache_write");
}

}  // namespace tide
