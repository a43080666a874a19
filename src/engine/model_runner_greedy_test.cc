// ModelRunner::ForwardGreedy against the host sampler: for every logit row the token,
// its logprob and the top logprobs equal what Sample() picks from Forward's logits
// with temperature 0 (ties to the lowest id). On the CPU (the base implementation) and
// on CUDA (the op on the device, decode steps through CUDA graphs); the CUDA case skips,
// saying why, without a GPU.
#include <gtest/gtest.h>

#include <vector>

#include "backend/device_memory.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"
#include "model/model.h"

namespace tide {
namespace {

// Prefill of three prompts, then three decode steps of all three (blocks 4s.., size 16).
std::vector<ForwardBatch> Steps(int64_t vocab) {
  std::vector<ForwardBatch> out;
  const int lens[] = {5, 17, 9};
  ForwardBatch p;
  p.q_start.push_back(0);
  p.max_blocks_per_seq = 4;
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < lens[s]; ++i) {
      p.tokens.push_back(static_cast<int32_t>((s * 131 + i * 17 + 3) % vocab));
      p.positions.push_back(i);
      p.slots.push_back(int64_t{4 * s} * 16 + i);
    }
    p.q_start.push_back(static_cast<int32_t>(p.tokens.size()));
    p.kv_len.push_back(lens[s]);
    p.logit_rows.push_back(static_cast<int32_t>(p.tokens.size()) - 1);
    for (int j = 0; j < 4; ++j) p.block_table.push_back(4 * s + j);
  }
  out.push_back(p);
  for (int step = 0; step < 3; ++step) {
    ForwardBatch d;
    d.q_start.push_back(0);
    d.max_blocks_per_seq = 4;
    for (int s = 0; s < 3; ++s) {
      const int pos = lens[s] + step;
      d.tokens.push_back(static_cast<int32_t>((s * 7 + step * 29 + 1) % vocab));
      d.positions.push_back(pos);
      d.slots.push_back(int64_t{4 * s} * 16 + pos);
      d.q_start.push_back(s + 1);
      d.kv_len.push_back(pos + 1);
      d.logit_rows.push_back(s);
      for (int j = 0; j < 4; ++j) d.block_table.push_back(4 * s + j);
    }
    out.push_back(d);
  }
  return out;
}

void ExpectGreedyMatchesSampler(const ExecContext& ctx) {
  auto model = Model::Load("tests/golden/llama");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE((*model)->PlaceOn(ctx).ok());
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(**model, ctx);
  ASSERT_TRUE(runner->AllocateKvCache(16, 16).ok());
  const int64_t vocab = runner->config().vocab_size;
  SamplingParams greedy;
  greedy.temperature = 0.f;
  greedy.logprobs = true;
  greedy.top_logprobs = 5;
  for (const ForwardBatch& b : Steps(vocab)) {
    // The same step twice: the second writes the same K/V again, so both see one cache.
    std::vector<SampleResult> got;
    Status s = runner->ForwardGreedy(b, greedy.top_logprobs, &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::vector<float> logits;
    s = runner->Forward(b, &logits);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(got.size(), b.logit_rows.size());
    for (size_t r = 0; r < got.size(); ++r) {
      const SampleResult want = Sample(logits.data() + r * static_cast<size_t>(vocab), vocab, greedy, 0);
      EXPECT_EQ(got[r].token, want.token) << "row " << r;
      EXPECT_NEAR(got[r].logprob, want.logprob, 1e-6) << "row " << r;
      ASSERT_EQ(got[r].top.size(), want.top.size());
      for (size_t j = 0; j < want.top.size(); ++j) {
        EXPECT_EQ(got[r].top[j].id, want.top[j].id) << "row " << r << " top " << j;
        EXPECT_NEAR(got[r].top[j].logprob, want.top[j].logprob, 1e-6) << "row " << r << " top " << j;
      }
    }
  }
  std::vector<SampleResult> got;
  EXPECT_FALSE(runner->ForwardGreedy(Steps(vocab)[1], 21, &got).ok());
}

TEST(ModelRunnerGreedyTest, CpuMatchesSampler) { ExpectGreedyMatchesSampler(ExecContext{}); }

TEST(ModelRunnerGreedyTest, CudaMatchesSampler) {
  std::string why;
  if (!CudaAvailable(&why)) {
    std::printf("skipping: %s\n", why.c_str());
    GTEST_SKIP() << "no usable CUDA device: " << why;
  }
  ExpectGreedyMatchesSampler(ExecContext{.device = DeviceKind::kCuda});
}

}  // namespace
}  // namespace tide
