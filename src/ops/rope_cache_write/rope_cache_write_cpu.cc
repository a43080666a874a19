// On the CPU the model keeps separate q/k/v projections (bit-identical to before the
// fused op existed), so this is only the composition of the CPU kernels, for tests and
// for callers that stack the projection anyway.
#include "ops/rope_cache_write/rope_cache_write.h"

namespace tide {

void RopeCacheWriteCpu(const RopeCacheWriteParams& p, ThreadPool* pool) {
  RopeCacheWriteComposed(
      p, [pool](const RopeParams& rp) { RopeCpu(rp, pool); },
      [pool](const CacheWriteParams& cw) { CacheWriteCpu(cw, pool); });
}

}  // namespace tide
