#include "ops/rope_cache_write/rope_cache_write.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/rope_cache_write/rope_cache_write_test_util.h"

namespace tide {
namespace {

TEST(RopeCacheWriteTest, CpuMatchesRef) {
  Rng rng(11);
  ThreadPool pool3(3);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (const auto& c : testing::RopeCacheWriteCases()) {
      const testing::RopeCacheWriteData d = testing::MakeRopeCacheWriteData(c, rng);
      const size_t q_size = static_cast<size_t>(c.n_tokens * c.n_heads * c.head_dim);
      std::vector<float> q_want(q_size, std::numeric_limits<float>::quiet_NaN()), q_got = q_want;
      std::vector<float> kc_want = d.k_cache, vc_want = d.v_cache, kc_got = d.k_cache, vc_got = d.v_cache;
      RopeCacheWriteParams p = testing::RopeCacheWriteParamsFor(c, d);
      p.q_out = q_want.data();
      p.k_cache = kc_want.data();
      p.v_cache = vc_want.data();
      ASSERT_TRUE(p.check().ok()) << p.check().ToString();
      RopeCacheWriteRef(p);
      p.q_out = q_got.data();
      p.k_cache = kc_got.data();
      p.v_cache = vc_got.data();
      RopeCacheWrite(ExecContext{.pool = pool}, p);
      // As ops/rope's CPU test: f32 rotation against the f64 reference.
      for (size_t i = 0; i < q_size; ++i) ASSERT_NEAR(q_got[i], q_want[i], 2e-6f) << "q " << i;
      for (size_t i = 0; i < kc_want.size(); ++i) ASSERT_NEAR(kc_got[i], kc_want[i], 2e-6f) << "k cache " << i;
      EXPECT_EQ(vc_got, vc_want);  // a copy: exact
      EXPECT_NE(vc_got, d.v_cache);
    }
  }
}

TEST(RopeCacheWriteTest, CheckRejectsBadSlotsAndStride) {
  Rng rng(12);
  const auto& c = testing::RopeCacheWriteCases()[1];
  testing::RopeCacheWriteData d = testing::MakeRopeCacheWriteData(c, rng);
  std::vector<float> q(static_cast<size_t>(c.n_tokens * c.n_heads * c.head_dim));
  RopeCacheWriteParams p = testing::RopeCacheWriteParamsFor(c, d);
  p.q_out = q.data();
  p.k_cache = d.k_cache.data();
  p.v_cache = d.v_cache.data();
  ASSERT_TRUE(p.check().ok());
  d.slots[3] = c.num_blocks * c.block_size;
  EXPECT_FALSE(p.check().ok());
  d.slots[3] = -2;
  EXPECT_FALSE(p.check().ok());
  d.slots[3] = -1;
  p.qkv_stride = int64_t{c.n_heads + 2 * c.n_kv_heads} * c.head_dim - 1;
  EXPECT_FALSE(p.check().ok());
}

}  // namespace
}  // namespace tide
