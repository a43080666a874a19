#include "ops/silu_mul/silu_mul.h"

#include <string>

#include "base/check.h"

namespace tide {

Status SiluMulParams::check() const {
  if (m < 0) return InvalidArgument("silu_mul: m must be >= 0, got " + std::to_string(m));
  if (n < 0) return InvalidArgument("silu_mul: n must be >= 0, got " + std::to_string(n));
  if (m > 0 && n > 0) {
    if (gate_up == nullptr) return InvalidArgument("silu_mul: gate_up is null");
    if (out == nullptr) return InvalidArgument("silu_mul: out is null");
  }
  return OkStatus();
}

void SiluMul(const ExecContext& ctx, const SiluMulParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      SiluMulCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      SiluMulCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "silu_mul: no kernel for this device");
}

}  // namespace tide
