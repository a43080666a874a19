// EngineCore with the fake model: outputs against a sequential reference (the fake's
// logits replayed token by token), stopping rules, cancellation in every state, errors.
#include "engine/engine_core.h"

#include <gtest/gtest.h>

#include <map>

#include "base/rng.h"
#include "engine/fake_model_runner.h"
#include "engine/logits_processor.h"
#include "engine/sampler.h"

namespace tide {
namespace {

EngineOptions SmallOptions(int64_t blocks = 64) {
  EngineOptions o;
  o.num_kv_blocks = blocks;
  o.block_size = 4;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 32;
  o.max_model_len = 128;
  return o;
}

Request MakeRequest(const std::string& id, std::vector<int32_t> prompt, int max_tokens, uint64_t seed = 1) {
  Request r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.sampling.max_tokens = max_tokens;
  r.sampling.temperature = 0.9f;
  r.sampling.seed = seed;
  r.sampling.ignore_eos = true;
  return r;
}

std::vector<int32_t> RandomPrompt(Rng& rng, int n, int vocab = 64) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(1 + static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(vocab - 1)));
  return p;
}

// What the request must produce: one token at a time, no batching, no cache.
std::vector<int32_t> Reference(const FakeModelRunner& fake, const Request& r, int index = 0) {
  std::vector<int32_t> ctx = r.prompt, out;
  std::vector<float> logits(static_cast<size_t>(fake.config().vocab_size));
  SamplingParams sp = r.sampling;
  sp.seed += static_cast<uint64_t>(index);
  for (int i = 0; i < r.sampling.max_tokens; ++i) {
    fake.TEST_Logits(ctx, logits.data());
    ProcessLogits(r.sampling, std::span<const int32_t>(r.prompt), out, fake.config().eos_token_ids, logits.data(),
                  fake.config().vocab_size);
    const int32_t t = Sample(logits.data(), fake.config().vocab_size, sp, static_cast<uint64_t>(i)).token;
    ctx.push_back(t);
    out.push_back(t);
    const auto& eos = fake.config().eos_token_ids;
    if (!r.sampling.ignore_eos && std::find(eos.begin(), eos.end(), t) != eos.end()) break;
    if (std::find(r.sampling.stop_token_ids.begin(), r.sampling.stop_token_ids.end(), t) != r.sampling.stop_token_ids.end()) break;
  }
  return out;
}

std::pair<std::string, int> K(const std::string& id, int i) { return {id, i}; }

struct Collected {
  std::map<std::pair<std::string, int>, std::vector<int32_t>> tokens;
  std::map<std::pair<std::string, int>, RequestOutput> final;
};

void Absorb(std::vector<RequestOutput>& outs, Collected* c) {
  for (RequestOutput& o : outs) {
    auto key = std::make_pair(o.request_id, o.index);
    auto& t = c->tokens[key];
    t.insert(t.end(), o.token_ids.begin(), o.token_ids.end());
    if (o.finished()) {
      EXPECT_FALSE(c->final.count(key)) << "two final outputs for " << o.request_id;
      c->final[key] = o;
    }
  }
  outs.clear();
}

void RunToCompletion(EngineCore& core, Collected* c, int max_steps = 100000) {
  std::vector<RequestOutput> outs;
  for (int i = 0; i < max_steps && core.HasUnfinished(); ++i) {
    core.Step(&outs);
    Absorb(outs, c);
  }
  EXPECT_FALSE(core.HasUnfinished());
}

std::unique_ptr<EngineCore> MakeCore(FakeModelRunner& fake, const EngineOptions& o) {
  auto core = EngineCore::Create(fake, nullptr, o);
  EXPECT_TRUE(core.ok()) << core.status().ToString();
  return core.ok() ? std::move(*core) : nullptr;
}

TEST(EngineCoreTest, SingleRequestMatchesReferenceWithUsageAndTimes) {
  FakeModelRunner fake;
  auto core = MakeCore(fake, SmallOptions());
  Request r = MakeRequest("a", {5, 6, 7, 8, 9, 10}, 12);
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 3;
  ASSERT_TRUE(core->AddRequest(r, EngineClock()).ok());
  Collected c;
  std::vector<RequestOutput> outs;
  int64_t logprob_rows = 0;
  while (core->HasUnfinished()) {
    core->Step(&outs);
    for (const auto& o : outs) {
      logprob_rows += static_cast<int64_t>(o.logprobs.size());
      for (const auto& lp : o.logprobs) EXPECT_EQ(lp.top.size(), 3u);
    }
    Absorb(outs, &c);
  }
  EXPECT_EQ(c.tokens[K("a", 0)], Reference(fake, r));
  EXPECT_EQ(logprob_rows, 12);
  const RequestOutput& f = c.final[K("a", 0)];
  EXPECT_EQ(f.finish_reason, FinishReason::kLength);
  EXPECT_EQ(f.usage.prompt_tokens, 6);
  EXPECT_EQ(f.usage.completion_tokens, 12);
  EXPECT_LE(f.times.arrival, f.times.first_scheduled);
  EXPECT_LE(f.times.first_scheduled, f.times.first_token);
  EXPECT_LE(f.times.first_token, f.times.finished);
  EXPECT_EQ(core->block_pool().num_free(), 64);
}

TEST(EngineCoreTest, StoppingRules) {
  FakeModelRunner fake;
  Rng rng(3);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 7);
  Request base = MakeRequest("x", prompt, 40);
  const std::vector<int32_t> free_run = Reference(fake, base);
  ASSERT_EQ(free_run.size(), 40u);
  struct Case {
    std::string name;
    std::function<void(SamplingParams&)> edit;
    FinishReason want;
    size_t want_len;
  };
  const int32_t t5 = free_run[5];
  // The first index at which free_run has t5 (stop ids end at their first occurrence).
  const size_t first_t5 = static_cast<size_t>(std::find(free_run.begin(), free_run.end(), t5) - free_run.begin());
  const std::vector<Case> cases = {
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 9; }, FinishReason::kLength, 9},
      {"stop token id", [&](SamplingParams& p) { p.stop_token_ids = {t5}; }, FinishReason::kStop, first_t5 + 1},
      {"stop id still stops under ignore_eos", [&](SamplingParams& p) { p.stop_token_ids = {t5}; p.ignore_eos = true; }, FinishReason::kStop, first_t5 + 1},
  };
  for (const Case& cs : cases) {
    auto core = MakeCore(fake, SmallOptions());
    Request r = base;
    cs.edit(r.sampling);
    ASSERT_TRUE(core->AddRequest(r, EngineClock()).ok());
    Collected c;
    RunToCompletion(*core, &c);
    EXPECT_EQ(c.final[K("x", 0)].finish_reason, cs.want) << cs.name;
    EXPECT_EQ(c.tokens[K("x", 0)].size(), cs.want_len) << cs.name;
    EXPECT_EQ(c.tokens[K("x", 0)], Reference(fake, r)) << cs.name;
  }
}

TEST(EngineCoreTest, EosEndsUnlessIgnoredAndMinTokensMasksIt) {
  // Make token 0 (EOS) likely: bias it up. min_tokens must still hold it back.
  FakeModelRunner fake;
  Request r = MakeRequest("e", {3, 4, 5}, 20);
  r.sampling.ignore_eos = false;
  r.sampling.logit_bias = {{0, 6.f}};
  {
    auto core = MakeCore(fake, SmallOptions());
    ASSERT_TRUE(core->AddRequest(r, EngineClock()).ok());
    Collected c;
    RunToCompletion(*core, &c);
    EXPECT_EQ(c.final[K("e", 0)].finish_reason, FinishReason::kStop);
    EXPECT_EQ(c.tokens[K("e", 0)].back(), 0);
    EXPECT_LT(c.tokens[K("e", 0)].size(), 5u);
  }
  r.sampling.min_tokens = 6;
  {
    auto core = MakeCore(fake, SmallOptions());
    ASSERT_TRUE(core->AddRequest(r, EngineClock()).ok());
    Collected c;
    RunToCompletion(*core, &c);
    const auto& t = c.tokens[K("e", 0)];
    ASSERT_GE(t.size(), 7u);
    for (size_t i = 0; i < 6; ++i) EXPECT_NE(t[i], 0) << i;
    EXPECT_EQ(t, Reference(fake, r));
  }
}

TEST(EngineCoreTest, PenaltiesChangeTheOutputDeterministically) {
  FakeModelRunner fake;
  Request r = MakeRequest("p", {1, 2, 3, 4}, 24);
  r.sampling.temperature = 0.f;
  const std::vector<int32_t> plain = Reference(fake, r);
  r.sampling.repetition_penalty = 1.5f;
  r.sampling.presence_penalty = 1.f;
  r.sampling.frequency_penalty = 0.5f;
  auto core = MakeCore(fake, SmallOptions());
  ASSERT_TRUE(core->AddRequest(r, EngineClock()).ok());
  Collected c;
  RunToCompletion(*core, &c);
  EXPECT_EQ(c.tokens[K("p", 0)], Reference(fake, r));
  EXPECT_NE(c.tokens[K("p", 0)], plain);
}

TEST(EngineCoreTest, RejectsBadRequestsBeforeAnyWork) {
  FakeModelRunner fake;
  auto core = MakeCore(fake, SmallOptions());
  struct Case {
    std::string name;
    Request r;
    StatusCode want;
  };
  std::vector<Case> cases;
  cases.push_back({"empty prompt", MakeRequest("a", {}, 4), StatusCode::kInvalidArgument});
  cases.push_back({"empty id", MakeRequest("", {1}, 4), StatusCode::kInvalidArgument});
  cases.push_back({"id outside vocab", MakeRequest("a", {1, 64}, 4), StatusCode::kInvalidArgument});
  cases.push_back({"too long", MakeRequest("a", std::vector<int32_t>(120, 1), 9), StatusCode::kInvalidArgument});
  Request bad_temp = MakeRequest("a", {1}, 4);
  bad_temp.sampling.temperature = -1;
  cases.push_back({"bad temperature", bad_temp, StatusCode::kInvalidArgument});
  Request stop_str = MakeRequest("a", {1}, 4);
  stop_str.sampling.stop = {"x"};
  cases.push_back({"stop strings without tokenizer", stop_str, StatusCode::kInvalidArgument});
  Request bias = MakeRequest("a", {1}, 4);
  bias.sampling.logit_bias = {{99, 1.f}};
  cases.push_back({"logit_bias outside vocab", bias, StatusCode::kInvalidArgument});
  Request lp = MakeRequest("a", {1}, 4);
  lp.sampling.top_logprobs = 21;
  cases.push_back({"top_logprobs > 20", lp, StatusCode::kInvalidArgument});
  for (const Case& c : cases) EXPECT_EQ(core->AddRequest(c.r, 0).code(), c.want) << c.name;
  EXPECT_FALSE(core->HasUnfinished());
  ASSERT_TRUE(core->AddRequest(MakeRequest("dup", {1, 2}, 4), 0).ok());
  EXPECT_EQ(core->AddRequest(MakeRequest("dup", {3}, 4), 0).code(), StatusCode::kAlreadyExists);
  Collected c;
  RunToCompletion(*core, &c);
  EXPECT_EQ(c.tokens[K("dup", 0)].size(), 4u);  // the first one, unharmed
}

TEST(EngineCoreTest, StartupRefusesInconsistentOptions) {
  FakeModelRunner fake;
  EngineOptions o = SmallOptions(31);  // 128 tokens need 32 blocks of 4
  auto core = EngineCore::Create(fake, nullptr, o);
  ASSERT_FALSE(core.ok());
  EXPECT_NE(core.status().message().find("31 blocks = 124 tokens"), std::string::npos) << core.status().ToString();
  o = SmallOptions();
  o.max_num_batched_tokens = 4;
  EXPECT_FALSE(EngineCore::Create(fake, nullptr, o).ok());
  o = SmallOptions();
  o.max_model_len = 5000;  // beyond the model's 4096
  EXPECT_FALSE(EngineCore::Create(fake, nullptr, o).ok());
  o = SmallOptions();
  o.num_kv_blocks = 0;
  o.kv_cache_bytes = 40 * 4 * 1024;  // 40 blocks of 4 tokens x 1 KiB
  auto ok = EngineCore::Create(fake, nullptr, o);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)->block_pool().num_blocks(), 40);
  EXPECT_NE((*ok)->KvSummary().find("40 blocks = 160 tokens"), std::string::npos);
}

TEST(EngineCoreTest, ForwardFailureAbortsTheStepsRequestsAndFreesBlocks) {
  FakeModelRunner fake;
  auto core = MakeCore(fake, SmallOptions());
  ASSERT_TRUE(core->AddRequest(MakeRequest("a", {1, 2, 3}, 5), 0).ok());
  fake.TEST_FailNextForward();
  std::vector<RequestOutput> outs;
  core->Step(&outs);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].finish_reason, FinishReason::kAbort);
  EXPECT_EQ(outs[0].status.code(), StatusCode::kInternal);
  EXPECT_FALSE(core->HasUnfinished());
  EXPECT_EQ(core->block_pool().num_free(), 64);
  ASSERT_TRUE(core->AddRequest(MakeRequest("b", {1, 2, 3}, 5), 0).ok());  // still usable
  Collected c;
  RunToCompletion(*core, &c);
  EXPECT_EQ(c.tokens[K("b", 0)].size(), 5u);
}

TEST(EngineCoreTest, ParallelSamplingSharesThePromptBlocks) {
  FakeModelRunner fake;
  auto core = MakeCore(fake, SmallOptions());
  Rng rng(9);
  Request r = MakeRequest("n", RandomPrompt(rng, 21), 6, /*seed=*/100);
  r.sampling.n = 3;
  ASSERT_TRUE(core->AddRequest(r, 0).ok());
  Collected c;
  RunToCompletion(*core, &c);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.tokens[K("n", i)], Reference(fake, r, i)) << "completion " << i;
    EXPECT_EQ(c.final[K("n", i)].usage.cached_prompt_tokens, i == 0 ? 0 : 20) << i;  // 5 full blocks of 4
  }
  EXPECT_NE(c.tokens[K("n", 0)], c.tokens[K("n", 1)]);
  EXPECT_EQ(core->stats().prefix_cache.hit_tokens, 40);
}

}  // namespace
}  // namespace tide
