// KvCache: the paged K/V storage of every layer. Each layer has a K pool and a V pool of
// [num_blocks, block_size, n_kv_heads, head_dim] f32 values; which block belongs to
// which sequence is the engine's business (block tables), not the cache's.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"

namespace tide {

struct KvCacheShape {
  int num_layers = 0;
  int64_t num_blocks = 0;
  int block_size = 16;
  int n_kv_heads = 0;
  int head_dim = 0;

  [[nodiscard]] int64_t FloatsPerLayer() const { return num_blocks * block_size * n_kv_heads * head_dim; }
  [[nodiscard]] int64_t BytesTotal() const { return 2 * int64_t{num_layers} * FloatsPerLayer() * 4; }
};

class KvCache {
 public:
  // kResourceExhausted when the allocation fails; kInvalidArgument for a bad shape.
  static Result<KvCache> Create(const KvCacheShape& shape);

  [[nodiscard]] const KvCacheShape& shape() const noexcept { return shape_; }
  float* k(int layer) { return k_[static_cast<size_t>(layer)].data(); }
  float* v(int layer) { return v_[static_cast<size_t>(layer)].data(); }

 private:
  KvCacheShape shape_;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace tide
