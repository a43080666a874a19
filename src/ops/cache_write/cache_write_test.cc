#include "ops/cache_write/cache_write.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

std::vector<float> RandomVec(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = rng.Uniform(-1.f, 1.f);
  return v;
}

struct Case { int64_t n_tokens, num_blocks; int block_size, n_kv_heads, head_dim; };

TEST(CacheWriteTest, CpuMatchesRef) {
  Rng rng(6);
  ThreadPool pool3(3);
  const Case cases[] = {{1, 1, 1, 1, 1}, {5, 3, 4, 2, 8}, {17, 8, 16, 2, 13},
                        {300, 40, 16, 8, 128}, {64, 70, 1, 4, 64}, {33, 4, 32, 1, 256}};
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (const Case& c : cases) {
      const int64_t row = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
      const int64_t num_slots = c.num_blocks * c.block_size;
      ASSERT_LE(c.n_tokens, num_slots);
      // Distinct random slots (a shuffled prefix of all slots), some tokens skipped.
      std::vector<int64_t> all(static_cast<size_t>(num_slots));
      std::iota(all.begin(), all.end(), 0);
      for (int64_t i = num_slots - 1; i > 0; --i) {
        std::swap(all[static_cast<size_t>(i)], all[rng.NextU64() % static_cast<uint64_t>(i + 1)]);
      }
      std::vector<int64_t> slots(all.begin(), all.begin() + c.n_tokens);
      for (size_t t = 1; t < slots.size(); t += 3) slots[t] = -1;
      const std::vector<float> k = RandomVec(rng, c.n_tokens * row), v = RandomVec(rng, c.n_tokens * row);
      // Caches start with random old contents: slots not written must keep them.
      const std::vector<float> kc0 = RandomVec(rng, num_slots * row), vc0 = RandomVec(rng, num_slots * row);
      std::vector<float> kc_want = kc0, vc_want = vc0, kc_got = kc0, vc_got = vc0;
      CacheWriteParams p{.k = k.data(), .v = v.data(), .k_cache = kc_want.data(), .v_cache = vc_want.data(),
                         .slots = slots.data(), .n_tokens = c.n_tokens, .num_blocks = c.num_blocks,
                         .block_size = c.block_size, .n_kv_heads = c.n_kv_heads, .head_dim = c.head_dim};
      ASSERT_TRUE(p.check().ok()) << p.check().ToString();
      CacheWriteRef(p);
      p.k_cache = kc_got.data();
      p.v_cache = vc_got.data();
      CacheWrite(ExecContext{.pool = pool}, p);
      // A copy: exact.
      EXPECT_EQ(kc_got, kc_want);
      EXPECT_EQ(vc_got, vc_want);
      EXPECT_NE(kc_got, kc0);
    }
  }
}

TEST(CacheWriteTest, CheckRejectsBadParams) {
  float k[8] = {}, cache[64] = {};
  int64_t slots[2] = {0, 7};
  const CacheWriteParams ok{.k = k, .v = k, .k_cache = cache, .v_cache = cache, .slots = slots,
                            .n_tokens = 2, .num_blocks = 2, .block_size = 4, .n_kv_heads = 2, .head_dim = 2};
  EXPECT_TRUE(ok.check().ok());
  auto expect_bad = [](const CacheWriteParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  CacheWriteParams p = ok;
  p.n_tokens = -1;
  expect_bad(p, "n_tokens");
  p = ok;
  p.num_blocks = -1;
  expect_bad(p, "num_blocks");
  p = ok;
  p.block_size = 0;
  expect_bad(p, "block_size");
  p = ok;
  p.n_kv_heads = 0;
  expect_bad(p, "n_kv_heads");
  p = ok;
  p.head_dim = -4;
  expect_bad(p, "head_dim");
  p = ok;
  p.num_blocks = std::numeric_limits<int64_t>::max() / 2;
  expect_bad(p, "overflows");
  for (const char* field : {"k is null", "v is null", "slots is null", "k_cache is null", "v_cache is null"}) {
    p = ok;
    const std::string f = field;
    if (f == "k is null") p.k = nullptr;
    if (f == "v is null") p.v = nullptr;
    if (f == "slots is null") p.slots = nullptr;
    if (f == "k_cache is null") p.k_cache = nullptr;
    if (f == "v_cache is null") p.v_cache = nullptr;
    expect_bad(p, field);
  }
  for (int64_t bad_slot : {int64_t{-2}, int64_t{8}, int64_t{1} << 40, std::numeric_limits<int64_t>::min()}) {
    int64_t s2[2] = {0, bad_slot};
    p = ok;
    p.slots = s2;
    expect_bad(p, "slots[1]");
  }
  int64_t skipped[2] = {-1, -1};
  p = ok;
  p.slots = skipped;
  EXPECT_TRUE(p.check().ok());
  p.num_blocks = 0;  // all skipped: a cache with no blocks is fine
  EXPECT_TRUE(p.check().ok());
}

}  // namespace
}  // namespace tide
