#include "ops/matmul/matmul.h"

#include <cmath>
#include <string>
#include <vector>

#include "base/check.h"

namespace tide {

Status MatmulParams::check() const {
  if (x == nullptr || y == nullptr || w.data == nullptr) {
    return InvalidArgument("matmul: x, y and w.data must be non-null");
  }
  if (m <= 0 || n <= 0 || k <= 0) {
    return InvalidArgument("matmul: m, n, k must be positive (got m=" + std::to_string(m) +
                           " n=" + std::to_string(n) + " k=" + std::to_string(k) + ")");
  }
  if (w.shape.ndim != 2 || w.shape[0] != n || w.shape[1] != k) {
    return InvalidArgument("matmul: w.shape " + w.shape.ToString() + " must be [n, k] = [" +
                           std::to_string(n) + ", " + std::to_string(k) + "]");
  }
  switch (w.dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
      break;
    default:
      return InvalidArgument("matmul: unsupported weight dtype " + std::string(DTypeName(w.dtype)));
  }
  const int block = GetDTypeInfo(w.dtype).block_elems;
  if (k % block != 0) {
    return InvalidArgument("matmul: k=" + std::to_string(k) + " is not a multiple of the " +
                           std::string(DTypeName(w.dtype)) + " block size " +
                           std::to_string(block));
  }
  if (norm_weight != nullptr && silu_mul) return InvalidArgument("matmul: norm_weight and silu_mul do not combine");
  if (fused() && m > kMatmulFusedMaxRows)
    return InvalidArgument("matmul: the fusions take at most " + std::to_string(kMatmulFusedMaxRows) + " rows (got m=" +
                           std::to_string(m) + ")");
  return OkStatus();
}

namespace {

// The fusions on the CPU: the unfused steps around MatmulCpu, with the same f32
// formulas as rms_norm and silu_mul (the model layer calls those ops there instead).
void MatmulCpuFused(const MatmulParams& p, ThreadPool* pool) {
  std::vector<float> x(static_cast<size_t>(p.m * p.k)), y;
  for (int64_t i = 0; i < p.m; ++i) {
    float* xr = x.data() + i * p.k;
    if (p.silu_mul) {
      const float* g = p.x + i * 2 * p.k;
      for (int64_t c = 0; c < p.k; ++c) xr[c] = g[c] / (1.f + std::exp(-g[c])) * g[p.k + c];
    } else if (p.norm_weight != nullptr) {
      const float* s = p.x + i * p.k;
      double sum = 0;
      for (int64_t c = 0; c < p.k; ++c) sum += static_cast<double>(s[c]) * s[c];
      const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(p.k) + p.norm_eps));
      for (int64_t c = 0; c < p.k; ++c) xr[c] = p.norm_weight[c] * (s[c] * inv);
    } else {
      for (int64_t c = 0; c < p.k; ++c) xr[c] = p.x[i * p.k + c];
    }
  }
  MatmulParams q = p;
  q.x = x.data();
  q.norm_weight = nullptr;
  q.silu_mul = false;
  q.accumulate = false;
  if (p.accumulate) {
    y.resize(static_cast<size_t>(p.m * p.n));
    q.y = y.data();
  }
  MatmulCpu(q, pool);
  if (p.accumulate)
    for (int64_t i = 0; i < p.m * p.n; ++i) p.y[i] += y[static_cast<size_t>(i)];
}

}  // namespace

void Matmul(const ExecContext& ctx, const MatmulParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      if (p.fused()) {
        MatmulCpuFused(p, ctx.pool);
      } else {
        MatmulCpu(p, ctx.pool);
      }
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      MatmulCuda(p, ctx.stream, ctx.precision);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  // A CUDA context in a build without CUDA: the model layer refuses to make one.
  TIDE_CHECK(ctx.device == DeviceKind::kCpu);
}

}  // namespace tide
