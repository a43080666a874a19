#include "kv/block_pool.h"

#include "base/check.h"

namespace tide {

BlockPool::BlockPool(int64_t num_blocks) : num_blocks_(num_blocks) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
  ref_count_.assign(static_cast<size_t>(num_blocks), 0);
}

std::vector<int32_t> BlockPool::allocate(int64_t n) {
  TIDE_CHECK_LE(n, num_free());
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int32_t b = free_.back();
    free_.pop_back();
    ref_count_[static_cast<size_t>(b)] = 1;
    out.push_back(b);
  }
  return out;
}

void BlockPool::release(const std::vector<int32_t>& blocks) {
  for (int32_t b : blocks) {
    TIDE_CHECK_GT(ref_count_[static_cast<size_t>(b)], 0);
    if (--ref_count_[static_cast<size_t>(b)] == 0) free_.push_back(b);
  }
}

}  // namespace tide
