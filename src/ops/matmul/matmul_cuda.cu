// matmul on CUDA, three regimes:
//
// * m <= kGemvRows (decode, small batches): a GEMV kernel, bandwidth-bound. The block
//   stages x (f32) in shared memory, one k-tile at a time (all of k when it fits), and
//   each warp streams R weight rows with 16-byte loads issued 16 per lane before their
//   first use (a whole 4096-wide bf16 row per warp; ptxas reports 40 registers for the
//   one-row case, so whether all 16 stay in flight is to be checked in SASS), so the
//   memory system sees enough requests to run at its bandwidth; every x value read from
//   shared memory serves R rows. Lane l owns
//   the 16-byte columns l, l + 32, ... of each row in that order and the 32 lane sums
//   meet in a fixed shuffle tree, so a row's result is bit-identical for any m, tile
//   size, R or neighbouring rows (batch invariance).
// * kGemvRows < m <= kConcatRows (decode, larger batches): cuBLASLt on tensor cores with
//   x split into three terms of the weight's type (below) stacked as 3m columns of one
//   GEMM, so the weights stream from memory once; a small kernel adds the three partial
//   products (and the bias).
// * m > kConcatRows (prefill): three cuBLASLt GEMMs, one per term, accumulating in y.
//
// Those are the f32-exact paths (Precision::kExact). By default (Precision::kFast) a
// bf16-weight matmul with m >= kMatmulBf16MinRows instead rounds x to bf16 once (one
// pass over x) and runs one cuBLASLt bf16 GEMM with f32 accumulation and f32 output:
// a third of the tensor-core work of the split, at the usual bf16-activation error
// (each product carries x's rounding, 2^-9 relative; the sums stay f32). f16 weights
// keep the split: f16 activations would overflow past 65504.
//
// The split: cuBLASLt multiplies operands of one type, and our activations are f32
// while weights stay bf16/f16 as loaded, so x is split into three terms in the weight's
// type, x0 = round(x), x1 = round(x - x0), x2 = round(x - x0 - x1), and
// y = W·x0 + W·x1 + W·x2 (f32 accumulation). Three bf16 terms carry all 24 mantissa
// bits of x (two carried 16, and the golden fixtures measured 1e-4..3e-4 logprob error
// with two, against ~1e-5 on the CPU); the weights are exact, so the product matches an
// f32-activation GEMM at three times the tensor-core work — the price of f32
// activations until the model runs bf16 activations. f32 weights use one f32 GEMM
// (CUBLAS_COMPUTE_32F, no TF32).
//
// Quantised weights (q8_0/q4_0) are widened to f32 when the model moves to the GPU,
// so this file never sees them.
#include <cublasLt.h>

#include <algorithm>
#include <type_traits>

#include "backend/cuda/blas_lt.h"
#include "backend/cuda/kernel_util.cuh"
#include "ops/matmul/matmul.h"

namespace tide {
namespace {

constexpr int kGemvRows = 8;        // x rows per GEMV pass (accumulators per lane)
constexpr int kGemvWarps = 8;       // warps per GEMV block
constexpr int kConcatRows = 64;     // up to here the split terms share one GEMM
constexpr int kGemvSmemBytes = 64 << 10;  // x tile in shared memory (opt-in above 48 KB)
static_assert(kGemvRows == kMatmulFusedMaxRows, "the fusions run in the GEMV kernels");

// The decode fusions of MatmulParams, as the GEMV kernels take them.
struct GemvFuse {
  const float* norm = nullptr;  // RMSNorm weight [k] or null
  float eps = 0.f;
  bool silu = false;            // x rows are [gate | up], stride 2k
  bool accumulate = false;      // y += product
};

__device__ __forceinline__ float Silu(float g) { return g / (1.f + expf(-g)); }  // as silu_mul

template <typename W>
struct Vec16;  // 16 bytes of W, widened to f32
template <>
struct Vec16<float> {
  static constexpr int kN = 4;
  __device__ __forceinline__ static void Load(const float* p, float* out) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(p));
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  }
};
template <typename H>
struct Vec16Half {
  static constexpr int kN = 8;
  __device__ __forceinline__ static void Load(const H* p, float* out) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    const H* h = reinterpret_cast<const H*>(&v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = cuda::ToF32(h[i]);
  }
};
template <>
struct Vec16<__half> : Vec16Half<__half> {};
template <>
struct Vec16<__nv_bfloat16> : Vec16Half<__nv_bfloat16> {};

// A 16-byte weight load that skips L1 (each weight is read once). volatile keeps the
// loads of a sweep in program order (see GemvSweep for why they must all go first).
__device__ __forceinline__ uint4 LoadStream(const void* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// 16 raw bytes of W (kept packed in registers while loads are in flight), widened on use.
template <typename W>
__device__ __forceinline__ void Expand(const uint4& v, float* out) {
  if constexpr (std::is_same_v<W, float>) {
    out[0] = __uint_as_float(v.x), out[1] = __uint_as_float(v.y), out[2] = __uint_as_float(v.z),
    out[3] = __uint_as_float(v.w);
  } else {
    const W* h = reinterpret_cast<const W*>(&v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = cuda::ToF32(h[i]);
  }
}

// y[r0 + r, j] for r < min(kGemvRows, m - r0), one warp per j. `vec` = rows of x and w
// are 16-byte aligned, so the vector loop covers k up to a multiple of the vector width.
template <typename W>
__global__ void __launch_bounds__(kGemvWarps * 32)
    GemvKernel(const float* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
               float* __restrict__ y, int64_t m, int64_t n, int64_t k, bool vec, bool accumulate) {
  const int lane = threadIdx.x % 32;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kGemvRows;
  if (j >= n) return;
  const int rows = static_cast<int>(m - r0 < kGemvRows ? m - r0 : kGemvRows);
  const W* wr = w + j * k;
  const float* xr = x + r0 * k;
  float acc[kGemvRows];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) acc[r] = 0.f;
  constexpr int kV = Vec16<W>::kN;
  int64_t tail = 0;
  if (vec) {
    const int64_t kv = k / kV * kV;
#pragma unroll 2
    for (int64_t c = static_cast<int64_t>(lane) * kV; c < kv; c += 32 * kV) {
      float wv[kV];
      Vec16<W>::Load(wr + c, wv);
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) {
        if (r < rows) {
          const float* xp = xr + r * k + c;
#pragma unroll
          for (int i = 0; i < kV; i += 4) {
            const float4 xv = __ldg(reinterpret_cast<const float4*>(xp + i));
            acc[r] = fmaf(wv[i], xv.x, acc[r]);
            acc[r] = fmaf(wv[i + 1], xv.y, acc[r]);
            acc[r] = fmaf(wv[i + 2], xv.z, acc[r]);
            acc[r] = fmaf(wv[i + 3], xv.w, acc[r]);
          }
        }
      }
    }
    tail = kv;
  }
  for (int64_t c = tail + lane; c < k; c += 32) {
    const float wv = cuda::ToF32(wr[c]);
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r)
      if (r < rows) acc[r] = fmaf(wv, xr[r * k + c], acc[r]);
  }
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
    if (r < rows) {
      const float s = cuda::WarpSum(acc[r]);
      if (lane == 0) {
        const float v = s + (bias != nullptr ? bias[j] : 0.f);
        y[(r0 + r) * n + j] = accumulate ? y[(r0 + r) * n + j] + v : v;
      }
    }
  }
}

// The fused prologue written out: xo[i] = the row of x the product reads (rms_norm's or
// silu_mul's formula). One block per row; for GEMVs whose shapes miss the tiled kernel.
constexpr int kPrepThreads = 256;
__global__ void __launch_bounds__(kPrepThreads)
    PrepXKernel(const float* __restrict__ x, float* __restrict__ xo, int64_t k, GemvFuse f) {
  const int64_t i = blockIdx.x;
  float* xr = xo + i * k;
  if (f.silu) {
    const float* g = x + i * 2 * k;
    for (int64_t c = threadIdx.x; c < k; c += kPrepThreads) xr[c] = Silu(g[c]) * g[k + c];
    return;
  }
  const float* s = x + i * k;
  float inv = 1.f;
  if (f.norm != nullptr) {
    __shared__ float partial[kPrepThreads / 32];
    float ss = 0.f;
    for (int64_t c = threadIdx.x; c < k; c += kPrepThreads) ss = fmaf(s[c], s[c], ss);
    ss = cuda::WarpSum(ss);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < kPrepThreads / 32; ++w) total += partial[w];
    inv = rsqrtf(total / static_cast<float>(k) + f.eps);
  }
  for (int64_t c = threadIdx.x; c < k; c += kPrepThreads) xr[c] = f.norm != nullptr ? f.norm[c] * (s[c] * inv) : s[c];
}

template <typename W>
void LaunchGemv(const MatmulParams& p, const GemvFuse& f, cudaStream_t s) {
  const float* x = p.x;
  if (f.norm != nullptr || f.silu) {
    auto* xo = static_cast<float*>(cuda::Scratch(p.m * p.k * 4, cuda::ScratchSlot::kMatmulX));
    PrepXKernel<<<static_cast<unsigned>(p.m), kPrepThreads, 0, s>>>(p.x, xo, p.k, f);
    TIDE_CUDA_LAUNCHED("matmul (fused prologue)");
    x = xo;
  }
  const bool vec = (p.k * static_cast<int64_t>(sizeof(W))) % 16 == 0 && (p.k * 4) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(cuda::CeilDiv(p.n, kGemvWarps)), static_cast<unsigned>(cuda::CeilDiv(p.m, kGemvRows)));
  GemvKernel<W><<<grid, kGemvWarps * 32, 0, s>>>(x, p.w.as<const W>(), p.bias, p.y, p.m, p.n, p.k, vec, f.accumulate);
  TIDE_CUDA_LAUNCHED("matmul (gemv)");
}

// Folds weight vectors c, c + 32 kV, ... of the tile into acc, U of them per row at a
// time (all U x R loads issued before the first use), while U more fit before `len`.
// Returns the first column not done.
template <typename W, int M, int R, int U>
__device__ __forceinline__ int GemvSweep(int c, int len, int kt, const W* const (&wt)[R], const float* xs,
                                         float (&acc)[R][M]) {
  constexpr int kV = Vec16<W>::kN;
  for (; c + (U - 1) * 32 * kV < len; c += U * 32 * kV) {
    uint4 raw[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) raw[u][r] = LoadStream(wt[r] + c + u * 32 * kV);
    // Pin every loaded value here, so no use (and no load's register reuse) is scheduled
    // between the loads: all U x R requests are in flight together.
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r)
        asm volatile("" : "+r"(raw[u][r].x), "+r"(raw[u][r].y), "+r"(raw[u][r].z), "+r"(raw[u][r].w));
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float wv[R][kV];
#pragma unroll
      for (int r = 0; r < R; ++r) Expand<W>(raw[u][r], wv[r]);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        const float* xp = xs + i * kt + c + u * 32 * kV;
#pragma unroll
        for (int e = 0; e < kV; e += 4) {
          const float4 xv = *reinterpret_cast<const float4*>(xp + e);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            acc[r][i] = fmaf(wv[r][e], xv.x, acc[r][i]);
            acc[r][i] = fmaf(wv[r][e + 1], xv.y, acc[r][i]);
            acc[r][i] = fmaf(wv[r][e + 2], xv.z, acc[r][i]);
            acc[r][i] = fmaf(wv[r][e + 3], xv.w, acc[r][i]);
          }
        }
      }
    }
  }
  return c;
}

// How the tiled GEMV stages x: as is, times the RMSNorm weight (summing squares), or as
// silu(gate) * up. A template parameter, so the plain staging stays the loop it was and
// each fused one loads everything of a step (the weight once for all rows) before use.
enum StageMode { kStagePlain = 0, kStageNorm = 1, kStageSilu = 2 };

// x[i, k0 + c] for c < len into xs[i * kt + c], rows past m as zeros. Each thread owns
// columns threadIdx.x * 4 + j * kGemvWarps * 128, in increasing order, which for the
// tile sizes the launcher picks is one fixed column order per thread whatever kt is.
template <int M, int Mode>
__device__ __forceinline__ void StageX(const float* __restrict__ x, int m, int64_t k, int64_t k0, int len, int kt,
                                       const float* __restrict__ norm, float* xs, float (&ss)[M]) {
  constexpr int kStride = kGemvWarps * 32 * 4;
  if constexpr (Mode == kStagePlain) {
    for (int i = 0; i < M; ++i) {
      for (int c = threadIdx.x * 4; c < len; c += kStride) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i < m) v = __ldg(reinterpret_cast<const float4*>(x + i * k + k0 + c));
        *reinterpret_cast<float4*>(xs + i * kt + c) = v;
      }
    }
  } else if constexpr (Mode == kStageNorm) {
    for (int c = threadIdx.x * 4; c < len; c += kStride) {
      const float4 g = __ldg(reinterpret_cast<const float4*>(norm + k0 + c));
      float4 v[M];
#pragma unroll
      for (int i = 0; i < M; ++i)
        v[i] = i < m ? __ldg(reinterpret_cast<const float4*>(x + i * k + k0 + c)) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        ss[i] = fmaf(v[i].x, v[i].x, ss[i]);
        ss[i] = fmaf(v[i].y, v[i].y, ss[i]);
        ss[i] = fmaf(v[i].z, v[i].z, ss[i]);
        ss[i] = fmaf(v[i].w, v[i].w, ss[i]);
        *reinterpret_cast<float4*>(xs + i * kt + c) = make_float4(v[i].x * g.x, v[i].y * g.y, v[i].z * g.z, v[i].w * g.w);
      }
    }
  } else {
    for (int c = threadIdx.x * 4; c < len; c += kStride) {
      float4 gt[M], up[M];
#pragma unroll
      for (int i = 0; i < M; ++i) {
        const float* xp = x + i * 2 * k + k0 + c;
        gt[i] = i < m ? __ldg(reinterpret_cast<const float4*>(xp)) : make_float4(0.f, 0.f, 0.f, 0.f);
        up[i] = i < m ? __ldg(reinterpret_cast<const float4*>(xp + k)) : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int i = 0; i < M; ++i)
        *reinterpret_cast<float4*>(xs + i * kt + c) = make_float4(Silu(gt[i].x) * up[i].x, Silu(gt[i].y) * up[i].y,
                                                                  Silu(gt[i].z) * up[i].z, Silu(gt[i].w) * up[i].w);
    }
  }
}

// The tiled GEMV (see the top of the file). M = x rows the accumulators are sized for
// (m <= M; rows past m are zero in shared memory and never stored), R = weight rows per
// warp. REQUIRES: k a multiple of the vector width, x and w 16-byte aligned rows, and kt
// a multiple of 32 vectors (so lane column ownership does not depend on kt).
//
// Fusions (f): silu(gate) * up is formed while x is staged. The RMSNorm weight multiplies
// x while it is staged, and the row's sum of squares accumulates there too (each thread
// over the columns it stages, which for any kt the launcher picks are the same columns
// in the same order, then a fixed tree), so the 1/rms scale applies once to the finished
// dot product: no separate pass over x, and no normalised copy in memory.
template <typename W, int M, int R, int Mode>
__global__ void __launch_bounds__(kGemvWarps * 32)
    GemvTiledKernel(const float* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
                    float* __restrict__ y, int m, int64_t n, int64_t k, int kt, GemvFuse f) {
  extern __shared__ float4 xs4[];
  float* xs = reinterpret_cast<float*>(xs4);  // [M][kt]
  constexpr int kV = Vec16<W>::kN;
  const int lane = threadIdx.x % 32;
  const int64_t j0 = (static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * R;
  // Rows past n read row n - 1 (valid memory) and are never stored: no predicated loads.
  const W* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) wr[r] = w + (j0 + r < n ? j0 + r : n - 1) * k;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < M; ++i) acc[r][i] = 0.f;

  float ss[M];  // this thread's part of each row's sum of squares (kStageNorm)
#pragma unroll
  for (int i = 0; i < M; ++i) ss[i] = 0.f;

  for (int64_t k0 = 0; k0 < k; k0 += kt) {
    const int len = static_cast<int>(k - k0 < kt ? k - k0 : kt);
    __syncthreads();  // the previous tile is consumed
    StageX<M, Mode>(x, m, k, k0, len, kt, f.norm, xs, ss);
    __syncthreads();
    if (j0 >= n) continue;  // no rows for this warp (it still meets the barriers)
    const W* wt[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wt[r] = wr[r] + k0;
    // 16 loads in flight per lane (U per row), then 4 at a time for a long row's rest,
    // then one: the same columns in the same order whatever the split.
    constexpr int U = 16 / R;
    int c = lane * kV;
    c = GemvSweep<W, M, R, U>(c, len, kt, wt, xs, acc);
    if constexpr (U > 4) c = GemvSweep<W, M, R, 4>(c, len, kt, wt, xs, acc);
    GemvSweep<W, M, R, 1>(c, len, kt, wt, xs, acc);
  }
  float scale[M];
#pragma unroll
  for (int i = 0; i < M; ++i) scale[i] = 1.f;
  if constexpr (Mode == kStageNorm) {
    __shared__ float partial[M][kGemvWarps];
    const int warp = threadIdx.x / 32;
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const float t = cuda::WarpSum(ss[i]);
      if (lane == 0) partial[i][warp] = t;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float total = 0.f;
#pragma unroll
      for (int w2 = 0; w2 < kGemvWarps; ++w2) total += partial[i][w2];
      scale[i] = rsqrtf(total / static_cast<float>(k) + f.eps);
    }
  }
  if (j0 >= n) return;
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const float s = cuda::WarpSum(acc[r][i]);
      if (lane == 0 && i < m && j0 + r < n) {
        const float v = (Mode == kStageNorm ? s * scale[i] : s) + (bias != nullptr ? bias[j0 + r] : 0.f);
        float* yp = y + i * n + j0 + r;
        *yp = f.accumulate ? *yp + v : v;
      }
    }
  }
}

template <typename W, int M, int R, int Mode>
void LaunchGemvTiledMode(const MatmulParams& p, const GemvFuse& f, cudaStream_t s) {
  constexpr int kV = Vec16<W>::kN;
  constexpr int kStep = 32 * kV;  // tile sizes are multiples of one warp-wide sweep
  static bool raised = false;
  if (!raised) {
    const cudaError_t e = cudaFuncSetAttribute(GemvTiledKernel<W, M, R, Mode>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               kGemvSmemBytes);
    if (e != cudaSuccess) cuda::NoteLaunchError(e, "matmul (gemv shared memory limit)");
    raised = true;
  }
  const int64_t k_round = cuda::CeilDiv(p.k, kStep) * kStep;
  const int64_t kt_max = kGemvSmemBytes / (4 * M) / kStep * kStep;
  const int kt = static_cast<int>(k_round < kt_max ? k_round : kt_max);
  const size_t smem = static_cast<size_t>(M) * kt * 4;
  const auto blocks = static_cast<unsigned>(cuda::CeilDiv(p.n, int64_t{kGemvWarps} * R));
  GemvTiledKernel<W, M, R, Mode><<<blocks, kGemvWarps * 32, smem, s>>>(p.x, p.w.as<const W>(), p.bias, p.y,
                                                                  static_cast<int>(p.m), p.n, p.k, kt, f);
  TIDE_CUDA_LAUNCHED("matmul (gemv)");
}

template <typename W, int M, int R>
void LaunchGemvTiled(const MatmulParams& p, const GemvFuse& f, cudaStream_t s) {
  if (f.silu) {
    LaunchGemvTiledMode<W, M, R, kStageSilu>(p, f, s);
  } else if (f.norm != nullptr) {
    LaunchGemvTiledMode<W, M, R, kStageNorm>(p, f, s);
  } else {
    LaunchGemvTiledMode<W, M, R, kStagePlain>(p, f, s);
  }
}

template <typename W, int M>
void LaunchGemvTiledRows(const MatmulParams& p, const GemvFuse& f, cudaStream_t s) {
  // Four rows per warp share each x read from shared memory (which bounds the kernel
  // once x has several rows), but leave too few blocks for small n and one x row; one
  // row per warp then spreads the matrix over every multiprocessor.
  if (M >= 4 || p.n >= int64_t{kGemvWarps} * 4 * cuda::NumSms()) {
    LaunchGemvTiled<W, M, 4>(p, f, s);
  } else {
    LaunchGemvTiled<W, M, 1>(p, f, s);
  }
}

template <typename W>
void LaunchGemvAny(const MatmulParams& p, cudaStream_t s) {
  constexpr int kV = Vec16<W>::kN;
  GemvFuse f;
  f.norm = p.norm_weight;
  f.eps = p.norm_eps;
  f.silu = p.silu_mul;
  f.accumulate = p.accumulate;
  const bool vec = p.k % kV == 0 && p.k % 4 == 0 && reinterpret_cast<uintptr_t>(p.w.data) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                   (f.norm == nullptr || reinterpret_cast<uintptr_t>(f.norm) % 16 == 0);
  if (!vec || p.m > kGemvRows) {
    LaunchGemv<W>(p, f, s);
    return;
  }
  if (p.m == 1) {
    LaunchGemvTiledRows<W, 1>(p, f, s);
  } else if (p.m == 2) {
    LaunchGemvTiledRows<W, 2>(p, f, s);
  } else if (p.m <= 4) {
    LaunchGemvTiledRows<W, 4>(p, f, s);
  } else {
    LaunchGemvTiledRows<W, 8>(p, f, s);
  }
}

template <typename H>
__device__ __forceinline__ H Round(float v) {
  if constexpr (std::is_same_v<H, __half>) {
    return __float2half_rn(v);
  } else {
    return __float2bfloat16_rn(v);
  }
}

// x = x0 + x1 + x2 (+ what is below the third term's precision).
template <typename H>
__global__ void SplitKernel(const float* __restrict__ x, H* __restrict__ parts, int64_t n, int64_t stride) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float rest = x[i];
#pragma unroll
  for (int t = 0; t < 3; ++t) {
    const H h = Round<H>(rest);
    parts[t * stride + i] = h;
    rest -= cuda::ToF32(h);  // exact: h is rest rounded to fewer bits
  }
}

__global__ void BiasKernel(float* __restrict__ y, const float* __restrict__ bias, int64_t m, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < m * n) y[i] += bias[i % n];
}

// y (col-major [n, m], ld n) = beta * y + Wᵀ-as-stored (col-major [k, n]) ᵀ · B (col-major [k, m]).
// False when cuBLASLt offers no algorithm for this shape/alignment.
bool LtGemm(cudaDataType_t type, const void* w, const void* b, float* y, int64_t m, int64_t n, int64_t k, float beta,
            cudaStream_t s) {
  const cuda::BlasLt& lt = cuda::GetBlasLt();
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  auto ok = [](cublasStatus_t st) { return st == CUBLAS_STATUS_SUCCESS; };
  TIDE_CHECK(ok(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F)));
  const cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
  TIDE_CHECK(ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t))));
  TIDE_CHECK(ok(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof(nt))));
  TIDE_CHECK(ok(cublasLtMatrixLayoutCreate(&la, type, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k)));
  TIDE_CHECK(ok(cublasLtMatrixLayoutCreate(&lb, type, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k)));
  TIDE_CHECK(ok(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, static_cast<uint64_t>(n), static_cast<uint64_t>(m), n)));
  TIDE_CHECK(ok(cublasLtMatmulPreferenceCreate(&pref)));
  TIDE_CHECK(ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &lt.workspace_bytes, sizeof(lt.workspace_bytes))));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const bool have = ok(cublasLtMatmulAlgoGetHeuristic(lt.handle, op, la, lb, lc, lc, pref, 1, &heur, &found)) && found > 0;
  if (have) {
    const float alpha = 1.f;
    const cublasStatus_t st = cublasLtMatmul(lt.handle, op, &alpha, w, la, b, lb, &beta, y, lc, y, lc, &heur.algo,
                                             lt.workspace, lt.workspace_bytes, s);
    if (!ok(st)) cuda::NoteLaunchError(static_cast<int>(cudaErrorLaunchFailure), "matmul (cublasLtMatmul)");
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatmulDescDestroy(op);
  return have;
}

template <typename H>
bool LtSplitGemm(const MatmulParams& p, cudaDataType_t type, cudaStream_t s) {
  // The three terms back to back. Rows are k elements; count is padded so each term
  // starts 256-byte aligned for the tensor-core loads.
  const int64_t count = (p.m * p.k + 127) / 128 * 128;
  auto* parts = static_cast<H*>(cuda::Scratch(3 * count * static_cast<int64_t>(sizeof(H))));
  constexpr int kThreads = 256;
  SplitKernel<H><<<static_cast<unsigned>(cuda::CeilDiv(p.m * p.k, kThreads)), kThreads, 0, s>>>(p.x, parts, p.m * p.k, count);
  TIDE_CUDA_LAUNCHED("matmul (split x)");
  for (int t = 0; t < 3; ++t)
    if (!LtGemm(type, p.w.data, parts + t * count, p.y, p.m, p.n, p.k, t == 0 ? 0.f : 1.f, s)) return false;
  return true;
}

// x rounded to bf16 (nearest even), 4 elements per thread-step. REQUIRES n % 4 == 0 and
// 16-byte aligned x, 8-byte aligned out.
__global__ void ToBf16Kernel(const float4* __restrict__ x, uint2* __restrict__ out, int64_t n4) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 v = x[i];
    const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    out[i] = make_uint2(*reinterpret_cast<const uint32_t*>(&a), *reinterpret_cast<const uint32_t*>(&b));
  }
}

// The bf16-activation GEMM (Precision::kFast): x to bf16 once, one GEMM. False when
// cuBLASLt offers no algorithm.
bool LtBf16Gemm(const MatmulParams& p, cudaStream_t s) {
  const int64_t mk = p.m * p.k;
  auto* xb = static_cast<__nv_bfloat16*>(cuda::Scratch(mk * 2, cuda::ScratchSlot::kMatmulX));
  constexpr int kThreads = 256;
  const int64_t n4 = mk / 4;
  const int64_t blocks = std::min<int64_t>(cuda::CeilDiv(n4, kThreads), int64_t{cuda::NumSms()} * 16);
  ToBf16Kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(reinterpret_cast<const float4*>(p.x),
                                                                   reinterpret_cast<uint2*>(xb), n4);
  TIDE_CUDA_LAUNCHED("matmul (x to bf16)");
  return LtGemm(CUDA_R_16BF, p.w.data, xb, p.y, p.m, p.n, p.k, 0.f, s);
}

// y[i, j] = p0[i, j] + p1[i, j] + p2[i, j] (+ bias[j]): the three partial products of
// the stacked GEMM, summed in term order.
__global__ void SumTermsKernel(const float* __restrict__ parts, const float* __restrict__ bias, float* __restrict__ y,
                               int64_t mn, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= mn) return;
  float v = parts[i] + parts[mn + i];
  v += parts[2 * mn + i];
  if (bias != nullptr) v += bias[i % n];
  y[i] = v;
}

// kGemvRows < m <= kConcatRows: one GEMM over the 3m stacked term rows (the weights are
// read once), then the sum. False when cuBLASLt offers no algorithm.
template <typename H>
bool LtConcatGemm(const MatmulParams& p, cudaDataType_t type, cudaStream_t s) {
  const int64_t mk = p.m * p.k;
  auto* parts = static_cast<H*>(cuda::Scratch(3 * mk * static_cast<int64_t>(sizeof(H)), cuda::ScratchSlot::kMatmulX));
  auto* prod = static_cast<float*>(cuda::Scratch(3 * p.m * p.n * 4, cuda::ScratchSlot::kMatmulY));
  constexpr int kThreads = 256;
  SplitKernel<H><<<static_cast<unsigned>(cuda::CeilDiv(mk, kThreads)), kThreads, 0, s>>>(p.x, parts, mk, mk);
  TIDE_CUDA_LAUNCHED("matmul (split x)");
  if (!LtGemm(type, p.w.data, parts, prod, 3 * p.m, p.n, p.k, 0.f, s)) return false;
  SumTermsKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.m * p.n, kThreads)), kThreads, 0, s>>>(prod, p.bias, p.y,
                                                                                             p.m * p.n, p.n);
  TIDE_CUDA_LAUNCHED("matmul (sum terms)");
  return true;
}

}  // namespace

void MatmulCuda(const MatmulParams& p, void* stream, Precision precision) {
  cudaStream_t s = cuda::AsStream(stream);
  if (p.m > kGemvRows && !p.fused()) {
    bool done = false;
    // Rows of x are k elements; the stacked terms and the bf16 copy need 16-byte aligned rows.
    const bool bf16_x = p.w.dtype == DType::kBF16 && p.k % 8 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                        (precision == Precision::kBf16 || (precision == Precision::kFast && p.m >= kMatmulBf16MinRows));
    const bool concat = !bf16_x && p.m <= kConcatRows && p.k % 8 == 0;
    switch (p.w.dtype) {
      case DType::kF32:
        done = LtGemm(CUDA_R_32F, p.w.data, p.x, p.y, p.m, p.n, p.k, 0.f, s);
        break;
      case DType::kF16:
        done = concat ? LtConcatGemm<__half>(p, CUDA_R_16F, s) : LtSplitGemm<__half>(p, CUDA_R_16F, s);
        break;
      case DType::kBF16:
        done = bf16_x   ? LtBf16Gemm(p, s)
               : concat ? LtConcatGemm<__nv_bfloat16>(p, CUDA_R_16BF, s)
                        : LtSplitGemm<__nv_bfloat16>(p, CUDA_R_16BF, s);
        break;
      default:
        break;
    }
    if (done) {
      if (p.bias != nullptr && !(concat && p.w.dtype != DType::kF32)) {
        BiasKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.m * p.n, 256)), 256, 0, s>>>(p.y, p.bias, p.m, p.n);
        TIDE_CUDA_LAUNCHED("matmul (bias)");
      }
      return;
    }
    // No cuBLASLt algorithm (odd shapes or alignment): the GEMV kernel, 8 rows per pass.
  }
  switch (p.w.dtype) {
    case DType::kF32:
      LaunchGemvAny<float>(p, s);
      return;
    case DType::kF16:
      LaunchGemvAny<__half>(p, s);
      return;
    case DType::kBF16:
      LaunchGemvAny<__nv_bfloat16>(p, s);
      return;
    default:
      TIDE_CHECK(false && "matmul (CUDA): quantised weights are widened to f32 at load");
  }
}

}  // namespace tide
