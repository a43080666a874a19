#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/moe_route/moe_route.h"

namespace tide {
namespace {

TEST(MoeRouteCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(8);
  struct Case { int64_t n_tokens; int n_experts, top_k; bool renorm; };
  for (const Case& c : {Case{1, 8, 2, true}, Case{57, 60, 4, false}, Case{33, 128, 8, true}, Case{5, 3, 3, false}}) {
    std::vector<float> logits(static_cast<size_t>(c.n_tokens * c.n_experts));
    for (float& f : logits) f = rng.Normal() * 2.f;
    logits[1] = logits[0];  // an exact tie: the lower id must win
    const size_t out = static_cast<size_t>(c.n_tokens * c.top_k);
    std::vector<int32_t> ids(out, -7);
    std::vector<float> w(out);
    MoeRouteParams p{logits.data(), ids.data(), w.data(), c.n_tokens, c.n_experts, c.top_k, c.renorm};
    ASSERT_TRUE(p.check().ok());
    MoeRouteRef(p);
    DeviceBuffer dl = testing::Upload(logits), di = testing::Upload(std::vector<int32_t>(out, -7));
    DeviceBuffer dw = testing::Upload(std::vector<float>(out, std::nanf("")));
    MoeRoute(testing::CudaCtx(), MoeRouteParams{dl.as<float>(), di.as<int32_t>(), dw.as<float>(), c.n_tokens,
                                                c.n_experts, c.top_k, c.renorm});
    const std::vector<int32_t> gi = testing::Download<int32_t>(di, out);
    const std::vector<float> gw = testing::Download<float>(dw, out);
    EXPECT_EQ(gi, ids) << "n_experts=" << c.n_experts;
    // Both compute in f64 and round once to f32; exp differs by an ulp of f64 at most.
    for (size_t i = 0; i < out; ++i) ASSERT_NEAR(gw[i], w[i], 1e-7f * std::fabs(w[i]) + 1e-30f) << i;
  }
}

}  // namespace
}  // namespace tide
