#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/cache_write/cache_write.h"

namespace tide {
namespace {

TEST(CacheWriteCudaTest, MatchesRefExactly) {
  TIDE_REQUIRE_CUDA();
  Rng rng(6);
  const int64_t num_blocks = 9, n_tokens = 23;
  const int bs = 4, kvh = 2, hd = 24;
  const int64_t row = kvh * hd;
  // Distinct slots in a shuffled order, a few -1 (padding).
  std::vector<int64_t> all(static_cast<size_t>(num_blocks * bs));
  std::iota(all.begin(), all.end(), 0);
  for (size_t i = all.size() - 1; i > 0; --i) std::swap(all[i], all[rng.NextU64() % (i + 1)]);
  std::vector<int64_t> slots(all.begin(), all.begin() + n_tokens);
  slots[3] = slots[11] = -1;
  std::vector<float> k(static_cast<size_t>(n_tokens * row)), v(k.size());
  for (float& f : k) f = rng.Normal();
  for (float& f : v) f = rng.Normal();
  // The cache starts poisoned; untouched slots must stay NaN (compared bitwise).
  std::vector<float> kc(static_cast<size_t>(num_blocks * bs * row), std::numeric_limits<float>::quiet_NaN()), vc = kc;
  DeviceBuffer dk = testing::Upload(k), dv = testing::Upload(v), ds = testing::Upload(slots);
  DeviceBuffer dkc = testing::Upload(kc), dvc = testing::Upload(vc);
  CacheWriteParams p{k.data(), v.data(), kc.data(), vc.data(), slots.data(), n_tokens, num_blocks, bs, kvh, hd};
  ASSERT_TRUE(p.check().ok());
  CacheWriteRef(p);
  CacheWrite(testing::CudaCtx(), CacheWriteParams{dk.as<float>(), dv.as<float>(), dkc.as<float>(), dvc.as<float>(),
                                                  ds.as<int64_t>(), n_tokens, num_blocks, bs, kvh, hd});
  const std::vector<float> gk = testing::Download<float>(dkc, kc.size()), gv = testing::Download<float>(dvc, vc.size());
  EXPECT_EQ(0, std::memcmp(gk.data(), kc.data(), kc.size() * 4));  // a copy: bit-exact
  EXPECT_EQ(0, std::memcmp(gv.data(), vc.data(), vc.size() * 4));
}

}  // namespace
}  // namespace tide
