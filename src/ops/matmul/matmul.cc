#include "ops/matmul/matmul.h"

#include <string>

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
  return OkStatus();
}

void Matmul(const ExecContext& ctx, const MatmulParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      MatmulCpu(p, ctx.pool);
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
