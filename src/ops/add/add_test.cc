#include "ops/add/add.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

std::vector<float> RandomVec(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = rng.Uniform(-4.f, 4.f);
  return v;
}

TEST(AddTest, CpuMatchesRef) {
  Rng rng(1);
  ThreadPool pool3(3);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (int64_t n : {0, 1, 7, 8, 9, 1000, 100003}) {
      for (float alpha : {1.f, 0.37f, -2.f}) {
        const std::vector<float> x = RandomVec(rng, n);
        const std::vector<float> y0 = RandomVec(rng, n);
        std::vector<float> want = y0, got = y0;
        AddParams p{.x = x.data(), .y = want.data(), .n = n, .alpha = alpha};
        ASSERT_TRUE(p.check().ok());
        AddRef(p);
        p.y = got.data();
        Add(ExecContext{.pool = pool}, p);
        for (int64_t i = 0; i < n; ++i) {
          const float w = want[static_cast<size_t>(i)], g = got[static_cast<size_t>(i)];
          if (alpha == 1.f) {
            // A single f32 addition is correctly rounded, so it equals the f64 reference.
            ASSERT_EQ(g, w) << "n=" << n << " i=" << i;
          } else {
            // The kernel rounds alpha*x before adding (as PyTorch does), the reference
            // rounds once: at most about one ulp of each term apart.
            const float tol = 2.4e-7f * (std::fabs(alpha * x[static_cast<size_t>(i)]) + std::fabs(w)) + 1e-30f;
            ASSERT_NEAR(g, w, tol) << "n=" << n << " alpha=" << alpha << " i=" << i;
          }
        }
      }
    }
  }
}

TEST(AddTest, CheckRejectsBadParams) {
  float buf[4] = {1, 2, 3, 4};
  AddParams ok{.x = buf, .y = buf, .n = 4};
  EXPECT_TRUE(ok.check().ok());
  AddParams p = ok;
  p.n = -1;
  EXPECT_EQ(p.check().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.check().message().find("n"), std::string::npos);
  p = ok;
  p.x = nullptr;
  EXPECT_NE(p.check().message().find("x is null"), std::string::npos);
  p = ok;
  p.y = nullptr;
  EXPECT_NE(p.check().message().find("y is null"), std::string::npos);
  p.n = 0;  // nothing to touch: null pointers are fine
  p.x = nullptr;
  EXPECT_TRUE(p.check().ok());
}

}  // namespace
}  // namespace tide
