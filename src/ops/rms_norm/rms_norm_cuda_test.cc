#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/rms_norm/rms_norm.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> RandomVec(Rng& rng, int64_t n, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = rng.Uniform(lo, hi);
  return v;
}

TEST(RmsNormCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(3);
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {1, 7}, {5, 33}, {7, 4096}, {64, 896}, {3, 5120}, {40, 128}};
  for (auto [m, n] : shapes) {
    for (bool fused : {false, true}) {
      const std::vector<float> x = RandomVec(rng, m * n, -3.f, 3.f), w = RandomVec(rng, n, 0.5f, 1.5f);
      const std::vector<float> r0 = RandomVec(rng, m * n, -3.f, 3.f);
      std::vector<float> want(x.size(), kNaN), r_want = r0;
      RmsNormParams p{.x = x.data(), .residual = fused ? r_want.data() : nullptr, .weight = w.data(),
                      .y = want.data(), .m = m, .n = n, .eps = 1e-5f};
      ASSERT_TRUE(p.check().ok());
      RmsNormRef(p);
      DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w), dr = testing::Upload(r0);
      DeviceBuffer dy = testing::Upload(std::vector<float>(x.size(), kNaN));
      RmsNorm(testing::CudaCtx(), RmsNormParams{.x = dx.as<float>(), .residual = fused ? dr.as<float>() : nullptr,
                                                .weight = dw.as<float>(), .y = dy.as<float>(), .m = m, .n = n,
                                                .eps = 1e-5f});
      const std::vector<float> got = testing::Download<float>(dy, x.size());
      const std::vector<float> r_got = testing::Download<float>(dr, x.size());
      for (size_t i = 0; i < want.size(); ++i) {
        // f32 sum of squares in a different order than the CPU's (per-thread strides,
        // then a tree), rsqrtf (2 ulp), two multiplies: 4e-6 relative, as on the CPU.
        ASSERT_NEAR(got[i], want[i], 4e-6f * std::fabs(want[i]) + 1e-30f) << "m=" << m << " n=" << n << " i=" << i;
        if (fused) {
          ASSERT_EQ(r_got[i], r_want[i]);  // one f32 add in both: exact
        }
      }
    }
  }
}

TEST(RmsNormCudaTest, InPlacePerHeadNorm) {
  TIDE_REQUIRE_CUDA();
  Rng rng(4);
  const int64_t m = 24, n = 128;  // e.g. 3 tokens x 8 heads of q, normalised in place
  const std::vector<float> x = RandomVec(rng, m * n, -2.f, 2.f), w = RandomVec(rng, n, 0.5f, 1.5f);
  std::vector<float> want(x.size(), kNaN);
  RmsNormRef(RmsNormParams{.x = x.data(), .weight = w.data(), .y = want.data(), .m = m, .n = n});
  DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w);
  RmsNorm(testing::CudaCtx(), RmsNormParams{.x = dx.as<float>(), .weight = dw.as<float>(), .y = dx.as<float>(), .m = m, .n = n});
  const std::vector<float> got = testing::Download<float>(dx, x.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 4e-6f * std::fabs(want[i]) + 1e-30f) << i;
}

}  // namespace
}  // namespace tide
