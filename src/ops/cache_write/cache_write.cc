#include "ops/cache_write/cache_write.h"

#include <cstdint>
#include <limits>
#include <string>

#include "base/check.h"

namespace tide {

Status CacheWriteParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("cache_write: " + what); };
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + std::to_string(n_tokens));
  if (num_blocks < 0) return bad("num_blocks must be >= 0, got " + std::to_string(num_blocks));
  if (block_size <= 0) return bad("block_size must be > 0, got " + std::to_string(block_size));
  if (n_kv_heads <= 0) return bad("n_kv_heads must be > 0, got " + std::to_string(n_kv_heads));
  if (head_dim <= 0) return bad("head_dim must be > 0, got " + std::to_string(head_dim));
  if (num_blocks > std::numeric_limits<int64_t>::max() / block_size) {
    return bad("num_blocks * block_size overflows");
  }
  if (n_tokens == 0) return OkStatus();
  if (k == nullptr) return bad("k is null");
  if (v == nullptr) return bad("v is null");
  if (slots == nullptr) return bad("slots is null");
  if (k_cache == nullptr) return bad("k_cache is null");
  if (v_cache == nullptr) return bad("v_cache is null");
  const int64_t num_slots = num_blocks * block_size;
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (slots[t] < -1 || slots[t] >= num_slots) {
      return bad("slots[" + std::to_string(t) + "] = " + std::to_string(slots[t]) +
                 " is outside [-1, " + std::to_string(num_slots) + ")");
    }
  }
  return OkStatus();
}

void CacheWrite(const ExecContext& ctx, const CacheWriteParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      CacheWriteCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      CacheWriteCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "cache_write: no kernel for this device");
}

}  // namespace tide
