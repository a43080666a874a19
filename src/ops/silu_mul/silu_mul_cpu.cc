#include <immintrin.h>

#include <cmath>

#include "backend/cpu/thread_pool.h"
#include "ops/silu_mul/silu_mul.h"

namespace tide {
namespace {

// e^x for 8 floats, within ~2 ulp: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6
// polynomial, 2^n built in the exponent bits. Inputs are clamped to [-87, 88] so that
// 2^n stays a normal float; silu only needs e^-g to saturate, not to be exact there.
inline __m256 Exp8(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 split in two so that n * ln2_hi is exact.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// silu(g) * up = g / (1 + e^-g) * up, in that order, as PyTorch's F.silu(g) * up.
void SiluMulRows(const SiluMulParams& p, int64_t row_begin, int64_t row_end) {
  const int64_t n = p.n;
  const __m256 one = _mm256_set1_ps(1.f);
  for (int64_t i = row_begin; i < row_end; ++i) {
    const float* gate = p.gate_up + i * 2 * n;
    const float* up = gate + n;
    float* out = p.out + i * n;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 g = _mm256_loadu_ps(gate + j);
      const __m256 e = Exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
      const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
      _mm256_storeu_ps(out + j, _mm256_mul_ps(s, _mm256_loadu_ps(up + j)));
    }
    for (; j < n; ++j) out[j] = gate[j] / (1.f + std::exp(-gate[j])) * up[j];
  }
}

constexpr int64_t kGrainElems = 1 << 14;

}  // namespace

void SiluMulCpu(const SiluMulParams& p, ThreadPool* pool) {
  if (p.m == 0 || p.n == 0) return;
  if (pool == nullptr) {
    SiluMulRows(p, 0, p.m);
    return;
  }
  const int64_t grain = (kGrainElems + p.n - 1) / p.n;
  pool->ParallelFor(p.m, grain, [&](int64_t b, int64_t e) { SiluMulRows(p, b, e); });
}

}  // namespace tide
