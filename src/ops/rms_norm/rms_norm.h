// rms_norm: y = x / sqrt(mean(x²) + eps) * weight, per row, optionally fused with the
// residual add of a pre-norm block:
//   if residual: residual[i] += x[i] (in place), then y = norm(residual) * weight.
// Per-head q/k norm (Qwen3) is the same op with rows = tokens × heads, n = head_dim.
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

struct RmsNormParams {
  const float* x = nullptr;       // [m, n]. Not owned. May alias y.
  float* residual = nullptr;      // [m, n] or null: when set, residual += x and the sum is normalised.
  const float* weight = nullptr;  // [n] f32. Not owned.
  float* y = nullptr;             // [m, n]; fully overwritten.
  int64_t m = 0, n = 0;
  float eps = 1e-6f;
  [[nodiscard]] Status check() const;
};

void RmsNormRef(const RmsNormParams& p);
void RmsNormCpu(const RmsNormParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void RmsNormCuda(const RmsNormParams& p, void* stream);
void RmsNorm(const ExecContext& ctx, const RmsNormParams& p);

}  // namespace tide
