// sample (greedy) on CUDA, two kernels. Splits: each row is cut into up to 64 chunks of
// ~2k logits, one block each (a single block per row used one SM and took 105 µs for a
// 128k row on an H200); each thread walks its strided share keeping the running maximum
// (its lowest id) and an online f64 sum of e^(x - max), rescaled when the maximum grows;
// one warp merges the block's warp states in a fixed tree, and the block keeps its best
// max(top_k, 1) entries (each a pass over the chunk for the best entry ordered after the
// previous pick). Merge: one block per row merges the chunks' sums (one warp, fixed
// order) and selects the row's best entries from the chunks' candidates (the row's top k
// are among them). The f64 merges were one thread's serial loops (a chain of dependent
// f64 exps per block) before.
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
  if (warp == 0) {  // the warps' states merged by one warp (a fixed tree: deterministic)
    float bm = lane < kWarps ? s_m[lane] : -INFINITY;
    double bs = lane < kWarps ? s_s[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, bm, o);
      const double s2 = __shfl_xor_sync(0xffffffffu, bs, o);
      MergeSum(bm, bs, m2, s2);
    }
    if (lane == 0) parts[r * n_splits + split] = Partial{bm, bs};
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
    SampleMergeKernel(SampleGreedyParams p, int n_splits, int keep, const Partial* parts, const Best* cands,
                      double* lse_out) {
  __shared__ Best s_best[kWarps];
  __shared__ double s_lse;
  const int64_t r = blockIdx.x;
  if (threadIdx.x < 32) {  // lane l merges splits l, l + 32, ...; then a fixed tree
    float m = -INFINITY;
    double s = 0.0;
    for (int i = threadIdx.x; i < n_splits; i += 32) MergeSum(m, s, parts[r * n_splits + i].m, parts[r * n_splits + i].s);
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
      const double s2 = __shfl_xor_sync(0xffffffffu, s, o);
      MergeSum(m, s, m2, s2);
    }
    if (threadIdx.x == 0) {
      s_lse = static_cast<double>(m) + log(s);
      if (lse_out != nullptr) lse_out[r] = s_lse;
    }
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

// About 2k logits per block: a 128k vocabulary spreads over 63 blocks per row.
int GreedySplits(int64_t vocab) {
  constexpr int64_t kChunkMin = 2048;
  return static_cast<int>(std::min<int64_t>(64, cuda::CeilDiv(vocab, kChunkMin)));
}

int64_t GreedyWorkspaceBytes(int64_t rows, int64_t vocab, int keep) {
  const int64_t n_parts = rows * GreedySplits(vocab);
  const int64_t part_bytes = (n_parts * static_cast<int64_t>(sizeof(Partial)) + 255) / 256 * 256;
  return part_bytes + (n_parts * keep * static_cast<int64_t>(sizeof(Best)) + 255) / 256 * 256;
}

// The greedy kernels on workspace `ws` (GreedyWorkspaceBytes); lse_out (optional, [rows])
// receives each row's log-sum-exp.
void LaunchGreedy(const SampleGreedyParams& p, uint8_t* ws, double* lse_out, cudaStream_t s) {
  const int n_splits = GreedySplits(p.vocab);
  const int64_t chunk = cuda::CeilDiv(p.vocab, n_splits);
  const int keep = p.top_k > 1 ? p.top_k : 1;
  const int64_t n_parts = p.rows * n_splits;
  const int64_t part_bytes = (n_parts * static_cast<int64_t>(sizeof(Partial)) + 255) / 256 * 256;
  auto* parts = reinterpret_cast<Partial*>(ws);
  auto* cands = reinterpret_cast<Best*>(ws + part_bytes);
  SampleSplitKernel<<<dim3(static_cast<unsigned>(n_splits), static_cast<unsigned>(p.rows)), kThreads, 0, s>>>(
      p, chunk, keep, parts, cands);
  TIDE_CUDA_LAUNCHED("sample_greedy (splits)");
  SampleMergeKernel<<<static_cast<unsigned>(p.rows), kThreads, 0, s>>>(p, n_splits, keep, parts, cands, lse_out);
  TIDE_CUDA_LAUNCHED("sample_greedy (merge)");
}

// Grow-only device memory (outside any captured graph: the runner samples after the
// forward's replay). One per op, so that SampleGreedy and Sample never share one.
struct GrowBuffer {
  void* buf = nullptr;
  int64_t cap = 0;
  void* Get(int64_t bytes, const char* what) {
    if (bytes > cap) {
      if (buf != nullptr) cudaFree(buf);  // waits for the device: earlier launches are done with it
      cap = bytes > 2 * cap ? bytes : 2 * cap;
      if (cudaMalloc(&buf, static_cast<size_t>(cap)) != cudaSuccess) {
        cuda::NoteLaunchError(static_cast<int>(cudaErrorMemoryAllocation), what);
        buf = nullptr;
        cap = 0;
      }
    }
    return buf;
  }
};

// ---- sample: one block per row (kDrawThreads) after the greedy kernels ran on raw_logits
// (they give the logprob side: log-sum-exp and the top raw entries).
//
// Every logit gets a unique 64-bit key, (order-preserving bits of the logit) << 32 |
// ~id, so "descending key" is the host's candidate order (larger logit, then lower id).
// A radix select (8-bit digits, histograms in shared memory) finds the key of any rank
// in a few passes over the row without sorting it; candidates are then taken in chunks
// of kChunk ranks (select the chunk's last rank, gather keys in [that, previous chunk's
// last), bitonic-sort them in shared memory) and walked in order by one warp with an f64
// scan. The first walk finds the kept count (top-p, min-p) and mass, recording each
// chunk's key bounds and starting cumulative sum; the draw then loads only the chunk
// where u falls. Top-k 50 or a peaked top-p row needs one chunk; a flat row whose top-p
// prefix holds 15k tokens needs four. Temperature-only rows walk id order: one pass sums
// e^x per tile of 32 x E logits, a block scan over the tile sums finds u's tile, and one
// warp rescans that tile.
//
// Row passes keep kUnroll loads in flight per thread: one block per row is bound by
// memory latency otherwise (one SM, one load per thread at a time).

constexpr int kDrawThreads = 512;
constexpr int kDrawWarps = kDrawThreads / 32;
constexpr int kChunk = 4096;       // ranks per sorted chunk: 32 KB of keys in shared memory
constexpr int kMaxChunks = 64;     // recorded chunk bounds (a 262144 vocabulary); later ones re-select
constexpr int kMaxTiles = 2048;    // id-order tiles of the temperature-only walk
constexpr int kUnroll = 8;

__device__ __forceinline__ uint64_t DevMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// base/rng.h UniformAt, bit for bit (integer ops, one exact conversion and scaling).
__device__ __forceinline__ double DevUniformAt(uint64_t key, uint64_t counter) {
  const uint64_t r = DevMix64(DevMix64(key) ^ (counter * 0xD1B54A32D192ED03ull));
  return __dmul_rn(static_cast<double>(r >> 11), 1.0 / 9007199254740992.0);
}

// Monotone map of a float to uint32 (larger float -> larger value); -0 and +0 equal, as
// the host's float comparison has them.
__device__ __forceinline__ uint32_t OrderBits(float x) {
  const uint32_t u = x == 0.f ? 0u : __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ uint64_t RankKey(float x, int64_t id) {
  return (static_cast<uint64_t>(OrderBits(x)) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(id));
}

__device__ __forceinline__ int32_t KeyId(uint64_t k) { return static_cast<int32_t>(~static_cast<uint32_t>(k)); }

// e^(x / T - max / T) as the release host build computes it: GCC fuses x * (1/T) - max
// into one fused multiply-subtract (-O2, an FMA-capable -march), so this does too.
__device__ __forceinline__ double ScaledExp(float x, double inv_t, double mxs) {
  return exp(__fma_rn(static_cast<double>(x), inv_t, -mxs));
}

__device__ __forceinline__ double WarpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double WarpInclusiveScanD(double v) {
  const int lane = threadIdx.x % 32;
  for (int o = 1; o < 32; o <<= 1) {
    const double n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += n;
  }
  return v;
}

// Calls f(value, id, valid) for every logit of the row, kUnroll loads in flight per
// thread. Every thread makes the same number of calls (valid = false past the end), so f
// may use warp collectives.
template <typename F>
__device__ __forceinline__ void ForRow(const float* x, int64_t vocab, F&& f) {
  for (int64_t base = 0; base < vocab; base += int64_t{kDrawThreads} * kUnroll) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * kDrawThreads + threadIdx.x;
      v[u] = i < vocab ? x[i] : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * kDrawThreads + threadIdx.x;
      f(v[u], i, i < vocab);
    }
  }
}

struct DrawShared {
  union {
    uint64_t keys[kChunk];       // sorted path
    double tile_sum[kMaxTiles];  // id-order path
  };
  uint64_t chunk_lo[kMaxChunks];
  double chunk_cum[kMaxChunks];
  uint32_t hist[256];
  double red[kDrawWarps];
  float redf[kDrawWarps];
  int32_t redi[kDrawWarps];
  int sel_digit, sel_last, count, pick, done, tile;
  int64_t keep;
  double mass, tile_base;
};

// Block sum of a double (warp order then warp-index order); every thread gets it.
__device__ double BlockSumD(double v, DrawShared& sh) {
  v = WarpSumD(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.red[threadIdx.x / 32] = v;
  __syncthreads();
  double t = 0;
  for (int w = 0; w < kDrawWarps; ++w) t += sh.red[w];
  return t;
}

// Block argmax (ties to the lowest id); every thread gets (value, id).
__device__ void BlockArgmax(const float* x, int64_t vocab, DrawShared& sh, float* best_v, int32_t* best_id) {
  float bv = -INFINITY;
  int32_t bi = INT32_MAX;
  ForRow(x, vocab, [&](float v, int64_t i, bool valid) {  // a thread's ids rise: its first max is its lowest
    if (valid && (bi == INT32_MAX || v > bv)) bv = v, bi = static_cast<int32_t>(i);
  });
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (oi != INT32_MAX && (bi == INT32_MAX || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.redf[threadIdx.x / 32] = bv, sh.redi[threadIdx.x / 32] = bi;
  __syncthreads();
  bv = sh.redf[0], bi = sh.redi[0];
  for (int w = 1; w < kDrawWarps; ++w) {
    const float ov = sh.redf[w];
    const int32_t oi = sh.redi[w];
    if (oi != INT32_MAX && (bi == INT32_MAX || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
  }
  *best_v = bv;
  *best_id = bi;
}

// The smallest key T such that exactly rank + 1 keys of the row are >= T (keys are
// unique, so that is the key of the given rank, or a lower bound between it and the next
// one when a digit already isolates it).
__device__ uint64_t SelectRank(const float* x, int64_t vocab, uint64_t rank, DrawShared& sh) {
  uint64_t prefix = 0, mask = 0, need = rank;  // need: thread 0's rank within the prefix
  const int lane = threadIdx.x % 32;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kDrawThreads) sh.hist[i] = 0;
    __syncthreads();
    ForRow(x, vocab, [&](float v, int64_t i, bool valid) {
      const uint64_t k = RankKey(v, i);
      const bool ok = valid && (k & mask) == prefix;
      const uint32_t d = static_cast<uint32_t>(k >> shift) & 255u;
      // Lanes with the same digit add once (a row's logits crowd few exponents).
      const uint32_t peers = __match_any_sync(0xffffffffu, ok ? d : 0xffffffffu);
      if (ok && lane == __ffs(peers) - 1) atomicAdd(&sh.hist[d], static_cast<uint32_t>(__popc(peers)));
    });
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t above = 0;
      int d = 255;
      for (; d > 0; --d) {
        if (above + sh.hist[d] > need) break;
        above += sh.hist[d];
      }
      need -= above;
      sh.sel_digit = d;
      sh.sel_last = need + 1 == sh.hist[d];  // the rank is the digit's last: all of it is in
    }
    __syncthreads();
    prefix |= static_cast<uint64_t>(sh.sel_digit) << shift;
    mask |= uint64_t{255} << shift;
    if (sh.sel_last) break;  // uniform: read after the barrier, rewritten only after two more
  }
  return prefix;
}

// Loads the `count` keys in [lo, hi) into sh.keys, sorted descending.
__device__ void LoadChunk(const float* x, int64_t vocab, uint64_t lo, uint64_t hi, int count, DrawShared& sh) {
  if (threadIdx.x == 0) sh.count = 0;
  __syncthreads();
  ForRow(x, vocab, [&](float v, int64_t i, bool valid) {
    const uint64_t k = RankKey(v, i);
    if (valid && k >= lo && k < hi) {
      const int at = atomicAdd(&sh.count, 1);
      if (at < kChunk) sh.keys[at] = k;  // always: the bounds were chosen for count keys
    }
  });
  int n2 = 32;
  while (n2 < count) n2 <<= 1;
  __syncthreads();
  for (int i = count + threadIdx.x; i < n2; i += kDrawThreads) sh.keys[i] = 0;  // 0 is below every real key
  __syncthreads();
  for (int k = 2; k <= n2; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n2; i += kDrawThreads) {
        const int ixj = i ^ j;
        if (ixj > i) {
          const uint64_t a = sh.keys[i], b = sh.keys[ixj];
          if (((i & k) == 0) ? a < b : a > b) {
            sh.keys[i] = b;
            sh.keys[ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

struct DrawRowArgs {
  const float* x;
  int64_t vocab;
  double inv_t, mxs, total;  // total: sum of ScaledExp over the n candidates
  int64_t n;                 // candidates: top_k or vocab
  uint64_t last_key;         // SelectRank(n - 1) (0 when n == vocab: every key)
};

// Walks the candidates in order, warp 0 scanning. Phase 0 finds the kept count (top-p,
// min-p) and the kept mass, recording chunk bounds and starting sums; phase 1 starts at
// the chunk where u falls and finds the first rank whose cumulative probability exceeds
// u. The cumulative sums are the same numbers in both phases (same chunks, same steps).
__device__ int32_t WalkSorted(const DrawRowArgs& a, const SampleRowSpec& spec, DrawShared& sh) {
  const bool top_p = spec.top_p < 1.f, min_p = spec.min_p > 0.f;
  const int lane = threadIdx.x % 32;
  int loaded = -1;    // the chunk now in sh.keys
  int recorded = 0;   // chunks whose bounds (sh.chunk_lo) and starting sums are known
  int64_t keep = a.n;
  double mass = 0, u = 0, floor = 0;
  for (int phase = 0; phase < 2; ++phase) {
    double cum = 0;
    int ci = 0;
    if (phase == 1) {  // the last recorded chunk that starts at or below u (and before keep)
      while (ci + 1 < recorded && int64_t{ci + 1} * kChunk < keep && sh.chunk_cum[ci + 1] <= u) ++ci;
      cum = sh.chunk_cum[ci];
    }
    bool done = false;
    int32_t last_id = -1;  // id at rank keep - 1, phase 1's fallback
    const int64_t end = phase == 0 ? a.n : keep;
    uint64_t hi = ci == 0 ? ~uint64_t{0} : sh.chunk_lo[ci - 1];
    for (int64_t c0 = int64_t{ci} * kChunk; !done && c0 < end; c0 += kChunk, ++ci) {
      const int64_t c1 = min(c0 + kChunk, a.n);
      uint64_t lo;
      if (ci < recorded) {
        lo = sh.chunk_lo[ci];
      } else {
        lo = c1 == a.n && a.last_key != 0 ? a.last_key : SelectRank(a.x, a.vocab, static_cast<uint64_t>(c1 - 1), sh);
      }
      if (loaded != ci) {
        LoadChunk(a.x, a.vocab, lo, hi, static_cast<int>(c1 - c0), sh);
        loaded = ci;
      }
      if (ci == recorded && ci < kMaxChunks) {  // thread 0 (in warp 0) knows cum
        if (threadIdx.x == 0) {
          sh.chunk_lo[ci] = lo;
          sh.chunk_cum[ci] = cum;
        }
        ++recorded;
      }
      if (threadIdx.x < 32) {
        const int count = static_cast<int>(min(c1, end) - c0);
        for (int jb = 0; jb < count && !done; jb += 32) {
          const int j = jb + lane;
          const bool valid = j < count;
          const int32_t id = valid ? KeyId(sh.keys[j]) : 0;
          const double prob = valid ? __ddiv_rn(ScaledExp(a.x[id], a.inv_t, a.mxs), a.total) : 0.0;
          const double c = cum + WarpInclusiveScanD(prob);
          const int64_t rank = c0 + j;
          if (phase == 0) {
            if (rank == 0) floor = __dmul_rn(static_cast<double>(spec.min_p), prob);
            floor = __shfl_sync(0xffffffffu, floor, 0);  // rank 0 is lane 0 of the first step
            const uint32_t stop_p = __ballot_sync(0xffffffffu, valid && top_p && c >= static_cast<double>(spec.top_p));
            const uint32_t stop_m = __ballot_sync(0xffffffffu, valid && min_p && rank >= 1 && prob < floor);
            const int lp = stop_p ? __ffs(stop_p) - 1 : 32, lm = stop_m ? __ffs(stop_m) - 1 : 32;
            const double c_prev = __shfl_up_sync(0xffffffffu, c, 1);
            const double c_at_m = __shfl_sync(0xffffffffu, lane == 0 ? cum : c_prev, lm & 31);
            const double c_at_p = __shfl_sync(0xffffffffu, c, lp & 31);
            if (lm < 32 && lm <= lp) {  // min-p cuts first: rank lm is out
              keep = c0 + jb + lm;
              mass = c_at_m;
              done = true;
            } else if (lp < 32) {
              keep = c0 + jb + lp + 1;
              mass = c_at_p;
              done = true;
            }
          } else {
            const uint32_t hit = __ballot_sync(0xffffffffu, valid && u < c);
            const int32_t hit_id = __shfl_sync(0xffffffffu, id, hit ? __ffs(hit) - 1 : 0);
            if (hit) {
              if (lane == 0) sh.pick = hit_id;
              done = true;
            }
            last_id = __shfl_sync(0xffffffffu, id, (count - 1 - jb) & 31);  // used only for the last step
          }
          cum = __shfl_sync(0xffffffffu, c, 31);
        }
        if (phase == 0 && !done && c1 == a.n) mass = cum;
        if (phase == 1 && !done && c1 >= end && lane == 0) sh.pick = last_id;
      }
      // Warp 0's verdict to the block (done is uniform within warp 0).
      if (threadIdx.x == 0) sh.done = done;
      __syncthreads();
      done = sh.done;
      __syncthreads();
      hi = lo;  // the next chunk's keys lie below this one's
    }
    if (phase == 0) {  // warp 0's kept count and mass to the block
      if (threadIdx.x == 0) {
        sh.mass = mass;
        sh.keep = keep;
      }
      __syncthreads();
      mass = sh.mass;
      keep = sh.keep;
      u = __dmul_rn(DevUniformAt(spec.seed, spec.position), mass);
    }
  }
  __syncthreads();
  return sh.pick;
}

// Sum of e^x over one lane's e consecutive logits from i0 (e a multiple of 8: eight loads
// in flight), added in id order: the tile pass and the rescan get the same number.
__device__ __forceinline__ double LaneSum(const float* x, int64_t vocab, int64_t i0, int64_t e, double inv_t,
                                          double mxs) {
  double v = 0;
  for (int64_t jb = 0; jb < e; jb += 8) {
    float xv[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) xv[k] = i0 + jb + k < vocab ? x[i0 + jb + k] : -INFINITY;
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (i0 + jb + k < vocab) v += ScaledExp(xv[k], inv_t, mxs);
  }
  return v;
}

// Temperature only: the host walks id order. Tiles of 32 x e consecutive logits (lane l
// of a warp holds e consecutive ones), one tile per warp at a time; each tile's sum of
// e^x goes to shared memory (one f64 exp per logit in all). A block scan over the tile
// sums (4 consecutive per thread) finds the tile where target = U * total falls, and
// warp 0 rescans that tile. The host compares u = U * mass against cumulative
// probabilities; this compares U * total against cumulative e^x: the same up to rounding.
__device__ int32_t WalkIdOrder(const float* x, int64_t vocab, double inv_t, double mxs, double draw, DrawShared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  constexpr int64_t kSpan = int64_t{kMaxTiles} * 32 * 8;  // logits covered with e = 8
  const int64_t e = 8 * ((vocab + kSpan - 1) / kSpan);
  const int64_t tile_len = 32 * e;
  const int n_tiles = static_cast<int>((vocab + tile_len - 1) / tile_len);
  for (int t = warp; t < n_tiles; t += kDrawWarps) {
    const double v = WarpSumD(LaneSum(x, vocab, t * tile_len + lane * e, e, inv_t, mxs));
    if (lane == 0) sh.tile_sum[t] = v;
  }
  __syncthreads();
  // Block scan over the tiles, 4 per thread (n_tiles <= kMaxTiles = 4 * kDrawThreads).
  static_assert(kMaxTiles == 4 * kDrawThreads, "4 tile sums per thread");
  double q[4], v = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int t = 4 * threadIdx.x + j;
    q[j] = t < n_tiles ? sh.tile_sum[t] : 0.0;
    v += q[j];
  }
  const double incl = WarpInclusiveScanD(v);
  if (lane == 31) sh.red[warp] = incl;
  __syncthreads();
  double woff = 0, total = 0;
  for (int w = 0; w < kDrawWarps; ++w) {
    if (w < warp) woff += sh.red[w];
    total += sh.red[w];
  }
  const double target = __dmul_rn(draw, total);
  // Thread ranges [lo, hi) tile [0, total) exactly: lo is the previous thread's hi, the
  // same operations on the same values.
  double excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = 0;
  const double hi = woff + incl, lo = lane == 0 ? woff : woff + excl;
  if (threadIdx.x == 0) sh.tile = -1;
  __syncthreads();
  if (lo <= target && target < hi) {  // exactly one thread
    double cum = lo;
    int pick = -1;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (pick < 0 && q[j] > 0) {
        if (target < cum + q[j]) pick = j;
        else cum += q[j];
      }
    }
    if (pick < 0)  // rounding: the thread's last non-empty tile
      for (int j = 3; j >= 0; --j)
        if (q[j] > 0 && pick < 0) pick = j;
    sh.tile = 4 * static_cast<int>(threadIdx.x) + pick;
    sh.tile_base = cum;
  }
  __syncthreads();
  const int t = sh.tile;
  if (t < 0) return static_cast<int32_t>(vocab - 1);  // target == total (rounding): the host's fallback too
  if (threadIdx.x < 32) {
    const int64_t i0 = t * tile_len + lane * e;
    const double lv = LaneSum(x, vocab, i0, e, inv_t, mxs);
    const double li = WarpInclusiveScanD(lv);
    const double lb = sh.tile_base + (li - lv);
    const uint32_t cross = __ballot_sync(0xffffffffu, lv > 0 && target < sh.tile_base + li);
    const uint32_t nonzero = __ballot_sync(0xffffffffu, lv > 0);
    // The first lane whose range ends past target; rounding may leave none: the last
    // lane with mass then (the tile has mass: its sum was > 0).
    const int l = cross ? __ffs(cross) - 1 : 31 - __clz(nonzero);
    if (lane == l) {
      double cum = lb;
      int64_t pick = -1, last = -1;
      for (int64_t j = 0; j < e && i0 + j < vocab; ++j) {
        const double p = ScaledExp(x[i0 + j], inv_t, mxs);
        if (p > 0) last = i0 + j;
        cum += p;
        if (p > 0 && target < cum) {
          pick = i0 + j;
          break;
        }
      }
      sh.pick = static_cast<int>(pick >= 0 ? pick : last);
    }
  }
  __syncthreads();
  return sh.pick;
}

__global__ void __launch_bounds__(kDrawThreads, 1)
    SampleDrawKernel(SampleParams p, const double* lse, const int32_t* greedy_token) {
  __shared__ DrawShared sh;
  const int64_t r = blockIdx.x;
  const SampleRowSpec spec = p.spec[r];
  const float* x = p.logits + r * p.vocab;
  int32_t tok;
  float mx;
  if (p.logits == p.raw_logits) {  // the greedy kernels found the maximum already
    tok = greedy_token[r];
    mx = x[tok];
  } else {
    BlockArgmax(x, p.vocab, sh, &mx, &tok);
  }
  if (spec.temperature != 0.f) {
    const double inv_t = 1.0 / static_cast<double>(spec.temperature);
    const double mxs = __dmul_rn(static_cast<double>(mx), inv_t);
    const int64_t n = spec.top_k > 0 && spec.top_k < p.vocab ? spec.top_k : p.vocab;
    if (n == p.vocab && !(spec.top_p < 1.f) && !(spec.min_p > 0.f)) {
      tok = WalkIdOrder(x, p.vocab, inv_t, mxs, DevUniformAt(spec.seed, spec.position), sh);
    } else {
      DrawRowArgs a{x, p.vocab, inv_t, mxs, 0.0, n, 0};
      if (n < p.vocab) a.last_key = SelectRank(x, p.vocab, static_cast<uint64_t>(n - 1), sh);
      double part = 0;
      ForRow(x, p.vocab, [&](float v, int64_t i, bool valid) {
        if (valid && (a.last_key == 0 || RankKey(v, i) >= a.last_key)) part += ScaledExp(v, inv_t, mxs);
      });
      a.total = BlockSumD(part, sh);
      tok = WalkSorted(a, spec, sh);
    }
  }
  if (threadIdx.x == 0) {
    p.token[r] = tok;
    p.logprob[r] = static_cast<float>(static_cast<double>(p.raw_logits[r * p.vocab + tok]) - lse[r]);
  }
}

__global__ void UniformAtKernel(const uint64_t* key, const uint64_t* counter, double* out, int64_t n) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i < n) out[i] = DevUniformAt(key[i], counter[i]);
}

int64_t Align256(int64_t b) { return (b + 255) / 256 * 256; }

}  // namespace

void SampleGreedyCuda(const SampleGreedyParams& p, void* stream) {
  if (p.rows == 0) return;
  static GrowBuffer ws;
  const int keep = p.top_k > 1 ? p.top_k : 1;
  auto* buf = static_cast<uint8_t*>(ws.Get(GreedyWorkspaceBytes(p.rows, p.vocab, keep), "sample_greedy (workspace)"));
  if (buf == nullptr) return;
  LaunchGreedy(p, buf, nullptr, cuda::AsStream(stream));
}

size_t SampleCudaWorkspaceBytes(int64_t rows, int64_t vocab) {
  return static_cast<size_t>(GreedyWorkspaceBytes(rows, vocab, kSampleMaxTopK) + Align256(rows * 8) +
                             2 * Align256(rows * 4));
}

void SampleCuda(const SampleParams& p, void* workspace, size_t workspace_bytes, void* stream) {
  if (p.rows == 0) return;
  if (workspace == nullptr || workspace_bytes < SampleCudaWorkspaceBytes(p.rows, p.vocab)) {
    cuda::NoteLaunchError(static_cast<int>(cudaErrorInvalidValue), "sample (workspace missing or too small)");
    return;
  }
  auto* ws = static_cast<uint8_t*>(workspace);
  const int64_t greedy_bytes = GreedyWorkspaceBytes(p.rows, p.vocab, kSampleMaxTopK);
  auto* lse = reinterpret_cast<double*>(ws + greedy_bytes);
  auto* greedy_token = reinterpret_cast<int32_t*>(ws + greedy_bytes + Align256(p.rows * 8));
  auto* greedy_lp = reinterpret_cast<float*>(ws + greedy_bytes + Align256(p.rows * 8) + Align256(p.rows * 4));
  cudaStream_t s = cuda::AsStream(stream);
  SampleGreedyParams g{p.raw_logits, p.rows,    p.vocab, p.top_k_logprobs, greedy_token, greedy_lp,
                       p.top_ids,    p.top_logprobs};
  if (p.all_greedy && p.logits == p.raw_logits) {  // SampleGreedy exactly
    g.token = p.token;
    g.logprob = p.logprob;
    LaunchGreedy(g, ws, nullptr, s);
    return;
  }
  LaunchGreedy(g, ws, lse, s);
  SampleDrawKernel<<<static_cast<unsigned>(p.rows), kDrawThreads, 0, s>>>(p, lse, greedy_token);
  TIDE_CUDA_LAUNCHED("sample (draw)");
}

void SampleCudaOwnWorkspace(const SampleParams& p, void* stream) {
  if (p.rows == 0) return;
  static GrowBuffer ws;
  const size_t bytes = SampleCudaWorkspaceBytes(p.rows, p.vocab);
  void* buf = ws.Get(static_cast<int64_t>(bytes), "sample (workspace)");
  if (buf == nullptr) return;
  SampleCuda(p, buf, bytes, stream);
}

void TEST_SampleCudaUniformAt(const uint64_t* key, const uint64_t* counter, double* out, int64_t n, void* stream) {
  if (n == 0) return;
  UniformAtKernel<<<static_cast<unsigned>(cuda::CeilDiv(n, 256)), 256, 0, cuda::AsStream(stream)>>>(key, counter, out,
                                                                                                     n);
  TIDE_CUDA_LAUNCHED("sample (uniform test)");
}

}  // namespace tide
