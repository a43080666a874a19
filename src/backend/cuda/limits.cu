// Measures the GPU's memory bandwidth and bf16 matrix rate (backend/cuda/limits.h).
//
// Read bandwidth: each thread sums 16-byte loads over a grid-stride walk of a 4 GiB
// buffer (far beyond L2) with four loads in flight; the sums are stored, so nothing is
// optimised away. This is what decode does (stream weights, write little), so decode
// fractions use it. The device-to-device copy is reported beside it for comparison
// with the usual figure. GEMM: cuBLASLt on bf16 operands with f32 accumulation and f32
// output, the operand types of our prefill GEMMs, on random values (zeros run faster).
#include <cublasLt.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/blas_lt.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_util.cuh"
#include "backend/cuda/limits.h"

namespace tide::cuda {
namespace {

__global__ void FillRandomKernel(uint32_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 15, h *= 0x85EBCA77u, h ^= h >> 13, h *= 0xC2B2AE3Du, h ^= h >> 16;
    // Two bf16 values in [-1, 1): sign, exponent 126 or less, random mantissa.
    const uint32_t lo = (h & 0x807Fu) | 0x3E00u, hi = ((h >> 16) & 0x807Fu) | 0x3F00u;
    p[i] = lo | (hi << 16);
  }
}

__global__ void ReadKernel(const uint4* __restrict__ p, int64_t n, uint32_t* __restrict__ sink) {
  uint32_t acc = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride),
                d = __ldcs(p + i + 3 * stride);
    acc += a.x ^ b.y ^ c.z ^ d.w;
  }
  for (; i < n; i += stride) acc += __ldcs(p + i).x;
  sink[static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x] = acc;
}

double Median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Milliseconds of each of `reps` runs of fn after `warm` untimed ones.
template <typename F>
Result<double> TimeMedianMs(cudaStream_t s, int warm, int reps, F fn) {
  cudaEvent_t a, b;
  TIDE_CUDA_RETURN_IF_ERROR(cudaEventCreate(&a));
  TIDE_CUDA_RETURN_IF_ERROR(cudaEventCreate(&b));
  std::vector<float> ms;
  Status st = OkStatus();
  for (int i = 0; i < warm + reps && st.ok(); ++i) {
    cudaEventRecord(a, s);
    st.Update(fn());
    cudaEventRecord(b, s);
    st.Update(ToStatus(cudaEventSynchronize(b), "cudaEventSynchronize"));
    float t = 0;
    if (st.ok() && i >= warm) {
      cudaEventElapsedTime(&t, a, b);
      ms.push_back(t);
    }
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  RETURN_IF_ERROR(st);
  return Median(ms);
}

}  // namespace

Result<GpuLimits> MeasureGpuLimits() {
  GpuLimits lim;
  cudaStream_t s = nullptr;  // the legacy default stream, like the engine's
  const int64_t bytes = int64_t{4} << 30;
  void *buf = nullptr, *sink = nullptr;
  TIDE_CUDA_RETURN_IF_ERROR(cudaMalloc(&buf, static_cast<size_t>(bytes)));
  const int threads = 256, blocks = NumSms() * 8;
  Status st = ToStatus(cudaMalloc(&sink, static_cast<size_t>(threads) * blocks * 4), "cudaMalloc");
  if (st.ok()) {
    FillRandomKernel<<<blocks, threads, 0, s>>>(static_cast<uint32_t*>(buf), bytes / 4, 1234u);
    st.Update(ToStatus(cudaGetLastError(), "fill"));
  }
  if (st.ok()) {
    Result<double> ms = TimeMedianMs(s, 3, 10, [&] {
      ReadKernel<<<blocks, threads, 0, s>>>(static_cast<const uint4*>(buf), bytes / 16, static_cast<uint32_t*>(sink));
      return ToStatus(cudaGetLastError(), "read kernel");
    });
    if (ms.ok()) lim.read_bytes_per_s = static_cast<double>(bytes) / (*ms * 1e-3);
    st.Update(ms.status());
  }
  if (st.ok()) {
    const int64_t half = bytes / 2;
    char* base = static_cast<char*>(buf);
    Result<double> ms = TimeMedianMs(s, 3, 10, [&] {
      return ToStatus(cudaMemcpyAsync(base + half, base, static_cast<size_t>(half), cudaMemcpyDeviceToDevice, s),
                      "cudaMemcpyAsync");
    });
    if (ms.ok()) lim.copy_bytes_per_s = 2.0 * static_cast<double>(half) / (*ms * 1e-3);
    st.Update(ms.status());
  }
  if (st.ok()) {
    // A and B: 8192 x 8192 bf16 each (128 MiB) from the random buffer; C f32 (256 MiB).
    constexpr int64_t kN = 8192;
    char* base = static_cast<char*>(buf);
    const void* A = base;
    const void* B = base + kN * kN * 2;
    float* C = reinterpret_cast<float*>(base + 2 * kN * kN * 2);
    const BlasLt& lt = GetBlasLt();
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    cublasLtMatmulHeuristicResult_t heur{};
    int found = 0;
    const cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
    bool ok = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof(nt)) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, kN, kN, kN) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, kN, kN, kN) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, kN, kN, kN) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.workspace_bytes,
                                                   sizeof(lt.workspace_bytes)) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulAlgoGetHeuristic(lt.handle, op, la, lb, lc, lc, pref, 1, &heur, &found) ==
                  CUBLAS_STATUS_SUCCESS &&
              found > 0;
    if (!ok) {
      st.Update(Internal("cuBLASLt offers no bf16 GEMM for the 8192^3 probe"));
    } else {
      const float alpha = 1.f, beta = 0.f;
      Result<double> ms = TimeMedianMs(s, 3, 10, [&] {
        const cublasStatus_t r = cublasLtMatmul(lt.handle, op, &alpha, A, la, B, lb, &beta, C, lc, C, lc, &heur.algo,
                                                lt.workspace, lt.workspace_bytes, s);
        return r == CUBLAS_STATUS_SUCCESS ? OkStatus() : Internal("cublasLtMatmul failed in the GEMM probe");
      });
      if (ms.ok()) lim.bf16_gemm_flops_per_s = 2.0 * kN * kN * kN / (*ms * 1e-3);
      st.Update(ms.status());
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
  }
  cudaFree(sink);
  cudaFree(buf);
  RETURN_IF_ERROR(st);
  return lim;
}

}  // namespace tide::cuda
