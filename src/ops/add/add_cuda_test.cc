#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/add/add.h"

namespace tide {
namespace {

TEST(AddCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(1);
  for (int64_t n : {1, 7, 1000, 4096 * 3 + 5}) {
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (float& f : x) f = rng.Uniform(-3.f, 3.f);
    for (float& f : y) f = rng.Uniform(-3.f, 3.f);
    DeviceBuffer dx = testing::Upload(x), dy = testing::Upload(y);
    AddParams p{x.data(), y.data(), n, 0.37f};
    ASSERT_TRUE(p.check().ok());
    AddRef(p);
    Add(testing::CudaCtx(), AddParams{dx.as<float>(), dy.as<float>(), n, 0.37f});
    const std::vector<float> got = testing::Download<float>(dy, y.size());
    // One fused multiply-add per element against the reference's multiply then add:
    // at most one extra rounding, 1 ulp of |y|.
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(got[i], y[i], 2e-7f * (std::fabs(y[i]) + 3.f)) << i;
  }
}

}  // namespace
}  // namespace tide
