#include "ops/moe_experts/moe_experts.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/moe_experts/moe_experts_test_util.h"

namespace tide {
namespace {

using moe_experts_test::Poisoned;
using moe_experts_test::Problem;
using moe_experts_test::Routing;

void ExpectNearRef(const Problem& pr, const std::vector<float>& got) {
  std::vector<float> want = Poisoned(got.size());
  MoeExpertsRef(pr.Params(want.data()));
  const std::vector<double> tol = pr.Tolerance();
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(want[i])) << pr.Name() << " i=" << i;
    ASSERT_NEAR(got[i], want[i], tol[i]) << pr.Name() << " token " << i / static_cast<size_t>(pr.hidden) << " col "
                                         << i % static_cast<size_t>(pr.hidden);
  }
}

TEST(MoeExpertsTest, CpuMatchesRef) {
  ThreadPool pool3(3);
  struct Case { int64_t t, hidden, inter; int n_experts, top_k; Routing routing; bool shared; };
  const Case cases[] = {
      {1, 64, 96, 8, 2, Routing::kRandom, false},   {64, 64, 32, 8, 2, Routing::kRandom, true},
      {300, 32, 64, 64, 8, Routing::kRandom, false}, {17, 64, 64, 16, 1, Routing::kOneSet, false},
      {40, 96, 32, 32, 8, Routing::kOneSet, true},   {23, 64, 64, 60, 4, Routing::kSkewed, false},
  };
  uint64_t seed = 100;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (const Case& c : cases) {
      const Problem pr(c.t, c.hidden, c.inter, c.n_experts, c.top_k, dtype, c.routing, c.shared, ++seed);
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
        std::vector<float> got = Poisoned(static_cast<size_t>(c.t * c.hidden));
        const MoeExpertsParams p = pr.Params(got.data());
        ASSERT_TRUE(p.check().ok()) << p.check().ToString();
        ASSERT_TRUE(MoeExperts(ExecContext{.pool = pool}, p).ok());
        ExpectNearRef(pr, got);
      }
    }
  }
}

// A token's result depends only on its own routing: alone or in a batch, bit for bit.
TEST(MoeExpertsTest, CpuTokenAloneEqualsTokenInBatch) {
  const Problem pr(50, 64, 64, 16, 4, DType::kBF16, Routing::kSkewed, /*shared=*/true, 7);
  std::vector<float> all = Poisoned(static_cast<size_t>(50 * 64));
  ASSERT_TRUE(MoeExperts(ExecContext{}, pr.Params(all.data())).ok());
  for (int64_t i : {0, 13, 49}) {
    MoeExpertsParams p = pr.Params(nullptr);
    std::vector<float> one = Poisoned(64);
    p.x += i * 64;
    p.expert_ids += i * 4;
    p.weights += i * 4;
    p.shared_y += i * 64;
    p.shared_gate += i;
    p.out = one.data();
    p.n_tokens = 1;
    ASSERT_TRUE(MoeExperts(ExecContext{}, p).ok());
    EXPECT_EQ(std::memcmp(one.data(), all.data() + i * 64, 64 * 4), 0) << "token " << i;
  }
}

TEST(MoeExpertsTest, CheckRejectsBadParams) {
  const Problem pr(3, 32, 32, 4, 2, DType::kF32, Routing::kRandom, false, 3);
  float out[96];
  const MoeExpertsParams ok = pr.Params(out);
  EXPECT_TRUE(ok.check().ok());
  auto expect_bad = [](const MoeExpertsParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  MoeExpertsParams p = ok;
  p.top_k = 5;
  expect_bad(p, "top_k");
  p = ok;
  p.n_experts = 0;
  expect_bad(p, "n_experts");
  p = ok;
  p.out = nullptr;
  expect_bad(p, "out is null");
  p = ok;
  p.shared_y = pr.x.data();
  expect_bad(p, "shared_y and shared_gate");
  p = ok;
  p.inter = 16;
  expect_bad(p, "must be [16, 32]");
  std::vector<MoeExpertWeights> experts = pr.experts;
  experts[2].down.data = nullptr;
  p = ok;
  p.experts = experts.data();
  expect_bad(p, "expert 2 down is null");
}

// Which steps take the CUDA matmul path (and so stay out of decode graphs): the shapes
// the rule was reasoned for, at its edges.
TEST(MoeExpertsTest, MatmulPathForLargeGroupsOfLargeExperts) {
  auto uses = [](int64_t t, int64_t hidden, int64_t inter, int n_experts, int top_k) {
    return MoeExpertsUsesMatmul(DeviceKind::kCuda, t, hidden, inter, n_experts, top_k);
  };
  // Mixtral-8x7B: 8 rows per expert from 32 tokens.
  EXPECT_FALSE(uses(31, 4096, 14336, 8, 2));
  EXPECT_TRUE(uses(32, 4096, 14336, 8, 2));
  EXPECT_TRUE(uses(5000, 4096, 14336, 8, 2));
  // Qwen2-57B-A14B (64 experts of 2560x3584, top-8): from 64 tokens.
  EXPECT_FALSE(uses(63, 3584, 2560, 64, 8));
  EXPECT_TRUE(uses(64, 3584, 2560, 64, 8));
  // Qwen3-30B-A3B: 128 small experts (768x2048), top-8: never, however long the step.
  EXPECT_FALSE(uses(64, 2048, 768, 128, 8));
  EXPECT_FALSE(uses(100000, 2048, 768, 128, 8));
  // Experts of exactly 2^22 elements qualify; long steps are judged by their (first) chunk.
  EXPECT_TRUE(uses(100000, 2048, 2048, 128, 8));
  EXPECT_FALSE(uses(100000, 2048, 2048 - 64, 128, 8));
  EXPECT_FALSE(MoeExpertsUsesMatmul(DeviceKind::kCpu, 5000, 4096, 14336, 8, 2));
  // Rows off 256-byte alignment (hidden or inter not a multiple of 64) never take it.
  EXPECT_FALSE(uses(5000, 4096 + 32, 14336, 8, 2));
  EXPECT_FALSE(uses(5000, 4096, 14336 + 16, 8, 2));
}

}  // namespace
}  // namespace tide
