// Random cases for the rope_cache_write tests (CPU and CUDA): stacked q/k/v rows with
// padding past v, distinct random slots with some -1, caches with random old contents.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "base/rng.h"
#include "ops/rope_cache_write/rope_cache_write.h"

namespace tide::testing {

struct RopeCacheWriteCase {
  int64_t n_tokens, num_blocks;
  int block_size, n_heads, n_kv_heads, head_dim, rotary_dim;
  RopeStyle style;
};

inline const std::vector<RopeCacheWriteCase>& RopeCacheWriteCases() {
  static const std::vector<RopeCacheWriteCase> cases = {
      {1, 4, 16, 32, 8, 128, 128, RopeStyle::kNeox},        // Llama-3-8B decode
      {37, 8, 16, 8, 2, 128, 128, RopeStyle::kNeox},
      {5, 3, 4, 4, 4, 64, 32, RopeStyle::kNeox},            // partial rotary
      {13, 4, 8, 6, 3, 16, 16, RopeStyle::kInterleaved},
      {64, 70, 1, 4, 2, 16, 8, RopeStyle::kInterleaved}};
  return cases;
}

struct RopeCacheWriteData {
  std::vector<float> qkv, inv_freq, k_cache, v_cache;
  std::vector<int64_t> slots;
  std::vector<int32_t> positions;
  int64_t stride = 0;
};

inline RopeCacheWriteData MakeRopeCacheWriteData(const RopeCacheWriteCase& c, Rng& rng) {
  RopeCacheWriteData d;
  d.stride = int64_t{c.n_heads + 2 * c.n_kv_heads} * c.head_dim + 4;  // rows need not be packed
  d.qkv.resize(static_cast<size_t>(c.n_tokens * d.stride));
  for (float& f : d.qkv) f = rng.Uniform(-2.f, 2.f);
  RopeScaling none;
  d.inv_freq = RopeInvFreq(500000.0, c.rotary_dim, none);
  const int64_t num_slots = c.num_blocks * c.block_size;
  std::vector<int64_t> all(static_cast<size_t>(num_slots));
  std::iota(all.begin(), all.end(), 0);
  for (int64_t i = num_slots - 1; i > 0; --i) std::swap(all[static_cast<size_t>(i)], all[rng.NextU64() % static_cast<uint64_t>(i + 1)]);
  d.slots.assign(all.begin(), all.begin() + c.n_tokens);
  for (size_t t = 2; t < d.slots.size(); t += 5) d.slots[t] = -1;
  for (int64_t t = 0; t < c.n_tokens; ++t) d.positions.push_back(static_cast<int32_t>(t < 20 ? t : rng.NextU64() % 131072));
  d.k_cache.resize(static_cast<size_t>(num_slots * c.n_kv_heads * c.head_dim));
  d.v_cache.resize(d.k_cache.size());
  for (float& f : d.k_cache) f = rng.Uniform(-1.f, 1.f);
  for (float& f : d.v_cache) f = rng.Uniform(-1.f, 1.f);
  return d;
}

inline RopeCacheWriteParams RopeCacheWriteParamsFor(const RopeCacheWriteCase& c, const RopeCacheWriteData& d) {
  RopeCacheWriteParams p;
  p.qkv = d.qkv.data();
  p.qkv_stride = d.stride;
  p.slots = d.slots.data();
  p.positions = d.positions.data();
  p.inv_freq = d.inv_freq.data();
  p.n_tokens = c.n_tokens;
  p.num_blocks = c.num_blocks;
  p.block_size = c.block_size;
  p.n_heads = c.n_heads;
  p.n_kv_heads = c.n_kv_heads;
  p.head_dim = c.head_dim;
  p.rotary_dim = c.rotary_dim;
  p.style = c.style;
  return p;
}

}  // namespace tide::testing
