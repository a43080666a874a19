// sample (greedy) on CUDA, two kernels. Splits: each row is cut into up to 64 chunks of
// ~2k logits, one block each (a single block per row used one SM and took 105 µs for a
// 128k row on an H200); each thread walks its strided share keeping the running maximum
// (its lowest id) and an online f64 sum of e^(x - max), rescaled when the maximum grows;
// the block merges its threads' states and keeps its best max(top_k, 1) entries (each a
// pass over the chunk for the best entry ordered after the previous pick). Merge: one
// block per row merges the chunks' sums in chunk order and selects the row's best
// entries from the chunks' candidates (the row's top k are among them).
#include <algorithm>
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

// Per (row, split) partial state: the split's (max, sum of e^(x - max)) and its best
// max(top_k, 1) entries in order.
struct Partial {
  float m;
  double s;
};

__global__ void __launch_bounds__(kThreads)
    SampleSplitKernel(SampleGreedyParams p, int64_t chunk, int keep, Partial* parts, Best* cands) {
  __shared__ Best s_best[kWarps];
  __shared__ float s_m[kWarps];
  __shared__ double s_s[kWarps];
  const int64_t r = blockIdx.y;
  const int split = blockIdx.x, n_splits = gridDim.x;
  const float* x = p.logits + r * p.vocab;
  const int64_t lo = split * chunk, hi = min(p.vocab, lo + chunk);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  Best best{-INFINITY, INT32_MAX};
  float m = -INFINITY;
  double s = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
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
  if (threadIdx.x == 0) {
    float bm = -INFINITY;
    double bs = 0.0;
    for (int w = 0; w < kWarps; ++w) MergeSum(bm, bs, s_m[w], s_s[w]);  // warp order: deterministic
    parts[r * n_splits + split] = Partial{bm, bs};
  }
  Best* out = cands + (r * n_splits + split) * keep;
  if (threadIdx.x == 0) out[0] = best;
  Best prev = best;
  for (int j = 1; j < keep; ++j) {
    Best pick{-INFINITY, INT32_MAX};
    if (prev.id != INT32_MAX) {
      for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
        const Best c{x[i], static_cast<int32_t>(i)};
        if (!Before(prev, c)) continue;  // taken already
        if (Before(c, pick)) pick = c;
      }
    }
    pick = BlockBest(pick, s_best);
    if (threadIdx.x == 0) out[j] = pick;
    prev = pick;
  }
}

// One block per row: the splits' sums merged in split order, then the row's best
// entries selected from the splits' candidates.
__global__ void __launch_bounds__(kThreads)
    SampleMergeKernel(SampleGreedyParams p, int n_splits, int keep, const Partial* parts, const Best* cands) {
  __shared__ Best s_best[kWarps];
  __shared__ double s_lse;
  const int64_t r = blockIdx.x;
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    double s = 0.0;
    for (int i = 0; i < n_splits; ++i) MergeSum(m, s, parts[r * n_splits + i].m, parts[r * n_splits + i].s);
    s_lse = static_cast<double>(m) + log(s);
  }
  const Best* c = cands + r * n_splits * keep;
  const int n = n_splits * keep;
  Best prev{-INFINITY, INT32_MAX};
  for (int j = 0; j < keep; ++j) {
    Best pick{-INFINITY, INT32_MAX};
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const Best b = c[i];
      if (b.id == INT32_MAX || (j > 0 && !Before(prev, b))) continue;
      if (Before(b, pick)) pick = b;
    }
    pick = BlockBest(pick, s_best);  // its barriers also publish s_lse
    const double lse = s_lse;
    if (threadIdx.x == 0) {
      const bool none = pick.id == INT32_MAX;
      const float lp = none ? -INFINITY : static_cast<float>(static_cast<double>(pick.v) - lse);
      if (j == 0) {
        p.token[r] = pick.id;
        p.logprob[r] = lp;
      }
      if (j < p.top_k) {
        p.top_ids[r * p.top_k + j] = none ? -1 : pick.id;
        p.top_logprobs[r * p.top_k + j] = lp;
      }
    }
    if (pick.id == INT32_MAX) {
      for (int jj = j + 1; jj < p.top_k; ++jj) {
        if (threadIdx.x == 0) {
          p.top_ids[r * p.top_k + jj] = -1;
          p.top_logprobs[r * p.top_k + jj] = -INFINITY;
        }
      }
      break;
    }
    prev = pick;
  }
}

// Grow-only device memory for the partial states (outside any captured graph: the
// runner samples after the forward's replay).
void* Workspace(int64_t bytes) {
  static void* buf = nullptr;
  static int64_t cap = 0;
  if (bytes > cap) {
    if (buf != nullptr) cudaFree(buf);  // waits for the device: earlier launches are done with it
    cap = bytes > 2 * cap ? bytes : 2 * cap;
    if (cudaMalloc(&buf, static_cast<size_t>(cap)) != cudaSuccess) {
      cuda::NoteLaunchError(static_cast<int>(cudaErrorMemoryAllocation), "sample_greedy (workspace)");
      buf = nullptr;
      cap = 0;
    }
  }
  return buf;
}

}  // namespace

void SampleGreedyCuda(const SampleGreedyParams& p, void* stream) {
  if (p.rows == 0) return;
  // About 2k logits per block: a 128k vocabulary spreads over 63 blocks per row.
  constexpr int64_t kChunkMin = 2048;
  const int n_splits = static_cast<int>(std::min<int64_t>(64, cuda::CeilDiv(p.vocab, kChunkMin)));
  const int64_t chunk = cuda::CeilDiv(p.vocab, n_splits);
  const int keep = p.top_k > 1 ? p.top_k : 1;
  const int64_t n_parts = p.rows * n_splits;
  const int64_t part_bytes = (n_parts * static_cast<int64_t>(sizeof(Partial)) + 255) / 256 * 256;
  auto* ws = static_cast<uint8_t*>(Workspace(part_bytes + n_parts * keep * static_cast<int64_t>(sizeof(Best))));
  if (ws == nullptr) return;
  auto* parts = reinterpret_cast<Partial*>(ws);
  auto* cands = reinterpret_cast<Best*>(ws + part_bytes);
  cudaStream_t s = cuda::AsStream(stream);
  SampleSplitKernel<<<dim3(static_cast<unsigned>(n_splits), static_cast<unsigned>(p.rows)), kThreads, 0, s>>>(
      p, chunk, keep, parts, cands);
  TIDE_CUDA_LAUNCHED("sample_greedy (splits)");
  SampleMergeKernel<<<static_cast<unsigned>(p.rows), kThreads, 0, s>>>(p, n_splits, keep, parts, cands);
  TIDE_CUDA_LAUNCHED("sample_greedy (merge)");
}

}  // namespace tide
