// silu_mul: the SwiGLU activation, out[i, j] = silu(gate[i, j]) * up[i, j], with
// silu(x) = x / (1 + e^-x). gate and up are the two halves of each row of `gate_up`
// ([m, 2n]: gate in columns [0, n), up in [n, 2n)) so the model can run one fused
// gate/up matmul.
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

struct SiluMulParams {
  const float* gate_up = nullptr;  // [m, 2n]
  float* out = nullptr;            // [m, n]
  int64_t m = 0, n = 0;
  [[nodiscard]] Status check() const;
};

void SiluMulRef(const SiluMulParams& p);
void SiluMulCpu(const SiluMulParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void SiluMulCuda(const SiluMulParams& p, void* stream);
void SiluMul(const ExecContext& ctx, const SiluMulParams& p);

}  // namespace tide
