#include "kv/kv_cache.h"
#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <set>

namespace tide {
namespace {

TEST(BlockPoolTest, AllocateReleaseRoundTrip) {
  BlockPool pool(8);
  EXPECT_TRUE(pool.can_allocate(8));
  EXPECT_FALSE(pool.can_allocate(9));
  auto a = pool.allocate(5);
  std::set<int32_t> ids(a.begin(), a.end());
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(pool.num_free(), 3);
  pool.release(a);
  EXPECT_EQ(pool.num_free(), 8);
}

TEST(KvCacheTest, RejectsBadShape) {
  KvCacheShape s;
  EXPECT_FALSE(KvCache::Create(s).ok());
  s = {2, 4, 16, 2, 8};
  auto c = KvCache::Create(s);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->shape().FloatsPerLayer(), 4 * 16 * 2 * 8);
}

}  // namespace
}  // namespace tide
