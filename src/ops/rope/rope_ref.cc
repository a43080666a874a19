// The angle is the f32 product float(pos) * inv_freq, because that *is* the op's
// definition (Hugging Face forms it in f32); everything after it is f64.
#include <cmath>

#include "ops/rope/rope.h"

namespace tide {
namespace {

void RotateRef(float* x, int n_heads, const RopeParams& p, int32_t pos) {
  const int half = p.rotary_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * p.head_dim;
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * p.inv_freq[i];
      const double c = std::cos(static_cast<double>(angle)), s = std::sin(static_cast<double>(angle));
      const int a = p.style == RopeStyle::kNeox ? i : 2 * i;
      const int b = p.style == RopeStyle::kNeox ? i + half : 2 * i + 1;
      const double xa = v[a], xb = v[b];
      v[a] = static_cast<float>(xa * c - xb * s);
      v[b] = static_cast<float>(xb * c + xa * s);
    }
  }
}

}  // namespace

void RopeRef(const RopeParams& p) {
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    RotateRef(p.q + t * p.n_heads * p.head_dim, p.n_heads, p, p.positions[t]);
    if (p.k != nullptr) RotateRef(p.k + t * p.n_kv_heads * p.head_dim, p.n_kv_heads, p, p.positions[t]);
  }
}

}  // namespace tide
