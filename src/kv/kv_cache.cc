#include "kv/kv_cache.h"

#include <limits>
#include <new>

#include "base/check.h"

namespace tide {

Result<KvCache> KvCache::Create(const KvCacheShape& s, DeviceKind device) {
  if (s.num_layers <= 0 || s.num_blocks <= 0 || s.block_size <= 0 || s.n_kv_heads <= 0 || s.head_dim <= 0)
    return InvalidArgument("KV cache shape must be positive in every dimension");
  KvCache c;
  c.shape_ = s;
  c.device_ = device;
  if (device == DeviceKind::kCuda) {
    const int64_t per_layer = s.FloatsPerLayer();
    if (per_layer > std::numeric_limits<int64_t>::max() / 8 / s.num_layers)
      return InvalidArgument("KV cache shape overflows");
    ASSIGN_OR_RETURN(c.device_pools_, DeviceBuffer::Allocate(device, s.BytesTotal()));
    RETURN_IF_ERROR(FillZero(ExecContext{.device = device}, c.device_pools_.data(), s.BytesTotal()));
    RETURN_IF_ERROR(Synchronize(ExecContext{.device = device}));
    return c;
  }
  try {
    c.k_.resize(static_cast<size_t>(s.num_layers));
    c.v_.resize(static_cast<size_t>(s.num_layers));
    for (int l = 0; l < s.num_layers; ++l) {
      c.k_[static_cast<size_t>(l)].assign(static_cast<size_t>(s.FloatsPerLayer()), 0.f);
      c.v_[static_cast<size_t>(l)].assign(static_cast<size_t>(s.FloatsPerLayer()), 0.f);
    }
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("cannot allocate " + std::to_string(s.BytesTotal() >> 20) + " MiB of KV cache");
  }
  return c;
}

}  // namespace tide
