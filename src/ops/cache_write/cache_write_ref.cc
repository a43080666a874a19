#include "ops/cache_write/cache_write.h"

namespace tide {

void CacheWriteRef(const CacheWriteParams& p) {
  const int64_t row = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const int64_t slot = p.slots[t];
    if (slot < 0) continue;
    const int64_t block = slot / p.block_size, offset = slot % p.block_size;
    const int64_t dst = (block * p.block_size + offset) * row;
    for (int64_t i = 0; i < row; ++i) {
      p.k_cache[dst + i] = p.k[t * row + i];
      p.v_cache[dst + i] = p.v[t * row + i];
    }
  }
}

}  // namespace tide
