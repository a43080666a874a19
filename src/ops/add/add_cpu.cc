// The product and the sum are rounded separately (no FMA), as PyTorch does for
// `y + alpha * x`; with alpha = 1 (residual adds) the result is then the exact f32 sum.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <immintrin.h>

#include "backend/cpu/thread_pool.h"
#include "ops/add/add.h"

namespace tide {
namespace {

void AddRange(const float* x, float* y, float alpha, int64_t begin, int64_t end) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 ax = _mm256_mul_ps(va, _mm256_loadu_ps(x + i));
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), ax));
  }
  for (; i < end; ++i) y[i] = y[i] + alpha * x[i];
}

// Below this many elements per thread, waking the pool costs more than the adds.
constexpr int64_t kGrain = 1 << 15;

}  // namespace

void AddCpu(const AddParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    AddRange(p.x, p.y, p.alpha, 0, p.n);
    return;
  }
  pool->ParallelFor(p.n, kGrain, [&](int64_t b, int64_t e) { AddRange(p.x, p.y, p.alpha, b, e); });
}

}  // namespace tide
