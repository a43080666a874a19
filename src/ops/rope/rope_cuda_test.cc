#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/rope/rope.h"

namespace tide {
namespace {

TEST(RopeCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(5);
  struct Case {
    int n_heads, n_kv_heads, head_dim, rotary_dim;
    RopeStyle style;
    RopeScaling scaling;
  };
  RopeScaling llama3;
  llama3.type = RopeScaling::Type::kLlama3;
  llama3.factor = 8;
  const Case cases[] = {{8, 2, 128, 128, RopeStyle::kNeox, {}},
                        {4, 4, 64, 32, RopeStyle::kNeox, {}},  // partial rotary
                        {6, 3, 16, 16, RopeStyle::kInterleaved, {}},
                        {32, 8, 128, 128, RopeStyle::kNeox, llama3}};
  for (const Case& c : cases) {
    for (bool with_k : {true, false}) {
      const int64_t t = 37;
      std::vector<int32_t> pos(static_cast<size_t>(t));
      for (int64_t i = 0; i < t; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i < 30 ? i : rng.NextU64() % 131072);
      const std::vector<float> inv = RopeInvFreq(500000.0, c.rotary_dim, c.scaling);
      std::vector<float> q(static_cast<size_t>(t * c.n_heads * c.head_dim)), k(static_cast<size_t>(t * c.n_kv_heads * c.head_dim));
      for (float& f : q) f = rng.Uniform(-2.f, 2.f);
      for (float& f : k) f = rng.Uniform(-2.f, 2.f);
      DeviceBuffer dq = testing::Upload(q), dk = testing::Upload(k), dpos = testing::Upload(pos), dinv = testing::Upload(inv);
      RopeParams p;
      p.q = q.data();
      p.k = with_k ? k.data() : nullptr;
      p.positions = pos.data();
      p.inv_freq = inv.data();
      p.n_tokens = t;
      p.n_heads = c.n_heads;
      p.n_kv_heads = c.n_kv_heads;
      p.head_dim = c.head_dim;
      p.rotary_dim = c.rotary_dim;
      p.style = c.style;
      ASSERT_TRUE(p.check().ok());
      RopeRef(p);
      RopeParams d = p;
      d.q = dq.as<float>();
      d.k = with_k ? dk.as<float>() : nullptr;
      d.positions = dpos.as<int32_t>();
      d.inv_freq = dinv.as<float>();
      Rope(testing::CudaCtx(), d);
      const std::vector<float> gq = testing::Download<float>(dq, q.size()), gk = testing::Download<float>(dk, k.size());
      // sincosf is within 2 ulp of the exact cos/sin of the same f32 angle, and the
      // rotation is two products and a sum of values up to |2|: 2e-6 absolute.
      for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(gq[i], q[i], 2e-6f) << "q " << i;
      for (size_t i = 0; i < k.size(); ++i) ASSERT_NEAR(gk[i], k[i], 2e-6f) << "k " << i;  // unchanged when !with_k
    }
  }
}

}  // namespace
}  // namespace tide
