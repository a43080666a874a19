#include "ops/add/add.h"

#include <string>

#include "base/check.h"

namespace tide {

Status AddParams::check() const {
  if (n < 0) return InvalidArgument("add: n must be >= 0, got " + std::to_string(n));
  if (n > 0 && x == nullptr) return InvalidArgument("add: x is null");
  if (n > 0 && y == nullptr) return InvalidArgument("add: y is null");
  return OkStatus();
}

void Add(const ExecContext& ctx, const AddParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      AddCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      AddCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  // An ExecContext for a backend that is not built is a programming error.
  TIDE_CHECK(false && "add: no kernel for this device");
}

}  // namespace tide
