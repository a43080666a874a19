#include "ops/silu_mul/silu_mul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(SiluMulTest, CpuMatchesRef) {
  Rng rng(2);
  ThreadPool pool3(3);
  struct Shape { int64_t m, n; };
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (Shape s : {Shape{1, 1}, Shape{1, 7}, Shape{3, 8}, Shape{5, 13}, Shape{4, 1024}, Shape{67, 1000}}) {
      std::vector<float> gu(static_cast<size_t>(s.m * 2 * s.n));
      for (float& f : gu) f = rng.Uniform(-12.f, 12.f);
      // Saturated gates: e^-g overflows (g << 0) or vanishes (g >> 0).
      gu[0] = -100.f;
      if (s.n > 1) gu[1] = 100.f;
      std::vector<float> want(static_cast<size_t>(s.m * s.n), kNaN), got = want;
      SiluMulParams p{.gate_up = gu.data(), .out = want.data(), .m = s.m, .n = s.n};
      ASSERT_TRUE(p.check().ok());
      SiluMulRef(p);
      p.out = got.data();
      SiluMul(ExecContext{.pool = pool}, p);
      for (size_t i = 0; i < got.size(); ++i) {
        // Kernel: polynomial e^x (~2 ulp), then an add, a divide and a multiply in f32;
        // the reference is f64. 8 ulp relative covers it; the absolute term covers the
        // saturated region where the kernel clamps e^-g at e^88 (|silu| < 1e-36 there).
        const float tol = 1e-6f * std::fabs(want[i]) + 1e-30f;
        ASSERT_NEAR(got[i], want[i], tol) << "m=" << s.m << " n=" << s.n << " i=" << i;
      }
    }
  }
}

TEST(SiluMulTest, CheckRejectsBadParams) {
  float buf[8] = {};
  SiluMulParams ok{.gate_up = buf, .out = buf, .m = 2, .n = 2};
  EXPECT_TRUE(ok.check().ok());
  SiluMulParams p = ok;
  p.m = -1;
  EXPECT_NE(p.check().message().find("m must"), std::string::npos);
  p = ok;
  p.n = -3;
  EXPECT_NE(p.check().message().find("n must"), std::string::npos);
  p = ok;
  p.gate_up = nullptr;
  EXPECT_EQ(p.check().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.check().message().find("gate_up"), std::string::npos);
  p = ok;
  p.out = nullptr;
  EXPECT_NE(p.check().message().find("out"), std::string::npos);
}

}  // namespace
}  // namespace tide
