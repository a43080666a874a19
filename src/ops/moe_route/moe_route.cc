#include "ops/moe_route/moe_route.h"

#include <string>

#include "base/check.h"

namespace tide {

Status MoeRouteParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("moe_route: " + what); };
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + std::to_string(n_tokens));
  if (n_experts <= 0) return bad("n_experts must be > 0, got " + std::to_string(n_experts));
  if (top_k <= 0 || top_k > n_experts) {
    return bad("top_k must be in [1, n_experts = " + std::to_string(n_experts) + "], got " +
               std::to_string(top_k));
  }
  if (n_tokens == 0) return OkStatus();
  if (logits == nullptr) return bad("logits is null");
  if (expert_ids == nullptr) return bad("expert_ids is null");
  if (weights == nullptr) return bad("weights is null");
  return OkStatus();
}

void MoeRoute(const ExecContext& ctx, const MoeRouteParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      MoeRouteCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      MoeRouteCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "moe_route: no kernel for this device");
}

}  // namespace tide
