// sample (greedy) on CUDA: one block per row. Pass 1: each thread walks its strided
// share of the row keeping the running maximum (its lowest id) and an online f64 sum
// of e^(x - max), rescaled when the maximum grows; the block then merges the threads'
// states. Each top_k selection is one more pass: the best entry ordered after the
// previous pick (a 513 KB row of 128k logits stays in L2 between passes).
#include <cfloat>
#include <cstdint>

#include "backend/cuda/kernel_util.cuh"
#include "ops/sample/sample.h"

namespace tide {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

struct Best {
  float v;
  int32_t id;  // INT32_MAX: none
};

__device__ __forceinline__ bool Before(Best a, Best b) {
  if (b.id == INT32_MAX) return a.id != INT32_MAX;
  if (a.id == INT32_MAX) return false;
  return a.v != b.v ? a.v > b.v : a.id < b.id;
}

__device__ __forceinline__ Best WarpBest(Best b) {
  for (int o = 16; o > 0; o >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.id, o)};
    if (Before(other, b)) b = other;
  }
  return b;
}

// The block's best; every thread gets it.
__device__ Best BlockBest(Best b, Best* s_best) {
  b = WarpBest(b);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // s_best free from the previous use
  if (lane == 0) s_best[warp] = b;
  __syncthreads();
  b = lane < kWarps ? s_best[lane] : Best{-INFINITY, INT32_MAX};
  return WarpBest(b);
}

// Merges two (max, sum of e^(x - max)) states.
__device__ __forceinline__ void MergeSum(float& m, double& s, float m2, double s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    s = s2;
    return;
  }
  const float mn = fmaxf(m, m2);
  s = s * exp(static_cast<double>(m) - mn) + s2 * exp(static_cast<double>(m2) - mn);
  m = mn;
}

__global__ void __launch_bounds__(kThreads) SampleGreedyKernel(SampleGreedyParams p) {
  __shared__ Best s_best[kWarps];
  __shared__ float s_m[kWarps];
  __shared__ double s_s[kWarps];
  const int64_t r = blockIdx.x;
  const float* x = p.logits + r * p.vocab;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  Best best{-INFINITY, INT32_MAX};
  float m = -INFINITY;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) {
    const float v = x[i];
    if (best.id == INT32_MAX || v > best.v) best = Best{v, static_cast<int32_t>(i)};  // ids rise: first max is lowest
    if (v == -INFINITY) continue;
    if (v > m) {
      s = (m == -INFINITY ? 0.0 : s * exp(static_cast<double>(m) - v)) + 1.0;
      m = v;
    } else {
      s += exp(static_cast<double>(v) - m);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const double s2 = __shfl_xor_sync(0xffffffffu, s, o);
    MergeSum(m, s, m2, s2);
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_s[warp] = s;
  }
  best = BlockBest(best, s_best);  // its barriers also publish s_m / s_s
  m = -INFINITY;
  s = 0.0;
  if (lane < kWarps) {
    m = s_m[lane];
    s = s_s[lane];
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const double s2 = __shfl_xor_sync(0xffffffffu, s, o);
    MergeSum(m, s, m2, s2);
  }
  const double lse = static_cast<double>(m) + log(s);
  if (threadIdx.x == 0) {
    p.token[r] = best.id;
    p.logprob[r] = static_cast<float>(static_cast<double>(best.v) - lse);
  }
  Best prev = best;
  for (int j = 0; j < p.top_k; ++j) {
    Best pick = j == 0 ? best : Best{-INFINITY, INT32_MAX};
    if (j > 0) {
      for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) {
        const Best c{x[i], static_cast<int32_t>(i)};
        if (prev.id != INT32_MAX && !Before(prev, c)) continue;  // taken already
        if (Before(c, pick)) pick = c;
      }
      pick = BlockBest(pick, s_best);
    }
    if (threadIdx.x == 0) {
      const bool none = pick.id == INT32_MAX;
      p.top_ids[r * p.top_k + j] = none ? -1 : pick.id;
      p.top_logprobs[r * p.top_k + j] = none ? -INFINITY : static_cast<float>(static_cast<double>(pick.v) - lse);
    }
    if (pick.id != INT32_MAX) prev = pick;
  }
}

}  // namespace

void SampleGreedyCuda(const SampleGreedyParams& p, void* stream) {
  if (p.rows == 0) return;
  SampleGreedyKernel<<<static_cast<unsigned>(p.rows), kThreads, 0, cuda::AsStream(stream)>>>(p);
  TIDE_CUDA_LAUNCHED("sample_greedy");
}

}  // namespace tide
