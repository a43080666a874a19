#include "ops/moe_route/moe_route.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Outputs {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

Outputs Route(MoeRouteParams p, bool ref, ThreadPool* pool) {
  Outputs o{std::vector<int32_t>(static_cast<size_t>(p.n_tokens * p.top_k), -7),
            std::vector<float>(static_cast<size_t>(p.n_tokens * p.top_k), kNaN)};
  p.expert_ids = o.ids.data();
  p.weights = o.weights.data();
  if (ref) {
    MoeRouteRef(p);
  } else {
    MoeRoute(ExecContext{.pool = pool}, p);
  }
  return o;
}

TEST(MoeRouteTest, CpuMatchesRef) {
  Rng rng(8);
  ThreadPool pool3(3);
  struct Case { int64_t n_tokens; int n_experts, top_k; };
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (Case c : {Case{1, 1, 1}, Case{5, 8, 2}, Case{33, 60, 4}, Case{100, 128, 8}, Case{7, 256, 8}, Case{3, 5, 5}}) {
      for (bool coarse : {false, true}) {
        for (bool renorm : {false, true}) {
          // Coarse logits (multiples of 1/8 in [-4, 4]) tie often and exactly, testing the
          // tie rule; distinct ones are then far apart, so f32 and f64 rank them alike.
          // Fine logits (continuous) test ordinary routing.
          std::vector<float> logits(static_cast<size_t>(c.n_tokens * c.n_experts));
          for (float& f : logits) {
            f = coarse ? static_cast<float>(static_cast<int>(rng.NextU64() % 65) - 32) / 8.f : 3.f * rng.Normal();
          }
          const MoeRouteParams p{.logits = logits.data(), .n_tokens = c.n_tokens, .n_experts = c.n_experts,
                                 .top_k = c.top_k, .renormalize = renorm};
          const Outputs want = Route(p, /*ref=*/true, nullptr);
          const Outputs got = Route(p, /*ref=*/false, pool);
          ASSERT_EQ(got.ids, want.ids) << "E=" << c.n_experts << " k=" << c.top_k << " coarse=" << coarse;
          for (size_t i = 0; i < got.weights.size(); ++i) {
            // f32 softmax: each e^x within 1 ulp, a sequential f32 sum over up to 256
            // experts (error grows like sqrt(E)·2^-24 typically, E·2^-24 at worst), one
            // divide, and for renormalise a second short sum and divide: 1e-5 relative.
            ASSERT_NEAR(got.weights[i], want.weights[i], 1e-5f * want.weights[i] + 1e-37f) << "i=" << i;
          }
        }
      }
    }
  }
}

TEST(MoeRouteTest, TiesGoToLowerExpertId) {
  const std::vector<float> logits = {1.f, 2.f, 2.f, 0.f, 2.f, 1.f};
  const MoeRouteParams p{.logits = logits.data(), .n_tokens = 1, .n_experts = 6, .top_k = 4, .renormalize = true};
  const Outputs got = Route(p, /*ref=*/false, nullptr);
  EXPECT_EQ(got.ids, (std::vector<int32_t>{1, 2, 4, 0}));
  EXPECT_EQ(got.weights[0], got.weights[1]);
  EXPECT_EQ(got.weights[0], got.weights[2]);
  EXPECT_NEAR(got.weights[0] * 3 + got.weights[3], 1.f, 1e-6f);
}

TEST(MoeRouteTest, NanLogitsStillGiveDistinctValidIds) {
  const std::vector<float> logits(16, kNaN);
  const MoeRouteParams p{.logits = logits.data(), .n_tokens = 2, .n_experts = 8, .top_k = 3};
  const Outputs got = Route(p, /*ref=*/false, nullptr);
  for (int t = 0; t < 2; ++t) {
    for (int k = 0; k < 3; ++k) {
      const int32_t id = got.ids[static_cast<size_t>(t * 3 + k)];
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 8);
      for (int j = 0; j < k; ++j) EXPECT_NE(id, got.ids[static_cast<size_t>(t * 3 + j)]);
    }
  }
}

TEST(MoeRouteTest, CheckRejectsBadParams) {
  float logits[8] = {};
  int32_t ids[4];
  float w[4];
  const MoeRouteParams ok{.logits = logits, .expert_ids = ids, .weights = w, .n_tokens = 2, .n_experts = 4, .top_k = 2};
  EXPECT_TRUE(ok.check().ok());
  auto expect_bad = [](const MoeRouteParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  MoeRouteParams p = ok;
  p.n_tokens = -1;
  expect_bad(p, "n_tokens");
  p = ok;
  p.n_experts = 0;
  expect_bad(p, "n_experts");
  p = ok;
  p.top_k = 0;
  expect_bad(p, "top_k");
  p.top_k = 5;
  expect_bad(p, "top_k");
  p = ok;
  p.logits = nullptr;
  expect_bad(p, "logits is null");
  p = ok;
  p.expert_ids = nullptr;
  expect_bad(p, "expert_ids is null");
  p = ok;
  p.weights = nullptr;
  expect_bad(p, "weights is null");
}

}  // namespace
}  // namespace tide
