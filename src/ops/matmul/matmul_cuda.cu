// matmul on CUDA, two regimes as on the CPU:
//
// * m <= kGemvRows (decode): a GEMV kernel, bandwidth-bound. One warp per weight row,
//   16-byte weight loads (8 bf16/f16 or 4 f32 values), f32 activations read through
//   L1 (every warp of a block reads the same x), f32 accumulation, a fixed shuffle
//   tree per row: a row's result does not depend on m or on the other rows.
// * m > kGemvRows (prefill): cuBLASLt on tensor cores. cuBLASLt multiplies operands of
//   one type, and our activations are f32 while weights stay bf16/f16 as loaded, so x
//   is split into three terms in the weight's type, x0 = round(x), x1 = round(x - x0),
//   x2 = round(x - x0 - x1), and y = W·x0 + W·x1 + W·x2 (three GEMMs, f32
//   accumulation). Three bf16 terms carry all 24 mantissa bits of x (two carried 16,
//   and the golden fixtures measured 1e-4..3e-4 logprob error with two, against
//   ~1e-5 on the CPU); the weights are exact, so the product matches an f32-activation
//   GEMM at three times the tensor-core work — the price of f32 activations until the
//   model runs bf16 activations. f32 weights use one f32 GEMM (CUBLAS_COMPUTE_32F, no TF32).
//
// Quantised weights (q8_0/q4_0) are widened to f32 when the model moves to the GPU,
// so this file never sees them.
#include <cublasLt.h>

#include <type_traits>

#include "backend/cuda/blas_lt.h"
#include "backend/cuda/kernel_util.cuh"
#include "ops/matmul/matmul.h"

namespace tide {
namespace {

constexpr int kGemvRows = 8;        // x rows per GEMV pass (accumulators per lane)
constexpr int kGemvWarps = 8;       // weight rows per block

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

// y[r0 + r, j] for r < min(kGemvRows, m - r0), one warp per j. `vec` = rows of x and w
// are 16-byte aligned, so the vector loop covers k up to a multiple of the vector width.
template <typename W>
__global__ void __launch_bounds__(kGemvWarps * 32)
    GemvKernel(const float* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
               float* __restrict__ y, int64_t m, int64_t n, int64_t k, bool vec) {
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
      if (lane == 0) y[(r0 + r) * n + j] = s + (bias != nullptr ? bias[j] : 0.f);
    }
  }
}

template <typename W>
void LaunchGemv(const MatmulParams& p, cudaStream_t s) {
  const bool vec = (p.k * static_cast<int64_t>(sizeof(W))) % 16 == 0 && (p.k * 4) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(cuda::CeilDiv(p.n, kGemvWarps)), static_cast<unsigned>(cuda::CeilDiv(p.m, kGemvRows)));
  GemvKernel<W><<<grid, kGemvWarps * 32, 0, s>>>(p.x, p.w.as<const W>(), p.bias, p.y, p.m, p.n, p.k, vec);
  TIDE_CUDA_LAUNCHED("matmul (gemv)");
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

}  // namespace

void MatmulCuda(const MatmulParams& p, void* stream) {
  cudaStream_t s = cuda::AsStream(stream);
  if (p.m > kGemvRows) {
    bool done = false;
    switch (p.w.dtype) {
      case DType::kF32:
        done = LtGemm(CUDA_R_32F, p.w.data, p.x, p.y, p.m, p.n, p.k, 0.f, s);
        break;
      case DType::kF16:
        done = LtSplitGemm<__half>(p, CUDA_R_16F, s);
        break;
      case DType::kBF16:
        done = LtSplitGemm<__nv_bfloat16>(p, CUDA_R_16BF, s);
        break;
      default:
        break;
    }
    if (done) {
      if (p.bias != nullptr) {
        BiasKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.m * p.n, 256)), 256, 0, s>>>(p.y, p.bias, p.m, p.n);
        TIDE_CUDA_LAUNCHED("matmul (bias)");
      }
      return;
    }
    // No cuBLASLt algorithm (odd shapes or alignment): the GEMV kernel, 8 rows per pass.
  }
  switch (p.w.dtype) {
    case DType::kF32:
      LaunchGemv<float>(p, s);
      return;
    case DType::kF16:
      LaunchGemv<__half>(p, s);
      return;
    case DType::kBF16:
      LaunchGemv<__nv_bfloat16>(p, s);
      return;
    default:
      TIDE_CHECK(false && "matmul (CUDA): quantised weights are widened to f32 at load");
  }
}

}  // namespace tide
