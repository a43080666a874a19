// matmul: y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n]) — the Linear layer, with weights in
// checkpoint layout ([out, in], row-major) and any weight dtype, accumulating in f32.
//
// m is the number of tokens in the step (1..a few for decode, thousands for prefill),
// so the CPU kernel has two regimes: bandwidth-bound GEMV (stream each weight row once)
// and compute-bound GEMM (reuse each converted weight panel across many rows of x).
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace tide {

struct MatmulParams {
  const float* x = nullptr;     // [m, k] f32, row stride k. Not owned.
  Tensor w;                     // [n, k] in f32/f16/bf16/q8_0/q4_0 (k % 32 == 0 for q*). Not owned.
  const float* bias = nullptr;  // [n] f32 or null. Not owned.
  float* y = nullptr;           // [m, n] f32, row stride n; fully overwritten. Not owned.
  int64_t m = 0, n = 0, k = 0;

  // Decode fusions, so the small steps between the bandwidth-bound GEMVs need no launch
  // of their own. At most one of norm_weight / silu_mul; only for m <= kMatmulFusedMaxRows.
  // norm_weight: [k] f32 or null. When set, each row of x is RMS-normalised first:
  //   y = W·(x ⊙ norm_weight) / sqrt(mean(x²) + norm_eps) (+ bias), as rms_norm then matmul.
  const float* norm_weight = nullptr;
  float norm_eps = 1e-6f;
  // x rows are [gate | up] (row stride 2k) and the product reads silu(gate) * up, as
  // silu_mul then matmul.
  bool silu_mul = false;
  // y += product (the residual add after a block) instead of y = product.
  bool accumulate = false;

  bool fused() const { return norm_weight != nullptr || silu_mul || accumulate; }

  // kInvalidArgument when pointers are null, shapes disagree with w.shape, the
  // dtype's block size does not divide k, or the fusions are combined or m too large.
  [[nodiscard]] Status check() const;
};

void MatmulRef(const MatmulParams& p);  // obvious triple loop, f64 accumulation, fusions included
// AVX2/FMA, threaded over `pool` (null = the calling thread only); weights are read in
// place, never repacked. Batch-invariant: row i of y is bit-identical for any m, any
// other rows of x and any thread count (one fixed f32 reduction order per element; see
// matmul_cpu.cc). Not reentrant on one pool (ThreadPool::Run is not).
// Ignores the fusions (the dispatcher composes them around it on the CPU).
void MatmulCpu(const MatmulParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
// `precision` picks between the f32-exact split-term GEMMs and one bf16-activation GEMM
// for bf16 weights (see Precision in backend/exec.h and the top of matmul_cuda.cu).
void MatmulCuda(const MatmulParams& p, void* stream, Precision precision = Precision::kFast);
// Under Precision::kFast, bf16-weight matmuls with at least this many rows round x to
// bf16 and run one tensor-core GEMM; fewer rows keep the f32-exact paths. Below it the
// stacked-term GEMM reads the weights once for 3m columns and is bandwidth-bound, so bf16
// x gains little there; above it the split path pays three full GEMMs.
inline constexpr int64_t kMatmulBf16MinRows = 65;
// The fusions in MatmulParams run inside the CUDA GEMV kernels, which take up to this
// many rows of x.
inline constexpr int64_t kMatmulFusedMaxRows = 8;
// Dispatches on ctx.device (and ctx.precision on CUDA). REQUIRES p.check().ok().
void Matmul(const ExecContext& ctx, const MatmulParams& p);

}  // namespace tide
