#include <cstring>

#include "backend/cpu/thread_pool.h"
#include "ops/cache_write/cache_write.h"

namespace tide {
namespace {

// With the cache laid out [block, offset, head, dim], a slot's K (or V) row is
// contiguous, so each token is two memcpys.
void WriteTokens(const CacheWriteParams& p, int64_t begin, int64_t end) {
  const int64_t row = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
  const size_t bytes = static_cast<size_t>(row) * sizeof(float);
  for (int64_t t = begin; t < end; ++t) {
    const int64_t slot = p.slots[t];
    if (slot < 0) continue;
    std::memcpy(p.k_cache + slot * row, p.k + t * row, bytes);
    std::memcpy(p.v_cache + slot * row, p.v + t * row, bytes);
  }
}

// Copies are memory-bound; threads help only once there are megabytes to move.
constexpr int64_t kGrainElems = 1 << 16;

}  // namespace

void CacheWriteCpu(const CacheWriteParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    WriteTokens(p, 0, p.n_tokens);
    return;
  }
  const int64_t row = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
  const int64_t grain = (kGrainElems + row - 1) / row;
  pool->ParallelFor(p.n_tokens, grain, [&](int64_t b, int64_t e) { WriteTokens(p, b, e); });
}

}  // namespace tide
