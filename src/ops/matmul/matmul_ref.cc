// The reference: dequantise each weight row with the same DequantizeRow the loaders
// use, then a plain dot product accumulated in f64, so its own rounding error is far
// below the f32 kernels' and the tests measure only theirs.
#include <cmath>
#include <vector>

#include "ops/matmul/matmul.h"

namespace tide {

void MatmulRef(const MatmulParams& p) {
  const uint64_t row_bytes = DTypeBytes(p.w.dtype, static_cast<uint64_t>(p.k));
  std::vector<float> w_row(static_cast<size_t>(p.k));
  // The fused prologue, in f64: xd[i] is the row of x the product reads.
  std::vector<double> xd(static_cast<size_t>(p.m * p.k));
  for (int64_t i = 0; i < p.m; ++i) {
    double* xr = xd.data() + i * p.k;
    if (p.silu_mul) {
      const float* g = p.x + i * 2 * p.k;
      for (int64_t c = 0; c < p.k; ++c) {
        const double gv = g[c];
        xr[c] = gv / (1.0 + std::exp(-gv)) * static_cast<double>(g[p.k + c]);
      }
    } else {
      const float* s = p.x + i * p.k;
      double inv = 1.0;
      if (p.norm_weight != nullptr) {
        double sum = 0;
        for (int64_t c = 0; c < p.k; ++c) sum += static_cast<double>(s[c]) * s[c];
        inv = 1.0 / std::sqrt(sum / static_cast<double>(p.k) + p.norm_eps);
      }
      for (int64_t c = 0; c < p.k; ++c)
        xr[c] = static_cast<double>(s[c]) * inv * (p.norm_weight != nullptr ? p.norm_weight[c] : 1.0);
    }
  }
  for (int64_t j = 0; j < p.n; ++j) {
    DequantizeRow(p.w.dtype, p.w.as<const uint8_t>() + static_cast<uint64_t>(j) * row_bytes,
                  w_row.data(), p.k);
    for (int64_t i = 0; i < p.m; ++i) {
      const double* x = xd.data() + i * p.k;
      double acc = p.bias != nullptr ? static_cast<double>(p.bias[j]) : 0.0;
      for (int64_t kk = 0; kk < p.k; ++kk) acc += x[kk] * static_cast<double>(w_row[static_cast<size_t>(kk)]);
      if (p.accumulate) acc += static_cast<double>(p.y[i * p.n + j]);
      p.y[i * p.n + j] = static_cast<float>(acc);
    }
  }
}

}  // namespace tide
