// add: y[i] += alpha * x[i] over n values (residual adds that are not fused into a norm,
// weighted MoE expert combines).
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

struct AddParams {
  const float* x = nullptr;  // [n]
  float* y = nullptr;        // [n], updated in place
  int64_t n = 0;
  float alpha = 1.f;
  [[nodiscard]] Status check() const;
};

void AddRef(const AddParams& p);
void AddCpu(const AddParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void AddCuda(const AddParams& p, void* stream);
void Add(const ExecContext& ctx, const AddParams& p);

}  // namespace tide
