#include <cmath>

#include "ops/silu_mul/silu_mul.h"

namespace tide {

void SiluMulRef(const SiluMulParams& p) {
  for (int64_t i = 0; i < p.m; ++i) {
    const float* gate = p.gate_up + i * 2 * p.n;
    const float* up = gate + p.n;
    for (int64_t j = 0; j < p.n; ++j) {
      const double g = gate[j];
      p.out[i * p.n + j] = static_cast<float>(g / (1.0 + std::exp(-g)) * static_cast<double>(up[j]));
    }
  }
}

}  // namespace tide
