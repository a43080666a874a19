#include "ops/rope_cache_write/rope_cache_write.h"

#include <limits>
#include <string>

#include "base/check.h"

namespace tide {

Status RopeCacheWriteParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("rope_cache_write: " + what); };
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + std::to_string(n_tokens));
  if (num_blocks < 0) return bad("num_blocks must be >= 0, got " + std::to_string(num_blocks));
  if (block_size <= 0) return bad("block_size must be > 0, got " + std::to_string(block_size));
  if (n_heads <= 0 || n_kv_heads <= 0) return bad("n_heads and n_kv_heads must be > 0");
  if (head_dim <= 0) return bad("head_dim must be > 0, got " + std::to_string(head_dim));
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim)
    return bad("rotary_dim must be even and in (0, head_dim], got " + std::to_string(rotary_dim));
  if (qkv_stride < static_cast<int64_t>(n_heads + 2 * n_kv_heads) * head_dim)
    return bad("qkv_stride " + std::to_string(qkv_stride) + " is shorter than q, k and v");
  if (num_blocks > std::numeric_limits<int64_t>::max() / block_size) return bad("num_blocks * block_size overflows");
  if (n_tokens == 0) return OkStatus();
  if (qkv == nullptr || q_out == nullptr || k_cache == nullptr || v_cache == nullptr || slots == nullptr ||
      positions == nullptr || inv_freq == nullptr)
    return bad("a pointer is null");
  const int64_t num_slots = num_blocks * block_size;
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (slots[t] < -1 || slots[t] >= num_slots)
      return bad("slots[" + std::to_string(t) + "] = " + std::to_string(slots[t]) + " is outside [-1, " +
                 std::to_string(num_slots) + ")");
  }
  return OkStatus();
}

void RopeCacheWrite(const ExecContext& ctx, const RopeCacheWriteParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      RopeCacheWriteCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      RopeCacheWriteCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "rope_cache_write: no kernel for this device");
}

}  // namespace tide
