// The definition: split the stacked rows into q, k, v, then Rope and CacheWrite.
#include <cstring>
#include <vector>

#include "ops/rope_cache_write/rope_cache_write.h"

namespace tide {

void RopeCacheWriteComposed(const RopeCacheWriteParams& p, const std::function<void(const RopeParams&)>& rope,
                            const std::function<void(const CacheWriteParams&)>& cache_write) {
  const int64_t q_dim = int64_t{p.n_heads} * p.head_dim, kv_dim = int64_t{p.n_kv_heads} * p.head_dim;
  std::vector<float> k(static_cast<size_t>(p.n_tokens * kv_dim)), v(k.size());
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const float* row = p.qkv + t * p.qkv_stride;
    std::memcpy(p.q_out + t * q_dim, row, static_cast<size_t>(q_dim) * 4);
    std::memcpy(k.data() + t * kv_dim, row + q_dim, static_cast<size_t>(kv_dim) * 4);
    std::memcpy(v.data() + t * kv_dim, row + q_dim + kv_dim, static_cast<size_t>(kv_dim) * 4);
  }
  RopeParams rp;
  rp.q = p.q_out;
  rp.k = k.data();
  rp.positions = p.positions;
  rp.inv_freq = p.inv_freq;
  rp.n_tokens = p.n_tokens;
  rp.n_heads = p.n_heads;
  rp.n_kv_heads = p.n_kv_heads;
  rp.head_dim = p.head_dim;
  rp.rotary_dim = p.rotary_dim;
  rp.style = p.style;
  rope(rp);
  CacheWriteParams cw;
  cw.k = k.data();
  cw.v = v.data();
  cw.k_cache = p.k_cache;
  cw.v_cache = p.v_cache;
  cw.slots = p.slots;
  cw.n_tokens = p.n_tokens;
  cw.num_blocks = p.num_blocks;
  cw.block_size = p.block_size;
  cw.n_kv_heads = p.n_kv_heads;
  cw.head_dim = p.head_dim;
  cache_write(cw);
}

void RopeCacheWriteRef(const RopeCacheWriteParams& p) {
  RopeCacheWriteComposed(
      p, [](const RopeParams& rp) { RopeRef(rp); }, [](const CacheWriteParams& cw) { CacheWriteRef(cw); });
}

}  // namespace tide
