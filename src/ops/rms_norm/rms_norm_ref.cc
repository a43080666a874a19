#include <cmath>

#include "ops/rms_norm/rms_norm.h"

namespace tide {

void RmsNormRef(const RmsNormParams& p) {
  for (int64_t i = 0; i < p.m; ++i) {
    const float* x = p.x + i * p.n;
    float* y = p.y + i * p.n;
    const float* src = x;
    if (p.residual != nullptr) {
      float* r = p.residual + i * p.n;
      for (int64_t j = 0; j < p.n; ++j) r[j] = r[j] + x[j];  // the residual stream is f32
      src = r;
    }
    double sum = 0;
    for (int64_t j = 0; j < p.n; ++j) sum += static_cast<double>(src[j]) * src[j];
    const double inv = 1.0 / std::sqrt(sum / static_cast<double>(p.n) + p.eps);
    for (int64_t j = 0; j < p.n; ++j) {
      y[j] = static_cast<float>(static_cast<double>(p.weight[j]) * (src[j] * inv));
    }
  }
}

}  // namespace tide
