// The reference: dequantise each weight row with the same DequantizeRow the loaders
// use, then a plain dot product accumulated in f64, so its own rounding error is far
// below the f32 kernels' and the tests measure only theirs.
#include <vector>

#include "ops/matmul/matmul.h"

namespace tide {

void MatmulRef(const MatmulParams& p) {
  const uint64_t row_bytes = DTypeBytes(p.w.dtype, static_cast<uint64_t>(p.k));
  std::vector<float> w_row(static_cast<size_t>(p.k));
  for (int64_t j = 0; j < p.n; ++j) {
    DequantizeRow(p.w.dtype, p.w.as<const uint8_t>() + static_cast<uint64_t>(j) * row_bytes,
                  w_row.data(), p.k);
    for (int64_t i = 0; i < p.m; ++i) {
      const float* x = p.x + i * p.k;
      double acc = p.bias != nullptr ? static_cast<double>(p.bias[j]) : 0.0;
      for (int64_t kk = 0; kk < p.k; ++kk) {
        acc += static_cast<double>(x[kk]) * static_cast<double>(w_row[static_cast<size_t>(kk)]);
      }
      p.y[i * p.n + j] = static_cast<float>(acc);
    }
  }
}

}  // namespace tide
