#include "ops/rms_norm/rms_norm.h"

#include <cmath>
#include <string>

#include "base/check.h"

namespace tide {

Status RmsNormParams::check() const {
  if (m < 0) return InvalidArgument("rms_norm: m must be >= 0, got " + std::to_string(m));
  if (n <= 0) return InvalidArgument("rms_norm: n must be > 0, got " + std::to_string(n));
  if (!(std::isfinite(eps) && eps >= 0.f)) {
    return InvalidArgument("rms_norm: eps must be finite and >= 0, got " + std::to_string(eps));
  }
  if (weight == nullptr) return InvalidArgument("rms_norm: weight is null");
  if (m > 0) {
    if (x == nullptr) return InvalidArgument("rms_norm: x is null");
    if (y == nullptr) return InvalidArgument("rms_norm: y is null");
    if (residual != nullptr && (residual == y || residual == x)) {
      return InvalidArgument("rms_norm: residual must not alias x or y");
    }
  }
  return OkStatus();
}

void RmsNorm(const ExecContext& ctx, const RmsNormParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      RmsNormCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      RmsNormCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "rms_norm: no kernel for this device");
}

}  // namespace tide
