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
void Add(const ExecContext& ctx, const AddParams& p);

}  // namespace tide
