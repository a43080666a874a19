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

// Every setting on every kind of row; the CPU draws with the reference's arithmetic in
// its order, so tokens and logprobs are equal bit for bit.
TEST(SampleTest, CpuMatchesRef) {
  Rng rng(31);
  ThreadPool pool3(3);
  struct Shape {
    int64_t rows, vocab;
    int k;
    bool same_raw;
  };
  for (const Shape& sh : {Shape{84, 3000, 5, false}, Shape{28, 20000, 0, true}, Shape{14, 7, 20, false},
                          Shape{6, 128256, 3, false}}) {
    const std::vector<float> x = testing::DrawLogits(sh.rows, sh.vocab, rng);
    std::vector<float> raw = x;
    if (!sh.same_raw)
      for (float& f : raw) f += rng.Uniform(-0.5f, 0.5f);
    const std::vector<SampleRowSpec> spec = testing::DrawSpecs(sh.rows, sh.vocab, rng);
    auto params = [&](testing::SampleOut& o) {
      return SampleParams{x.data(),  sh.same_raw ? x.data() : raw.data(), spec.data(), sh.rows, sh.vocab, sh.k,
                          o.token.data(), o.logprob.data(), o.top_ids.data(), o.top_lp.data()};
    };
    testing::SampleOut want(sh.rows, sh.k);
    ASSERT_TRUE(params(want).check().ok());
    SampleRef(params(want));
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
      testing::SampleOut got(sh.rows, sh.k);
      Sample(ExecContext{.pool = pool}, params(got));
      EXPECT_EQ(got.token, want.token) << "vocab " << sh.vocab;
      EXPECT_EQ(got.top_ids, want.top_ids) << "vocab " << sh.vocab;
      EXPECT_EQ(got.logprob, want.logprob) << "vocab " << sh.vocab;
      EXPECT_EQ(got.top_lp, want.top_lp) << "vocab " << sh.vocab;
    }
    // Greedy rows pick the lowest id of the maximum; sampled rows are not all greedy.
    int differ = 0;
    for (int64_t r = 0; r < sh.rows; ++r) {
      const float* row = x.data() + r * sh.vocab;
      int32_t best = 0;
      for (int32_t i = 1; i < sh.vocab; ++i)
        if (row[i] > row[best]) best = i;
      if (spec[static_cast<size_t>(r)].temperature == 0.f) {
        EXPECT_EQ(want.token[static_cast<size_t>(r)], best) << r;
      }
      differ += want.token[static_cast<size_t>(r)] != best;
    }
    if (sh.vocab > 1000) {
      EXPECT_GT(differ, 0);
    }
  }
}

TEST(SampleTest, CheckRejectsBadParams) {
  std::vector<float> x(10, 1.f);
  SampleRowSpec spec;
  int32_t t[1];
  float l[1];
  SampleParams p{x.data(), x.data(), &spec, 1, 10, 0, t, l, nullptr, nullptr};
  EXPECT_TRUE(p.check().ok());
  p.top_k_logprobs = 2;
  EXPECT_FALSE(p.check().ok());  // top arrays missing
  p.top_k_logprobs = kSampleMaxTopK + 1;
  EXPECT_FALSE(p.check().ok());
  p.top_k_logprobs = 0;
  p.spec = nullptr;
  EXPECT_FALSE(p.check().ok());
}

}  // namespace
}  // namespace tide
