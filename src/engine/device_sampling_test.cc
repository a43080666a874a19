// The batched sampling ops (ops/sample, ops/logits_process), which the model runner uses
// to sample on the device, against the engine's own per-row functions: SampleRef and
// SampleCpu draw the same token as Sample() with the same log-probabilities, and
// LogitsProcessRef / LogitsProcessCpu adjust logits bit-identically to ProcessLogits.
// (The CUDA kernels are held to the op references in ops_cuda_test.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"
#include "engine/logits_processor.h"
#include "engine/sampler.h"
#include "ops/logits_process/logits_process.h"
#include "ops/sample/sample.h"
#include "ops/sample/sample_test_util.h"

namespace tide {
namespace {

SamplingParams ToSamplingParams(const SampleRowSpec& s, int top_logprobs) {
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.seed = s.seed;
  p.logprobs = true;
  p.top_logprobs = top_logprobs;
  return p;
}

TEST(DeviceSamplingTest, SampleOpsMatchEngineSampler) {
  Rng rng(61);
  ThreadPool pool(2);
  int sampled = 0;
  struct Shape {
    int64_t rows, vocab;
    int k;
    bool same_raw;
  };
  for (const Shape& sh : {Shape{168, 2000, 5, false}, Shape{84, 30000, 0, true}, Shape{42, 9, 20, false},
                          Shape{12, 128256, 2, false}}) {
    for (int round = 0; round < 2; ++round) {
      const std::vector<float> x = testing::DrawLogits(sh.rows, sh.vocab, rng);
      std::vector<float> raw = x;
      if (!sh.same_raw)
        for (float& f : raw) f += rng.Uniform(-1.f, 1.f);
      const float* rawp = sh.same_raw ? x.data() : raw.data();
      const std::vector<SampleRowSpec> spec = testing::DrawSpecs(sh.rows, sh.vocab, rng);
      testing::SampleOut ref(sh.rows, sh.k), cpu(sh.rows, sh.k);
      SampleParams p{x.data(),         rawp,           spec.data(), sh.rows, sh.vocab, sh.k, ref.token.data(),
                     ref.logprob.data(), ref.top_ids.data(), ref.top_lp.data()};
      SampleRef(p);
      p.token = cpu.token.data();
      p.logprob = cpu.logprob.data();
      p.top_ids = cpu.top_ids.data();
      p.top_logprobs = cpu.top_lp.data();
      SampleCpu(p, &pool);
      for (int64_t r = 0; r < sh.rows; ++r) {
        const size_t ur = static_cast<size_t>(r);
        const SampleRowSpec& s = spec[ur];
        const SampleResult want = Sample(x.data() + r * sh.vocab, rawp + r * sh.vocab, sh.vocab,
                                         ToSamplingParams(s, sh.k), s.position);
        ASSERT_EQ(ref.token[ur], want.token) << "vocab " << sh.vocab << " row " << r;
        ASSERT_EQ(cpu.token[ur], want.token) << "vocab " << sh.vocab << " row " << r;
        EXPECT_EQ(ref.logprob[ur], want.logprob) << r;
        EXPECT_EQ(cpu.logprob[ur], want.logprob) << r;
        for (int j = 0; j < sh.k; ++j) {
          const size_t at = ur * static_cast<size_t>(sh.k) + static_cast<size_t>(j);
          const bool have = static_cast<size_t>(j) < want.top.size();
          EXPECT_EQ(ref.top_ids[at], have ? want.top[static_cast<size_t>(j)].id : -1) << r << " " << j;
          EXPECT_EQ(cpu.top_ids[at], ref.top_ids[at]) << r << " " << j;
          if (have) {
            EXPECT_EQ(ref.top_lp[at], want.top[static_cast<size_t>(j)].logprob) << r << " " << j;
            EXPECT_EQ(cpu.top_lp[at], ref.top_lp[at]) << r << " " << j;
          } else {
            EXPECT_EQ(ref.top_lp[at], -INFINITY);
            EXPECT_EQ(cpu.top_lp[at], -INFINITY);
          }
        }
        sampled += s.temperature != 0.f;
      }
    }
  }
  EXPECT_GT(sampled, 300);
}

TEST(DeviceSamplingTest, LogitsProcessOpsMatchProcessLogits) {
  Rng rng(62);
  ThreadPool pool(2);
  const std::vector<int32_t> eos = {2, 7};
  for (const auto& [rows, vocab] : std::vector<std::pair<int64_t, int64_t>>{{40, 3000}, {8, 128256}, {30, 12}}) {
    std::vector<float> x(static_cast<size_t>(rows * vocab));
    for (float& f : x) f = rng.Uniform(-6.f, 6.f);
    std::vector<float> want = x;
    std::vector<int32_t> prompt_off{0}, prompt, output_off{0}, output, bias_off{0}, bias_ids, masked_off{0}, masked;
    std::vector<float> bias_values, rep, pres, freq;
    auto some_id = [&] {  // often a small hot set: repeats
      return static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(rng.Uniform() < 0.5 ? std::min<int64_t>(vocab, 30) : vocab));
    };
    for (int64_t r = 0; r < rows; ++r) {
      SamplingParams sp;
      std::vector<int32_t> pr(rng.NextU64() % 200), out(rng.NextU64() % 200);
      for (int32_t& id : pr) id = some_id();
      for (int32_t& id : out) id = some_id();
      for (int i = static_cast<int>(rng.NextU64() % 6); i > 0; --i) sp.logit_bias.push_back({some_id(), rng.Uniform(-4.f, 4.f)});
      for (int i = static_cast<int>(rng.NextU64() % 3); i > 0; --i) sp.stop_token_ids.push_back(some_id());
      const int kind = static_cast<int>(r % 4);
      sp.repetition_penalty = kind == 0 || kind == 1 ? rng.Uniform(0.5f, 2.f) : 1.f;
      sp.presence_penalty = kind == 0 || kind == 2 ? rng.Uniform(-2.f, 2.f) : 0.f;
      sp.frequency_penalty = kind == 0 || kind == 2 ? rng.Uniform(-2.f, 2.f) : 0.f;
      sp.min_tokens = static_cast<int>(rng.NextU64() % 300);
      sp.ignore_eos = r % 3 == 0;
      ProcessLogits(sp, pr, out, eos, want.data() + r * vocab, vocab);
      // The op's inputs as the runner builds them: the masked ids are the EOS (unless
      // ignore_eos) and stop ids while min_tokens is not reached.
      prompt.insert(prompt.end(), pr.begin(), pr.end());
      prompt_off.push_back(static_cast<int32_t>(prompt.size()));
      output.insert(output.end(), out.begin(), out.end());
      output_off.push_back(static_cast<int32_t>(output.size()));
      for (const auto& [id, b] : sp.logit_bias) {
        bias_ids.push_back(id);
        bias_values.push_back(b);
      }
      bias_off.push_back(static_cast<int32_t>(bias_ids.size()));
      if (static_cast<int64_t>(out.size()) < sp.min_tokens) {
        if (!sp.ignore_eos) masked.insert(masked.end(), eos.begin(), eos.end());
        masked.insert(masked.end(), sp.stop_token_ids.begin(), sp.stop_token_ids.end());
      }
      masked_off.push_back(static_cast<int32_t>(masked.size()));
      rep.push_back(sp.repetition_penalty);
      pres.push_back(sp.presence_penalty);
      freq.push_back(sp.frequency_penalty);
    }
    for (int backend = 0; backend < 2; ++backend) {
      std::vector<float> got = x;
      const LogitsProcessParams p{got.data(),        rows,          vocab,           prompt_off.data(), prompt.data(),
                                  output_off.data(), output.data(), bias_off.data(), bias_ids.data(),   bias_values.data(),
                                  masked_off.data(), masked.data(), rep.data(),      pres.data(),       freq.data()};
      ASSERT_TRUE(p.check().ok());
      if (backend == 0) {
        LogitsProcessRef(p);
      } else {
        LogitsProcessCpu(p, &pool);
      }
      ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
          << (backend == 0 ? "ref" : "cpu") << " vocab " << vocab;
    }
    EXPECT_NE(std::memcmp(x.data(), want.data(), want.size() * sizeof(float)), 0);
  }
}

}  // namespace
}  // namespace tide
