#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/silu_mul/silu_mul.h"

namespace tide {
namespace {

TEST(SiluMulCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(2);
  for (auto [m, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {1, 14336}, {37, 896}}) {
    std::vector<float> gu(static_cast<size_t>(m * 2 * n));
    for (float& f : gu) f = rng.Uniform(-8.f, 8.f);
    std::vector<float> want(static_cast<size_t>(m * n), std::numeric_limits<float>::quiet_NaN());
    SiluMulParams p{gu.data(), want.data(), m, n};
    ASSERT_TRUE(p.check().ok());
    SiluMulRef(p);
    DeviceBuffer dgu = testing::Upload(gu);
    DeviceBuffer dout = testing::Upload(std::vector<float>(want.size(), std::numeric_limits<float>::quiet_NaN()));
    SiluMul(testing::CudaCtx(), SiluMulParams{dgu.as<float>(), dout.as<float>(), m, n});
    const std::vector<float> got = testing::Download<float>(dout, want.size());
    // expf (2 ulp), one add, one divide, one multiply in f32: under 8 ulp relative.
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-6f * std::fabs(want[i]) + 1e-30f) << "m=" << m << " n=" << n << " i=" << i;
  }
}

}  // namespace
}  // namespace tide
