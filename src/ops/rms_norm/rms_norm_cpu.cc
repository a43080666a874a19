// Arithmetic order follows Hugging Face's LlamaRMSNorm in f32: var = mean(x²),
// x * rsqrt(var + eps), then weight * that (two roundings, no FMA).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <immintrin.h>

#include <cmath>

#include "backend/cpu/thread_pool.h"
#include "ops/rms_norm/rms_norm.h"

namespace tide {
namespace {

inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Sum of squares with a summation order that depends on n only (batch-invariance):
// four 8-lane accumulators over 32-wide steps, then 8-wide steps, then a fixed tree,
// then the scalar tail.
float SumSquares(const float* v, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m256 v0 = _mm256_loadu_ps(v + j), v1 = _mm256_loadu_ps(v + j + 8);
    const __m256 v2 = _mm256_loadu_ps(v + j + 16), v3 = _mm256_loadu_ps(v + j + 24);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
    a2 = _mm256_fmadd_ps(v2, v2, a2);
    a3 = _mm256_fmadd_ps(v3, v3, a3);
  }
  for (; j + 8 <= n; j += 8) {
    const __m256 v0 = _mm256_loadu_ps(v + j);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
  }
  float sum = HorizontalSum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; j < n; ++j) sum += v[j] * v[j];
  return sum;
}

void NormRow(const float* src, const float* w, float* y, int64_t n, float eps) {
  const float var = SumSquares(src, n) / static_cast<float>(n);
  const float inv = 1.f / std::sqrt(var + eps);
  const __m256 vinv = _mm256_set1_ps(inv);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 xn = _mm256_mul_ps(_mm256_loadu_ps(src + j), vinv);
    _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(w + j), xn));
  }
  for (; j < n; ++j) y[j] = w[j] * (src[j] * inv);
}

void AddInPlace(float* r, const float* x, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm256_storeu_ps(r + j, _mm256_add_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(x + j)));
  }
  for (; j < n; ++j) r[j] = r[j] + x[j];
}

void NormRows(const RmsNormParams& p, int64_t row_begin, int64_t row_end) {
  for (int64_t i = row_begin; i < row_end; ++i) {
    const float* src = p.x + i * p.n;
    if (p.residual != nullptr) {
      float* r = p.residual + i * p.n;
      AddInPlace(r, src, p.n);
      src = r;
    }
    NormRow(src, p.weight, p.y + i * p.n, p.n, p.eps);
  }
}

// Rows per thread chunk: enough elements that waking a worker pays off.
constexpr int64_t kGrainElems = 1 << 14;

}  // namespace

void RmsNormCpu(const RmsNormParams& p, ThreadPool* pool) {
  if (p.m == 0) return;
  if (pool == nullptr) {
    NormRows(p, 0, p.m);
    return;
  }
  const int64_t grain = (kGrainElems + p.n - 1) / p.n;
  pool->ParallelFor(p.m, grain, [&](int64_t b, int64_t e) { NormRows(p, b, e); });
}

}  // namespace tide
