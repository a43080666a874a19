#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cuda_test_util.h"
#include "ops/sample/sample.h"
#include "ops/sample/sample_test_util.h"

namespace tide {
namespace {

TEST(SampleGreedyCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(22);
  for (const auto& c : testing::SampleCases()) {
    const std::vector<float> x = testing::SampleLogits(c, rng);
    const size_t rows = static_cast<size_t>(c.rows), topn = static_cast<size_t>(c.rows * c.top_k);
    std::vector<int32_t> token(rows), top_ids(topn);
    std::vector<float> logprob(rows), top_lp(topn);
    SampleGreedyParams p{x.data(), c.rows, c.vocab, c.top_k, token.data(), logprob.data(), top_ids.data(), top_lp.data()};
    ASSERT_TRUE(p.check().ok());
    SampleGreedyRef(p);
    DeviceBuffer dx = testing::Upload(x), dt = testing::Upload(std::vector<int32_t>(rows, -7)),
                 dl = testing::Upload(std::vector<float>(rows, NAN)),
                 dti = testing::Upload(std::vector<int32_t>(topn + 1, -7)),
                 dtl = testing::Upload(std::vector<float>(topn + 1, NAN));
    SampleGreedy(testing::CudaCtx(), SampleGreedyParams{dx.as<float>(), c.rows, c.vocab, c.top_k, dt.as<int32_t>(),
                                                        dl.as<float>(), dti.as<int32_t>(), dtl.as<float>()});
    EXPECT_EQ(testing::Download<int32_t>(dt, rows), token) << "vocab " << c.vocab;
    EXPECT_EQ(testing::Download<int32_t>(dti, topn), top_ids) << "vocab " << c.vocab;
    // f64 sums in another order: equal to ~1e-15 before the final f32 rounding.
    const std::vector<float> gl = testing::Download<float>(dl, rows), gtl = testing::Download<float>(dtl, topn);
    for (size_t i = 0; i < rows; ++i) ASSERT_NEAR(gl[i], logprob[i], 1e-6) << i;
    for (size_t i = 0; i < topn; ++i) {
      if (std::isinf(top_lp[i])) {
        EXPECT_EQ(gtl[i], top_lp[i]);
      } else {
        ASSERT_NEAR(gtl[i], top_lp[i], 1e-6) << i;
      }
    }
  }
}

}  // namespace
}  // namespace tide
