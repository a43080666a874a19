// Arithmetic follows Hugging Face in f32: angle = float(pos) * inv_freq (one f32
// product), cos/sin of that in f32 (glibc's cosf/sinf, correctly reduced for any
// argument), then x * cos + rotate_half(x) * sin with each product rounded before the
// add (no FMA). cos/sin are computed once per token and shared by all its q and k heads.
// The f32 angle is off the exact one by up to half an ulp (2^-9 rad near 32k), exactly as
// in HF; matching HF matters more here than being closer to the real numbers.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <immintrin.h>

#include <cmath>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/rope/rope.h"

namespace tide {
namespace {

// Per-token tables. kNeox: cos/sin per pair i (length rot/2). kInterleaved: expanded to
// the rotated lanes, cos = [c0 c0 c1 c1 ...] and sin = [-s0 s0 -s1 s1 ...] (length rot),
// so that out = x * cos + swap_pairs(x) * sin.
struct Tables {
  std::vector<float> cos, sin;
};

void FillTables(const RopeParams& p, int32_t pos, Tables* t) {
  const int half = p.rotary_dim / 2;
  const float fpos = static_cast<float>(pos);
  for (int i = 0; i < half; ++i) {
    const float angle = fpos * p.inv_freq[i];
    const float c = std::cos(angle), s = std::sin(angle);
    if (p.style == RopeStyle::kNeox) {
      t->cos[static_cast<size_t>(i)] = c;
      t->sin[static_cast<size_t>(i)] = s;
    } else {
      t->cos[static_cast<size_t>(2 * i)] = c;
      t->cos[static_cast<size_t>(2 * i + 1)] = c;
      t->sin[static_cast<size_t>(2 * i)] = -s;
      t->sin[static_cast<size_t>(2 * i + 1)] = s;
    }
  }
}

void RotateNeox(float* v, int half, const float* c, const float* s) {
  float* v2 = v + half;
  int i = 0;
  for (; i + 8 <= half; i += 8) {
    const __m256 x1 = _mm256_loadu_ps(v + i), x2 = _mm256_loadu_ps(v2 + i);
    const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
    _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(x1, vc), _mm256_mul_ps(x2, vs)));
    _mm256_storeu_ps(v2 + i, _mm256_add_ps(_mm256_mul_ps(x2, vc), _mm256_mul_ps(x1, vs)));
  }
  for (; i < half; ++i) {
    const float x1 = v[i], x2 = v2[i];
    v[i] = x1 * c[i] - x2 * s[i];
    v2[i] = x2 * c[i] + x1 * s[i];
  }
}

void RotateInterleaved(float* v, int rot, const float* c, const float* s) {
  int i = 0;
  for (; i + 8 <= rot; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    const __m256 swapped = _mm256_permute_ps(x, 0xB1);  // lanes (1,0,3,2) in each 128-bit half
    const __m256 r = _mm256_add_ps(_mm256_mul_ps(x, _mm256_loadu_ps(c + i)),
                                   _mm256_mul_ps(swapped, _mm256_loadu_ps(s + i)));
    _mm256_storeu_ps(v + i, r);
  }
  for (; i < rot; i += 2) {
    const float x0 = v[i], x1 = v[i + 1];
    v[i] = x0 * c[i] + x1 * s[i];
    v[i + 1] = x1 * c[i + 1] + x0 * s[i + 1];
  }
}

void RotateHeads(const RopeParams& p, float* x, int n_heads, const Tables& t) {
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * p.head_dim;
    if (p.style == RopeStyle::kNeox) {
      RotateNeox(v, p.rotary_dim / 2, t.cos.data(), t.sin.data());
    } else {
      RotateInterleaved(v, p.rotary_dim, t.cos.data(), t.sin.data());
    }
  }
}

void RopeTokens(const RopeParams& p, int64_t begin, int64_t end) {
  Tables t;  // once per chunk of tokens
  t.cos.resize(static_cast<size_t>(p.rotary_dim));
  t.sin.resize(static_cast<size_t>(p.rotary_dim));
  for (int64_t tok = begin; tok < end; ++tok) {
    FillTables(p, p.positions[tok], &t);
    RotateHeads(p, p.q + tok * p.n_heads * p.head_dim, p.n_heads, t);
    if (p.k != nullptr) RotateHeads(p, p.k + tok * p.n_kv_heads * p.head_dim, p.n_kv_heads, t);
  }
}

// A decode token (40 heads x 128) is ~5k values: one thread; prefill spreads out.
constexpr int64_t kGrainElems = 1 << 14;

}  // namespace

void RopeCpu(const RopeParams& p, ThreadPool* pool) {
  if (p.n_tokens == 0) return;
  if (pool == nullptr) {
    RopeTokens(p, 0, p.n_tokens);
    return;
  }
  const int64_t per_token = static_cast<int64_t>(p.n_heads + (p.k ? p.n_kv_heads : 0)) * p.rotary_dim;
  const int64_t grain = (kGrainElems + per_token - 1) / per_token;
  pool->ParallelFor(p.n_tokens, grain, [&](int64_t b, int64_t e) { RopeTokens(p, b, e); });
}

}  // namespace tide
