#include "ops/rms_norm/rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> RandomVec(Rng& rng, int64_t n, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = rng.Uniform(lo, hi);
  return v;
}

struct Shape { int64_t m, n; };
const Shape kShapes[] = {{1, 1}, {1, 7}, {3, 8}, {5, 33}, {2, 127}, {7, 4096}, {64, 896}, {1, 5120}};

TEST(RmsNormTest, CpuMatchesRef) {
  Rng rng(3);
  ThreadPool pool3(3);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (Shape s : kShapes) {
      for (bool fused : {false, true}) {
        const size_t size = static_cast<size_t>(s.m * s.n);
        const std::vector<float> x = RandomVec(rng, s.m * s.n, -3.f, 3.f);
        const std::vector<float> w = RandomVec(rng, s.n, 0.5f, 1.5f);
        const std::vector<float> r0 = RandomVec(rng, s.m * s.n, -3.f, 3.f);
        std::vector<float> want(size, kNaN), got(size, kNaN);
        std::vector<float> r_want = r0, r_got = r0;
        RmsNormParams p{.x = x.data(), .residual = fused ? r_want.data() : nullptr,
                        .weight = w.data(), .y = want.data(), .m = s.m, .n = s.n, .eps = 1e-5f};
        ASSERT_TRUE(p.check().ok());
        RmsNormRef(p);
        p.residual = fused ? r_got.data() : nullptr;
        p.y = got.data();
        RmsNorm(ExecContext{.pool = pool}, p);
        for (size_t i = 0; i < size; ++i) {
          // f32 sum of squares (relative error ~n·2^-24 in the worst case, far less with
          // blocked sums), halved by the sqrt, plus two f32 multiplies: 4e-6 relative
          // is about 30 ulp and holds for n up to a few thousand.
          ASSERT_NEAR(got[i], want[i], 4e-6f * std::fabs(want[i]) + 1e-30f)
              << "m=" << s.m << " n=" << s.n << " fused=" << fused << " i=" << i;
          // residual += x is one f32 add in both: exact match.
          ASSERT_EQ(r_got[i], r_want[i]);
        }
      }
    }
  }
}

TEST(RmsNormTest, InPlaceWhenXAliasesY) {
  Rng rng(4);
  const int64_t m = 5, n = 300;
  const std::vector<float> x = RandomVec(rng, m * n, -2.f, 2.f);
  const std::vector<float> w = RandomVec(rng, n, 0.5f, 1.5f);
  std::vector<float> separate(static_cast<size_t>(m * n), kNaN);
  RmsNormParams p{.x = x.data(), .weight = w.data(), .y = separate.data(), .m = m, .n = n};
  RmsNormCpu(p, nullptr);
  std::vector<float> inplace = x;
  p.x = inplace.data();
  p.y = inplace.data();
  RmsNormCpu(p, nullptr);
  EXPECT_EQ(0, std::memcmp(separate.data(), inplace.data(), separate.size() * sizeof(float)));
}

// A row's output must be bit-identical however many rows share the call and however
// many threads run it (the engine's --deterministic mode relies on it).
TEST(RmsNormTest, BatchInvariant) {
  Rng rng(5);
  ThreadPool pool3(3);
  for (int64_t n : {37, 896, 4096}) {
    const int64_t m = 50;
    const std::vector<float> x = RandomVec(rng, m * n, -3.f, 3.f);
    const std::vector<float> w = RandomVec(rng, n, 0.5f, 1.5f);
    std::vector<float> batched(static_cast<size_t>(m * n), kNaN);
    RmsNormParams p{.x = x.data(), .weight = w.data(), .y = batched.data(), .m = m, .n = n};
    RmsNormCpu(p, &pool3);
    for (int64_t i = 0; i < m; ++i) {
      std::vector<float> alone(static_cast<size_t>(n), kNaN);
      RmsNormParams q = p;
      q.x = x.data() + i * n;
      q.y = alone.data();
      q.m = 1;
      RmsNormCpu(q, nullptr);
      ASSERT_EQ(0, std::memcmp(alone.data(), batched.data() + i * n, static_cast<size_t>(n) * sizeof(float)))
          << "row " << i << " n=" << n;
    }
  }
}

TEST(RmsNormTest, CheckRejectsBadParams) {
  float a[4] = {1, 2, 3, 4}, b[4], r[4];
  const RmsNormParams ok{.x = a, .weight = a, .y = b, .m = 2, .n = 2};
  EXPECT_TRUE(ok.check().ok());
  auto expect_bad = [](const RmsNormParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  RmsNormParams p = ok;
  p.m = -1;
  expect_bad(p, "m must");
  p = ok;
  p.n = 0;
  expect_bad(p, "n must");
  p = ok;
  p.eps = -1.f;
  expect_bad(p, "eps");
  p.eps = kNaN;
  expect_bad(p, "eps");
  p = ok;
  p.x = nullptr;
  expect_bad(p, "x is null");
  p = ok;
  p.y = nullptr;
  expect_bad(p, "y is null");
  p = ok;
  p.weight = nullptr;
  expect_bad(p, "weight is null");
  p = ok;
  p.residual = b;
  expect_bad(p, "residual");
  p.residual = r;
  EXPECT_TRUE(p.check().ok());
}

}  // namespace
}  // namespace tide
