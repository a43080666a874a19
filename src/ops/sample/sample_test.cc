#include "ops/sample/sample.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/sample/sample_test_util.h"

namespace tide {
namespace {

struct Out {
  std::vector<int32_t> token, top_ids;
  std::vector<float> logprob, top_lp;
  explicit Out(const testing::SampleCase& c)
      : token(static_cast<size_t>(c.rows), -7),
        top_ids(static_cast<size_t>(c.rows * c.top_k), -7),
        logprob(static_cast<size_t>(c.rows), NAN),
        top_lp(static_cast<size_t>(c.rows * c.top_k), NAN) {}
  SampleGreedyParams Params(const testing::SampleCase& c, const float* x) {
    return SampleGreedyParams{x, c.rows, c.vocab, c.top_k, token.data(), logprob.data(), top_ids.data(), top_lp.data()};
  }
};

TEST(SampleGreedyTest, CpuMatchesRef) {
  Rng rng(21);
  ThreadPool pool3(3);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (const auto& c : testing::SampleCases()) {
      const std::vector<float> x = testing::SampleLogits(c, rng);
      Out want(c), got(c);
      ASSERT_TRUE(want.Params(c, x.data()).check().ok());
      SampleGreedyRef(want.Params(c, x.data()));
      SampleGreedy(ExecContext{.pool = pool}, got.Params(c, x.data()));
      EXPECT_EQ(got.token, want.token) << "vocab " << c.vocab;
      EXPECT_EQ(got.top_ids, want.top_ids) << "vocab " << c.vocab;
      // Both sum in f64 (same order here); one f32 rounding at the end.
      for (size_t i = 0; i < want.logprob.size(); ++i) ASSERT_NEAR(got.logprob[i], want.logprob[i], 1e-6) << i;
      for (size_t i = 0; i < want.top_lp.size(); ++i) {
        if (std::isinf(want.top_lp[i])) {
          EXPECT_EQ(got.top_lp[i], want.top_lp[i]);
        } else {
          ASSERT_NEAR(got.top_lp[i], want.top_lp[i], 1e-6) << i;
        }
      }
      // The tie rows: the lowest id of the three maxima.
      if (c.rows > 1 && c.vocab > 3) {
        EXPECT_EQ(want.token[1], c.vocab / 3);
      }
    }
  }
}

TEST(SampleGreedyTest, CheckRejectsTooManyTop) {
  std::vector<float> x(10, 1.f);
  int32_t t[1];
  float l[1];
  SampleGreedyParams p{x.data(), 1, 10, kSampleMaxTopK + 1, t, l, nullptr, nullptr};
  EXPECT_FALSE(p.check().ok());
  p.top_k = 0;
  EXPECT_TRUE(p.check().ok());
}

}  // namespace
}  // namespace tide
