#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "base/rng.h"

namespace tide {
namespace {

std::vector<float> RandomLogits(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = 3.f * rng.Normal();
  return v;
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> l = {1.f, 5.f, 2.f, 5.f};
  SamplingParams p;
  p.temperature = 0.f;
  p.top_logprobs = 3;
  SampleResult r = Sample(l.data(), 4, p, 0);
  EXPECT_EQ(r.token, 1);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].id, 1);
  EXPECT_EQ(r.top[1].id, 3);
  EXPECT_EQ(r.top[2].id, 2);
  double z = std::log(std::exp(1.0) + 2 * std::exp(5.0) + std::exp(2.0));
  EXPECT_NEAR(r.logprob, 5.0 - z, 1e-6);
}

TEST(SamplerTest, SeededSamplingIsAFunctionOfSeedAndPosition) {
  auto l = RandomLogits(100, 1);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  p.seed = 1234;
  for (uint64_t pos = 0; pos < 20; ++pos) EXPECT_EQ(Sample(l.data(), 100, p, pos).token, Sample(l.data(), 100, p, pos).token);
  int differ = 0;
  for (uint64_t pos = 0; pos < 20; ++pos) differ += Sample(l.data(), 100, p, pos).token != Sample(l.data(), 100, p, pos + 100).token;
  EXPECT_GT(differ, 0);
}

TEST(SamplerTest, FrequenciesFollowTemperatureScaledSoftmax) {
  std::vector<float> l = {0.f, 1.f, 2.f};
  SamplingParams p;
  p.temperature = 2.f;
  p.seed = 7;
  std::map<int, int> count;
  const int n = 20000;
  for (int i = 0; i < n; ++i) count[Sample(l.data(), 3, p, static_cast<uint64_t>(i)).token]++;
  double z = 1 + std::exp(0.5) + std::exp(1.0);
  EXPECT_NEAR(count[0] / double(n), 1 / z, 0.015);
  EXPECT_NEAR(count[1] / double(n), std::exp(0.5) / z, 0.015);
  EXPECT_NEAR(count[2] / double(n), std::exp(1.0) / z, 0.015);
}

TEST(SamplerTest, TopKTopPMinPRestrictCandidates) {
  auto l = RandomLogits(50, 2);
  int best = 0, second = -1;
  for (int i = 1; i < 50; ++i) if (l[i] > l[best]) best = i;
  for (int i = 0; i < 50; ++i) if (i != best && (second < 0 || l[i] > l[second])) second = i;
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 2;
  for (uint64_t pos = 0; pos < 500; ++pos) {
    int t = Sample(l.data(), 50, p, pos).token;
    ASSERT_TRUE(t == best || t == second);
  }
  p.top_k = 0;
  p.top_p = 1e-6f;  // only the most likely survives
  for (uint64_t pos = 0; pos < 100; ++pos) ASSERT_EQ(Sample(l.data(), 50, p, pos).token, best);
  p.top_p = 1.f;
  p.min_p = 1.f;  // only tokens as likely as the best
  for (uint64_t pos = 0; pos < 100; ++pos) ASSERT_EQ(Sample(l.data(), 50, p, pos).token, best);
}

TEST(SamplerTest, ValidateRejectsBadParams) {
  SamplingParams p;
  p.temperature = -1.f;
  EXPECT_FALSE(p.Validate().ok());
  p = SamplingParams{};
  p.top_p = 0.f;
  EXPECT_FALSE(p.Validate().ok());
  p = SamplingParams{};
  p.top_logprobs = 21;
  EXPECT_FALSE(p.Validate().ok());
  p = SamplingParams{};
  p.temperature = NAN;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

}  // namespace
}  // namespace tide
