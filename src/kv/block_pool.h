// BlockPool: KV block ids and their reference counts (see block_pool.cc).
#pragma once

#include <cstdint>
#include <vector>

namespace tide {

// BlockPool: owns KV block ids and their reference counts. Check, then commit:
// can_allocate(n) -> allocate(n). Not thread-safe (the engine thread owns it).
class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);

  [[nodiscard]] int64_t num_blocks() const noexcept { return num_blocks_; }
  [[nodiscard]] int64_t num_free() const noexcept { return static_cast<int64_t>(free_.size()); }
  [[nodiscard]] bool can_allocate(int64_t n) const noexcept { return n <= num_free(); }
  // REQUIRES: can_allocate(n). Returns n block ids, each with reference count 1.
  std::vector<int32_t> allocate(int64_t n);
  // Drops one reference of each block; a block whose count reaches 0 is free again.
  void release(const std::vector<int32_t>& blocks);

 private:
  int64_t num_blocks_;
  std::vector<int32_t> free_;      // LIFO: a just-freed block is still warm in cache
  std::vector<int32_t> ref_count_;
};

}  // namespace tide
