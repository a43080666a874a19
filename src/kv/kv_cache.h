// KvCache: the paged K/V storage of every layer. Each layer has a K pool and a V pool of
// [num_blocks, block_size, n_kv_heads, head_dim] f32 values; which block belongs to
// which sequence is the engine's business (block tables), not the cache's.
//
// The pools live on one device: host memory (kCpu) or GPU memory (kCuda, one
// allocation for all layers). k()/v() return pointers on that device.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/device_memory.h"
#include "backend/exec.h"
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
  // Zero-filled pools on `device`. kResourceExhausted when the allocation fails;
  // kInvalidArgument for a bad shape; kUnimplemented for kCuda without a usable GPU.
  static Result<KvCache> Create(const KvCacheShape& shape, DeviceKind device = DeviceKind::kCpu);

  [[nodiscard]] const KvCacheShape& shape() const noexcept { return shape_; }
  [[nodiscard]] DeviceKind device() const noexcept { return device_; }
  float* k(int layer) { return device_ == DeviceKind::kCpu ? k_[static_cast<size_t>(layer)].data() : Pool(2 * layer); }
  float* v(int layer) { return device_ == DeviceKind::kCpu ? v_[static_cast<size_t>(layer)].data() : Pool(2 * layer + 1); }

 private:
  float* Pool(int i) { return device_pools_.as<float>() + int64_t{i} * shape_.FloatsPerLayer(); }

  KvCacheShape shape_;
  DeviceKind device_ = DeviceKind::kCpu;
  std::vector<std::vector<float>> k_, v_;  // kCpu
  DeviceBuffer device_pools_;              // kCuda: K0 V0 K1 V1 ... back to back
};

}  // namespace tide
