#include "ops/rope/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"
#include "ops/rope/rope_hf_golden.h"

namespace tide {
namespace {

std::vector<float> RandomVec(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = rng.Uniform(-2.f, 2.f);
  return v;
}

RopeScaling Llama31Scaling() {
  RopeScaling s;
  s.type = RopeScaling::Type::kLlama3;
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 8192;
  return s;
}

struct Case {
  int64_t n_tokens;
  int n_heads, n_kv_heads, head_dim, rotary_dim;
  RopeStyle style;
  bool with_k;
};

TEST(RopeTest, CpuMatchesRef) {
  Rng rng(9);
  ThreadPool pool3(3);
  const Case cases[] = {
      {1, 1, 1, 2, 2, RopeStyle::kNeox, true},
      {5, 4, 2, 64, 64, RopeStyle::kNeox, true},
      {7, 3, 1, 128, 64, RopeStyle::kNeox, true},           // partial rotary
      {3, 2, 0, 80, 80, RopeStyle::kNeox, false},           // no k
      {4, 2, 2, 96, 24, RopeStyle::kNeox, true},            // half = 12: vector + scalar tail
      {6, 2, 1, 64, 64, RopeStyle::kInterleaved, true},
      {6, 2, 1, 64, 20, RopeStyle::kInterleaved, true},     // rot = 20: vector + scalar tail
      {300, 32, 8, 128, 128, RopeStyle::kNeox, true},
      {300, 8, 8, 128, 128, RopeStyle::kInterleaved, true},
  };
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (const Case& c : cases) {
      for (bool llama3 : {false, true}) {
        const std::vector<float> inv = RopeInvFreq(llama3 ? 500000.0 : 10000.0, c.rotary_dim,
                                                   llama3 ? Llama31Scaling() : RopeScaling{});
        std::vector<int32_t> pos(static_cast<size_t>(c.n_tokens));
        for (int32_t& v : pos) v = static_cast<int32_t>(rng.NextU64() % 32768);
        pos[0] = 32767;  // the far end, where the f32 angle is coarsest
        if (c.n_tokens > 1) pos[1] = 0;
        const std::vector<float> q0 = RandomVec(rng, c.n_tokens * c.n_heads * c.head_dim);
        const std::vector<float> k0 = RandomVec(rng, c.n_tokens * c.n_kv_heads * c.head_dim);
        std::vector<float> q_want = q0, k_want = k0, q_got = q0, k_got = k0;
        RopeParams p{.q = q_want.data(), .k = c.with_k ? k_want.data() : nullptr, .positions = pos.data(),
                     .inv_freq = inv.data(), .n_tokens = c.n_tokens, .n_heads = c.n_heads,
                     .n_kv_heads = c.n_kv_heads, .head_dim = c.head_dim, .rotary_dim = c.rotary_dim,
                     .style = c.style};
        ASSERT_TRUE(p.check().ok()) << p.check().ToString();
        RopeRef(p);
        p.q = q_got.data();
        p.k = c.with_k ? k_got.data() : nullptr;
        Rope(ExecContext{.pool = pool}, p);
        // Both use the same f32 angle (the op's definition, as in HF); they differ only in
        // f32 cos/sin (< 1 ulp) and the f32 rotation (two rounded products and a sum):
        // a few ulp of |xa| + |xb| <= 4, so 1e-6 absolute. Unrotated dims must be untouched.
        for (int which = 0; which < 2; ++which) {
          const std::vector<float>& got = which == 0 ? q_got : k_got;
          const std::vector<float>& want = which == 0 ? q_want : k_want;
          const std::vector<float>& orig = which == 0 ? q0 : k0;
          const int dim = c.head_dim;
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_NEAR(got[i], want[i], 1e-6f) << (which ? "k" : "q") << " i=" << i << " case hd=" << dim
                                                << " rot=" << c.rotary_dim;
            if (static_cast<int>(i % static_cast<size_t>(dim)) >= c.rotary_dim || (which == 1 && !c.with_k)) {
              ASSERT_EQ(got[i], orig[i]);
            }
          }
        }
      }
    }
  }
}

TEST(RopeTest, InvFreqPlainAndLinear) {
  const std::vector<float> plain = RopeInvFreq(10000.0, 128, RopeScaling{});
  ASSERT_EQ(plain.size(), 64u);
  EXPECT_EQ(plain[0], 1.f);
  for (int i = 0; i < 64; ++i) {
    const double want = std::pow(10000.0, -2.0 * i / 128.0);
    EXPECT_NEAR(plain[static_cast<size_t>(i)], want, 2e-7 * want) << i;
  }
  RopeScaling linear;
  linear.type = RopeScaling::Type::kLinear;
  linear.factor = 4.0;
  const std::vector<float> scaled = RopeInvFreq(10000.0, 128, linear);
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(scaled[i], plain[i] / 4.f);
}

// The three llama3 bands, checked against the rule in f64: short wavelengths kept, long
// ones divided by the factor, the band between blended.
TEST(RopeTest, InvFreqLlama3Bands) {
  const RopeScaling s = Llama31Scaling();
  const std::vector<float> plain = RopeInvFreq(500000.0, 128, RopeScaling{});
  const std::vector<float> got = RopeInvFreq(500000.0, 128, s);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < 64; ++i) {
    const double f = plain[i];
    const double wavelen = 2 * M_PI / f;
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_EQ(got[i], plain[i]) << i;
      ++kept;
    } else if (wavelen > 8192.0 / 1.0) {
      EXPECT_EQ(got[i], plain[i] / 8.f) << i;
      ++divided;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      const double want = (1 - smooth) * f / 8.0 + smooth * f;
      EXPECT_NEAR(got[i], want, 1e-6 * want) << i;
      EXPECT_LT(got[i], plain[i]);
      EXPECT_GT(got[i], plain[i] / 8.f);
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// inv_freq against Hugging Face's: the same f32 steps, so equal up to torch's powf, which
// is not always correctly rounded (ours is): at most 1 ulp apart, and rarely (1 of the
// 152 values here, at a near-halfway case of 1e4^(40/96)).
TEST(RopeTest, InvFreqMatchesHuggingFace) {
  struct Golden {
    const uint32_t* bits;
    size_t n;
    double theta;
    int rotary_dim;
    RopeScaling scaling;
  };
  RopeScaling linear;
  linear.type = RopeScaling::Type::kLinear;
  linear.factor = 4.0;
  const Golden goldens[] = {
      {rope_golden::kHfInvLlama3, std::size(rope_golden::kHfInvLlama3), 500000.0, 128, Llama31Scaling()},
      {rope_golden::kHfInvDefault96, std::size(rope_golden::kHfInvDefault96), 10000.0, 96, RopeScaling{}},
      {rope_golden::kHfInvLinear80, std::size(rope_golden::kHfInvLinear80), 1000000.0, 80, linear},
  };
  int mismatches = 0;
  for (const Golden& g : goldens) {
    const std::vector<float> inv = RopeInvFreq(g.theta, g.rotary_dim, g.scaling);
    ASSERT_EQ(inv.size(), g.n);
    for (size_t i = 0; i < g.n; ++i) {
      const float want = FromBits(g.bits[i]);
      if (inv[i] != want) ++mismatches;
      EXPECT_LE(std::fabs(inv[i] - want), std::nextafter(want, 1.f) - want) << "rotary_dim " << g.rotary_dim << " i=" << i;
    }
  }
  EXPECT_LE(mismatches, 2);
}

// The kernel's cos/sin at long positions against HF's: rotating the unit pair (1, 0)
// yields exactly (cos, sin). Both take cos/sin of the same f32 angle; glibc's cosf/sinf
// and torch's vectorised ones may round differently in the last place: 1 ulp allowed.
TEST(RopeTest, CosSinMatchHuggingFaceAtLongPositions) {
  const std::vector<float> inv = RopeInvFreq(500000.0, 128, Llama31Scaling());
  const int32_t positions[2] = {32767, 100000};
  std::vector<float> q(2 * 128);
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 64; ++i) {
      q[static_cast<size_t>(t * 128 + i)] = 1.f;
      q[static_cast<size_t>(t * 128 + 64 + i)] = 0.f;
    }
  }
  RopeParams p{.q = q.data(), .positions = positions, .inv_freq = inv.data(), .n_tokens = 2, .n_heads = 1,
               .head_dim = 128, .rotary_dim = 128};
  ASSERT_TRUE(p.check().ok());
  RopeCpu(p, nullptr);
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 64; ++i) {
      const float want_cos = FromBits(rope_golden::kHfCos[t * 64 + i]);
      const float want_sin = FromBits(rope_golden::kHfSin[t * 64 + i]);
      const float got_cos = q[static_cast<size_t>(t * 128 + i)], got_sin = q[static_cast<size_t>(t * 128 + 64 + i)];
      EXPECT_LE(std::fabs(got_cos - want_cos), std::fabs(std::nextafter(want_cos, 2.f) - want_cos)) << t << " " << i;
      EXPECT_LE(std::fabs(got_sin - want_sin), std::fabs(std::nextafter(want_sin, 2.f) - want_sin)) << t << " " << i;
    }
  }
}

TEST(RopeTest, CheckRejectsBadParams) {
  float q[16] = {}, k[16] = {}, inv[4] = {1, 1, 1, 1};
  int32_t pos[2] = {0, 5};
  const RopeParams ok{.q = q, .k = k, .positions = pos, .inv_freq = inv, .n_tokens = 2, .n_heads = 1,
                      .n_kv_heads = 1, .head_dim = 8, .rotary_dim = 8};
  EXPECT_TRUE(ok.check().ok());
  auto expect_bad = [](const RopeParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  RopeParams p = ok;
  p.n_tokens = -1;
  expect_bad(p, "n_tokens");
  p = ok;
  p.n_heads = 0;
  expect_bad(p, "n_heads");
  p = ok;
  p.head_dim = 0;
  expect_bad(p, "head_dim");
  for (int rot : {0, 7, 10, -2}) {
    p = ok;
    p.rotary_dim = rot;
    expect_bad(p, "rotary_dim");
  }
  p = ok;
  p.n_kv_heads = 0;
  expect_bad(p, "n_kv_heads");
  p.k = nullptr;  // no k: n_kv_heads unused
  EXPECT_TRUE(p.check().ok());
  p = ok;
  p.q = nullptr;
  expect_bad(p, "q is null");
  p = ok;
  p.positions = nullptr;
  expect_bad(p, "positions is null");
  p = ok;
  p.inv_freq = nullptr;
  expect_bad(p, "inv_freq is null");
  for (int32_t bad : {-1, 1 << 24, std::numeric_limits<int32_t>::min()}) {
    int32_t pos2[2] = {3, bad};
    p = ok;
    p.positions = pos2;
    expect_bad(p, "positions[1]");
  }
}

}  // namespace
}  // namespace tide
