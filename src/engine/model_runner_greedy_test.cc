// ModelRunner::ForwardGreedy and Launch / Collect against the host sampler: for every
// logit row the token, its logprob and the top logprobs equal what Sample() picks from
// Forward's logits (greedy: ties to the lowest id). Launch / Collect run two steps in
// flight, the decode steps reading their input tokens from the previous step's samples
// (prev_sample_row). And the engine with async scheduling against the synchronous
// engine: identical completions. On the CPU (the base implementation) and on CUDA (the
// op on the device, the token gather on the device, decode steps through CUDA graphs);
// the CUDA cases skip, saying why, without a GPU.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "backend/device_memory.h"
#include "engine/engine_core.h"
#include "engine/logits_processor.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
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

void ExpectSameAsHost(const SampleResult& got, const SampleResult& want, const std::string& what) {
  EXPECT_EQ(got.token, want.token) << what;
  EXPECT_NEAR(got.logprob, want.logprob, 1e-6) << what;
  ASSERT_GE(got.top.size(), want.top.size()) << what;
  for (size_t j = 0; j < want.top.size(); ++j) {
    EXPECT_EQ(got.top[j].id, want.top[j].id) << what << " top " << j;
    EXPECT_NEAR(got.top[j].logprob, want.top[j].logprob, 1e-6) << what << " top " << j;
  }
}

// Launch / Collect: each decode step's tokens are the previous step's samples, given
// only as prev_sample_row, with two steps in flight. Checked row by row against Forward of the same batch with those tokens
// written in, processed and sampled on the host (SampleRow). Variants: all greedy (the
// greedy op on CUDA); temperature, top-k, top-p, min-p, bias and min_tokens (the
// general op); penalties (logits_process over uploaded histories).
enum class Variant { kGreedy, kFilters, kPenalties };

void ExpectLaunchMatchesHost(const ExecContext& ctx, Variant variant) {
  auto model = Model::Load("tests/golden/llama");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE((*model)->PlaceOn(ctx).ok());
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(**model, ctx);
  ASSERT_TRUE(runner->AllocateKvCache(16, 16).ok());
  const int64_t vocab = runner->config().vocab_size;
  const std::vector<int32_t> eos = runner->config().eos_token_ids;
  std::vector<SamplingParams> params(3);
  for (int r = 0; r < 3; ++r) {
    params[r].logprobs = true;
    params[r].top_logprobs = 5 - r;
    params[r].seed = 70 + static_cast<uint64_t>(r);
  }
  switch (variant) {
    case Variant::kGreedy:
      for (SamplingParams& p : params) p.temperature = 0.f;
      break;
    case Variant::kFilters:
      params[0].temperature = 0.9f;
      params[1].temperature = 0.f;
      params[1].logit_bias = {{3, 2.5f}, {static_cast<int32_t>(vocab - 1), -1.f}};
      params[1].min_tokens = 3;
      if (!eos.empty()) params[1].logit_bias.push_back({eos[0], 30.f});  // EOS wins once unmasked
      params[2].temperature = 0.7f;
      params[2].top_k = 5;
      params[2].top_p = 0.8f;
      params[2].min_p = 0.05f;
      break;
    case Variant::kPenalties:
      // Row 0 picks the biased token 7 first; the penalties must then push it down, so a
      // wrong history (a pending output not substituted) changes the greedy tokens.
      params[0].temperature = 0.f;
      params[0].logit_bias = {{7, 8.f}};
      params[0].repetition_penalty = 3.f;
      params[0].presence_penalty = 2.f;
      params[0].frequency_penalty = 2.f;
      params[1].temperature = 0.8f;
      params[1].presence_penalty = 0.5f;
      params[1].frequency_penalty = 0.3f;
      params[2].temperature = 0.f;
      params[2].frequency_penalty = 2.f;
      params[2].repetition_penalty = 0.9f;
      params[2].logit_bias = {{5, 1.f}};
      break;
  }

  std::vector<ForwardBatch> steps = Steps(vocab);
  for (size_t k = 1; k < steps.size(); ++k) steps[k].prev_sample_row = {0, 1, 2};
  // Each sequence's prompt (the prefill batch) and outputs so far.
  std::vector<std::vector<int32_t>> prompt(3), output(3);
  for (int r = 0; r < 3; ++r)
    prompt[r].assign(steps[0].tokens.begin() + steps[0].q_start[r], steps[0].tokens.begin() + steps[0].q_start[r + 1]);
  // What the engine passes while outputs are pending: their count, values unknown.
  std::vector<std::vector<int32_t>> seen(3);
  auto rows_of = [&](size_t k) {
    std::vector<RowSampling> rows(3);
    for (size_t r = 0; r < 3; ++r) {
      seen[r] = output[r];
      seen[r].resize(k, kPendingToken);
      rows[r].sampler = &params[r];
      rows[r].position = k;
      rows[r].request = &params[r];
      rows[r].process = NeedsLogitsProcessing(params[r], static_cast<int64_t>(k));
      rows[r].prompt = prompt[r];
      rows[r].output = std::span<const int32_t>(seen[r]).first(k);
      rows[r].eos_ids = eos;
    }
    return rows;
  };
  std::vector<std::vector<SampleResult>> got(steps.size());
  auto launch = [&](size_t k) {
    const Status s = runner->Launch(steps[k], rows_of(k));
    ASSERT_TRUE(s.ok()) << s.ToString();
  };
  auto collect = [&](size_t k) {
    const Status s = runner->Collect(&got[k]);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(got[k].size(), 3u);
    for (size_t r = 0; r < 3; ++r) output[r].push_back(got[k][r].token);
  };
  for (auto& o : output) o.reserve(steps.size());
  // Launch k+1 before collecting k: the runner resolves k+1's tokens itself, and a
  // penalised row's pending last output (on CUDA copied into the uploaded history on the
  // device).
  launch(0);
  for (size_t k = 0; k < steps.size(); ++k) {
    if (k + 1 < steps.size()) launch(k + 1);
    collect(k);
  }
  std::vector<SampleResult> none;
  EXPECT_EQ(runner->Collect(&none).code(), StatusCode::kFailedPrecondition);
  // The host reference: the same batches with the sampled tokens written in (each step
  // again writes the same K/V as before, so every step sees one cache).
  std::vector<float> logits, scratch;
  for (size_t k = 0; k < steps.size(); ++k) {
    ForwardBatch b = steps[k];
    if (k > 0) {
      for (size_t r = 0; r < 3; ++r) b.tokens[r] = got[k - 1][r].token;
      b.prev_sample_row.clear();
    }
    const Status s = runner->Forward(b, &logits);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const std::vector<RowSampling> rows = rows_of(k);
    for (size_t r = 0; r < 3; ++r) {
      const SampleResult want = SampleRow(logits.data() + r * static_cast<size_t>(vocab), vocab, rows[r], &scratch);
      ExpectSameAsHost(got[k][r], want, "step " + std::to_string(k) + " row " + std::to_string(r));
    }
  }
  if (variant == Variant::kPenalties) {
    EXPECT_EQ(output[0][0], 7);
    EXPECT_NE(output[0][1], 7);
  }
  if (variant == Variant::kFilters && !eos.empty()) {
    // min_tokens held the EOS back exactly until the third output.
    EXPECT_NE(output[1][0], eos[0]);
    EXPECT_NE(output[1][2], eos[0]);
    EXPECT_EQ(output[1][3], eos[0]);
  }
  // A prev_sample_row past the previous step's rows is refused before any work.
  ForwardBatch bad = steps[1];
  bad.prev_sample_row = {0, 1, 3};
  EXPECT_EQ(runner->Launch(bad, rows_of(1)).code(), StatusCode::kInvalidArgument);
}

// Passes every call through and reports an asynchronous Launch, so that the engine
// pipelines its steps over the CPU runner as well (on CUDA the runner is asynchronous).
class PipelinedRunner final : public ModelRunner {
 public:
  explicit PipelinedRunner(ModelRunner& inner) : inner_(inner) {}
  const ModelConfig& config() const override { return inner_.config(); }
  int64_t kv_bytes_per_token() const override { return inner_.kv_bytes_per_token(); }
  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    return inner_.AllocateKvCache(num_blocks, block_size);
  }
  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override {
    return inner_.Forward(batch, logits);
  }
  Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) override {
    return inner_.Launch(batch, rows);
  }
  Status Collect(std::vector<SampleResult>* out) override { return inner_.Collect(out); }
  bool LaunchIsAsync() const override { return true; }

 private:
  ModelRunner& inner_;
};

// Six requests of equal prompt length and max_tokens, EOS ignored: every step holds the
// same sequences in both modes, so even kernels that are not batch-invariant see the
// same batches and the completions must agree bit for bit.
void ExpectAsyncEngineMatchesSync(const ExecContext& ctx) {
  auto model = Model::Load("tests/golden/llama");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE((*model)->PlaceOn(ctx).ok());
  const int64_t vocab = (*model)->config().vocab_size;
  std::vector<Request> reqs;
  for (int i = 0; i < 6; ++i) {
    Request r;
    r.id = "r" + std::to_string(i);
    for (int j = 0; j < 9; ++j) r.prompt.push_back(static_cast<int32_t>((i * 37 + j * 11 + 5) % vocab));
    r.sampling.max_tokens = 12;
    r.sampling.ignore_eos = true;
    r.sampling.temperature = i % 3 == 2 ? 0.8f : 0.f;
    r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = i % 2 ? 3 : 0;
    reqs.push_back(std::move(r));
  }
  for (bool all_greedy : {true, false}) {
    std::map<bool, std::vector<Completion>> out;
    for (bool async : {false, true}) {
      std::unique_ptr<ModelRunner> inner = MakeModelRunner(**model, ctx);
      PipelinedRunner runner(*inner);
      EngineOptions o;
      o.num_kv_blocks = 64;
      o.block_size = 16;
      o.max_model_len = 64;
      o.async_scheduling = async;
      auto core = EngineCore::Create(runner, nullptr, o);
      ASSERT_TRUE(core.ok()) << core.status().ToString();
      std::vector<Request> run = reqs;
      if (all_greedy)
        for (Request& r : run) r.sampling.temperature = 0.f;
      auto done = RunToCompletion(**core, run);
      ASSERT_TRUE(done.ok()) << done.status().ToString();
      out[async] = std::move(*done);
    }
    ASSERT_EQ(out[false].size(), out[true].size());
    for (size_t i = 0; i < out[false].size(); ++i) {
      const Completion &s = out[false][i], &a = out[true][i];
      const std::string what = s.request_id + (all_greedy ? " (all greedy)" : " (mixed)");
      EXPECT_EQ(s.token_ids.size(), 12u) << what;
      EXPECT_EQ(s.token_ids, a.token_ids) << what;
      EXPECT_EQ(s.finish_reason, a.finish_reason) << what;
      EXPECT_EQ(s.usage.completion_tokens, a.usage.completion_tokens) << what;
      ASSERT_EQ(s.logprobs.size(), a.logprobs.size()) << what;
      for (size_t t = 0; t < s.logprobs.size(); ++t) {
        EXPECT_EQ(s.logprobs[t].logprob, a.logprobs[t].logprob) << what << " token " << t;
        ASSERT_EQ(s.logprobs[t].top.size(), a.logprobs[t].top.size()) << what;
        for (size_t j = 0; j < s.logprobs[t].top.size(); ++j)
          EXPECT_EQ(s.logprobs[t].top[j].id, a.logprobs[t].top[j].id) << what << " token " << t;
      }
    }
  }
}

bool SkipWithoutCuda() {
  std::string why;
  if (CudaAvailable(&why)) return false;
  std::printf("skipping: %s\n", why.c_str());
  return true;
}

TEST(ModelRunnerGreedyTest, CpuMatchesSampler) { ExpectGreedyMatchesSampler(ExecContext{}); }

TEST(ModelRunnerGreedyTest, CudaMatchesSampler) {
  if (SkipWithoutCuda()) GTEST_SKIP() << "no usable CUDA device";
  ExpectGreedyMatchesSampler(ExecContext{.device = DeviceKind::kCuda});
}

TEST(ModelRunnerGreedyTest, CpuLaunchWithPendingTokensMatchesHost) {
  for (Variant v : {Variant::kGreedy, Variant::kFilters, Variant::kPenalties}) ExpectLaunchMatchesHost(ExecContext{}, v);
}

TEST(ModelRunnerGreedyTest, CudaLaunchWithPendingTokensMatchesHost) {
  if (SkipWithoutCuda()) GTEST_SKIP() << "no usable CUDA device";
  for (Variant v : {Variant::kGreedy, Variant::kFilters, Variant::kPenalties})
    ExpectLaunchMatchesHost(ExecContext{.device = DeviceKind::kCuda}, v);
}

TEST(ModelRunnerGreedyTest, CpuAsyncEngineMatchesSync) { ExpectAsyncEngineMatchesSync(ExecContext{}); }

TEST(ModelRunnerGreedyTest, CudaAsyncEngineMatchesSync) {
  if (SkipWithoutCuda()) GTEST_SKIP() << "no usable CUDA device";
  ExpectAsyncEngineMatchesSync(ExecContext{.device = DeviceKind::kCuda});
}

}  // namespace
}  // namespace tide
