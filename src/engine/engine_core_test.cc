// EngineCore with the fake model: outputs against a sequential reference (the fake's
// logits replayed token by token), stopping rules, cancellation in every state, errors.
#include "engine/engine_core.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>

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

TEST(EngineCoreTest, LogprobsAreOfTheRawDistributionNotTheProcessedOne) {
  // A strong bias and a repetition penalty move the sampled tokens; the reported
  // logprobs must still be log_softmax of the model's raw row (vLLM's default).
  FakeModelRunner fake;
  Request r = MakeRequest("raw", {9, 10, 11, 12, 13}, 16, /*seed=*/5);
  r.sampling.logit_bias = {{7, 8.f}, {3, -30.f}};
  r.sampling.repetition_penalty = 3.f;
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 4;
  auto core = MakeCore(fake, SmallOptions());
  ASSERT_TRUE(core->AddRequest(r, EngineClock()).ok());
  std::vector<int32_t> tokens;
  std::vector<SampleResult> lps;
  std::vector<RequestOutput> outs;
  while (core->HasUnfinished()) {
    core->Step(&outs);
    for (const RequestOutput& o : outs) {
      tokens.insert(tokens.end(), o.token_ids.begin(), o.token_ids.end());
      lps.insert(lps.end(), o.logprobs.begin(), o.logprobs.end());
    }
    outs.clear();
  }
  ASSERT_EQ(tokens, Reference(fake, r));  // still sampled from the processed logits
  ASSERT_EQ(lps.size(), tokens.size());
  const int64_t v = fake.config().vocab_size;
  std::vector<int32_t> ctx = r.prompt, out;
  std::vector<float> raw(static_cast<size_t>(v)), processed;
  std::vector<double> lp_raw, lp_processed;
  int biased = 0, differ = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    fake.TEST_Logits(ctx, raw.data());
    processed = raw;
    ProcessLogits(r.sampling, r.prompt, out, fake.config().eos_token_ids, processed.data(), v);
    LogSoftmax(raw.data(), v, &lp_raw);
    LogSoftmax(processed.data(), v, &lp_processed);
    const auto t = static_cast<size_t>(tokens[i]);
    EXPECT_EQ(lps[i].token, tokens[i]);
    EXPECT_EQ(lps[i].logprob, static_cast<float>(lp_raw[t])) << "step " << i;
    differ += lps[i].logprob != static_cast<float>(lp_processed[t]);
    biased += tokens[i] == 7;
    // top_logprobs: the 4 most likely raw tokens, in order.
    std::vector<int32_t> order(static_cast<size_t>(v));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return raw[static_cast<size_t>(a)] > raw[static_cast<size_t>(b)]; });
    ASSERT_EQ(lps[i].top.size(), 4u);
    for (size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(lps[i].top[k].id, order[k]) << "step " << i << " rank " << k;
      EXPECT_EQ(lps[i].top[k].logprob, static_cast<float>(lp_raw[static_cast<size_t>(order[k])]));
    }
    ctx.push_back(tokens[i]);
    out.push_back(tokens[i]);
  }
  EXPECT_GT(biased, 0);  // the bias did steer sampling
  EXPECT_EQ(differ, static_cast<int>(tokens.size()));  // and raw != processed every step
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

TEST(EngineCoreTest, ParallelSamplingWithoutPrefixCachingComputesThePromptOnce) {
  FakeModelRunner fake;
  EngineOptions o = SmallOptions();
  o.enable_prefix_caching = false;
  Rng rng(21);
  Request r = MakeRequest("n4", RandomPrompt(rng, 21), 10, /*seed=*/300);
  r.sampling.n = 4;
  auto core = MakeCore(fake, o);
  ASSERT_TRUE(core->AddRequest(r, 0).ok());
  Collected c;
  RunToCompletion(*core, &c);
  // 21 = 5 full blocks of 4 + 1: the siblings share the 5 blocks and each computes only
  // the partial block's token.
  EXPECT_EQ(core->stats().num_prompt_tokens_computed, 21 + 3 * 1);
  EXPECT_EQ(core->stats().prefix_cache.hit_tokens, 0);
  EXPECT_EQ(core->block_pool().num_free(), core->block_pool().num_blocks());
  // Identical to 4 separate requests seeded seed + i (which compute the prompt 4 times).
  auto separate = MakeCore(fake, o);
  for (int i = 0; i < 4; ++i) {
    Request one = r;
    one.id = "s" + std::to_string(i);
    one.sampling.n = 1;
    one.sampling.seed = r.sampling.seed + static_cast<uint64_t>(i);
    ASSERT_TRUE(separate->AddRequest(one, 0).ok());
  }
  Collected sc;
  RunToCompletion(*separate, &sc);
  EXPECT_EQ(separate->stats().num_prompt_tokens_computed, 4 * 21);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c.tokens[K("n4", i)], sc.tokens[K("s" + std::to_string(i), 0)]) << i;
    EXPECT_EQ(c.tokens[K("n4", i)], Reference(fake, r, i)) << i;
    EXPECT_EQ(c.final[K("n4", i)].usage.cached_prompt_tokens, i == 0 ? 0 : 20) << i;
  }
  EXPECT_NE(c.tokens[K("n4", 0)], c.tokens[K("n4", 1)]);
}

TEST(EngineCoreTest, CancellingAnNRequestInEveryStateFreesExactlyItsBlocks) {
  // "other" runs ahead of the n=4 request and never waits on it, so a twin core running
  // "other" alone holds exactly the blocks that must remain after the cancel. A runner
  // serves one core at a time (steps may be in flight in it), so the twin has its own.
  FakeModelRunner fake, twin_fake;
  EngineOptions o = SmallOptions();
  o.enable_prefix_caching = false;
  o.max_num_batched_tokens = 16;  // the n request's 21-token prompt is chunked
  Rng rng(4);
  const Request other = MakeRequest("other", RandomPrompt(rng, 9), 30, 7);
  Request r = MakeRequest("n4", RandomPrompt(rng, 21), 12, /*seed=*/300);
  r.sampling.n = 4;
  for (int steps = 0; steps <= 13; ++steps) {
    auto core = MakeCore(fake, o), twin = MakeCore(twin_fake, o);
    ASSERT_TRUE(core->AddRequest(other, 0).ok());
    ASSERT_TRUE(core->AddRequest(r, 0).ok());
    ASSERT_TRUE(twin->AddRequest(other, 0).ok());
    Collected c, tc;
    std::vector<RequestOutput> outs;
    for (int i = 0; i < steps; ++i) {
      core->Step(&outs);
      Absorb(outs, &c);
      twin->Step(&outs);
      Absorb(outs, &tc);
    }
    ASSERT_TRUE(core->Abort("n4", &outs)) << steps;
    for (const RequestOutput& out : outs) EXPECT_EQ(out.finish_reason, FinishReason::kAbort);
    Absorb(outs, &c);
    EXPECT_EQ(core->block_pool().num_used(), twin->block_pool().num_used()) << "after " << steps << " steps";
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(c.final.count(K("n4", i))) << steps << " completion " << i;
    RunToCompletion(*core, &c);
    EXPECT_EQ(c.tokens[K("other", 0)], Reference(fake, other)) << steps;
    EXPECT_EQ(core->block_pool().num_free(), core->block_pool().num_blocks()) << steps;
  }
}

TEST(EngineCoreTest, ALaterBetterPriorityRequestPreemptsAndTheVictimResumesIdentically) {
  FakeModelRunner fake;
  EngineOptions o = SmallOptions(32);  // 128 tokens: exactly one max_model_len request
  o.max_num_seqs = 2;
  Rng rng(8);
  Request low = MakeRequest("low", RandomPrompt(rng, 30), 40, 11);
  low.priority = 5;
  Request low2 = MakeRequest("low2", RandomPrompt(rng, 6), 40, 12);
  low2.priority = 5;
  Request high = MakeRequest("high", RandomPrompt(rng, 50), 30, 13);
  high.priority = 0;
  auto core = MakeCore(fake, o);
  ASSERT_TRUE(core->AddRequest(low, 0).ok());
  ASSERT_TRUE(core->AddRequest(low2, 0).ok());
  Collected c;
  std::vector<RequestOutput> outs;
  for (int i = 0; i < 6; ++i) {
    core->Step(&outs);
    Absorb(outs, &c);
  }
  ASSERT_EQ(core->stats().num_running, 2);
  ASSERT_TRUE(core->AddRequest(high, 0).ok());
  core->Step(&outs);
  Absorb(outs, &c);
  EXPECT_GE(core->stats().num_preemptions, 1);
  EXPECT_EQ(c.tokens[K("high", 0)].size(), 0u);  // 50 tokens > one step's 32: still prefilling
  RunToCompletion(*core, &c);
  EXPECT_EQ(c.tokens[K("low", 0)], Reference(fake, low));
  EXPECT_EQ(c.tokens[K("low2", 0)], Reference(fake, low2));
  EXPECT_EQ(c.tokens[K("high", 0)], Reference(fake, high));
  // The high-priority request finished before the preempted one.
  EXPECT_LT(c.final[K("high", 0)].times.finished, c.final[K("low2", 0)].times.finished);
  EXPECT_EQ(core->block_pool().num_free(), 32);
}

TEST(EngineCoreTest, PromptLogprobsCoverEveryPromptTokenDespiteACachedPrefix) {
  FakeModelRunner fake;
  EngineOptions o = SmallOptions();
  o.max_num_batched_tokens = 8;  // the prompt is computed in chunks
  Rng rng(12);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 23);
  auto core = MakeCore(fake, o);
  Collected c;
  ASSERT_TRUE(core->AddRequest(MakeRequest("warm", prompt, 2), 0).ok());  // caches the prompt's blocks
  RunToCompletion(*core, &c);
  Request r = MakeRequest("pl", prompt, 3, 5);
  r.sampling.prompt_logprobs = 2;
  r.sampling.n = 2;
  r.sampling.logit_bias = {{prompt[3], 9.f}};  // must not show in prompt logprobs (raw)
  ASSERT_TRUE(core->AddRequest(r, 0).ok());
  std::vector<RequestOutput> outs;
  std::vector<SampleResult> pls;
  int deliveries = 0;
  while (core->HasUnfinished()) {
    core->Step(&outs);
    for (RequestOutput& d : outs) {
      if (d.prompt_logprobs.empty()) continue;
      ++deliveries;
      EXPECT_EQ(d.index, 0);
      EXPECT_EQ(d.token_ids.size(), 1u);  // the first delta
      pls = d.prompt_logprobs;
    }
    Absorb(outs, &c);
  }
  EXPECT_EQ(deliveries, 1);
  ASSERT_EQ(pls.size(), prompt.size() - 1);
  const int64_t v = fake.config().vocab_size;
  std::vector<float> raw(static_cast<size_t>(v));
  std::vector<double> lp;
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    fake.TEST_Logits(std::vector<int32_t>(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(i) + 1), raw.data());
    LogSoftmax(raw.data(), v, &lp);
    EXPECT_EQ(pls[i].token, prompt[i + 1]) << i;
    EXPECT_EQ(pls[i].logprob, static_cast<float>(lp[static_cast<size_t>(prompt[i + 1])])) << i;
    ASSERT_EQ(pls[i].top.size(), 2u);
    const auto best = std::max_element(raw.begin(), raw.end()) - raw.begin();
    EXPECT_EQ(pls[i].top[0].id, best) << i;
    EXPECT_EQ(pls[i].top[0].logprob, static_cast<float>(lp[static_cast<size_t>(best)])) << i;
  }
  // Completion 0 computed its whole prompt; its sibling reused the cached blocks.
  EXPECT_EQ(c.final[K("pl", 0)].usage.cached_prompt_tokens, 0);
  EXPECT_EQ(c.final[K("pl", 1)].usage.cached_prompt_tokens, 20);
  EXPECT_EQ(c.tokens[K("pl", 0)], Reference(fake, r, 0));
  EXPECT_EQ(c.tokens[K("pl", 1)], Reference(fake, r, 1));
  EXPECT_EQ(core->block_pool().num_free(), core->block_pool().num_blocks());
  Request bad = r;
  bad.id = "bad";
  bad.sampling.prompt_logprobs = 21;
  EXPECT_EQ(core->AddRequest(bad, 0).code(), StatusCode::kInvalidArgument);
}

TEST(EngineCoreTest, PromptLogprobsSurviveAPreemptionMidPrompt) {
  // A low-priority request asking for prompt logprobs is preempted while its prompt is
  // half computed; the entries must still be complete, in order and exact.
  FakeModelRunner fake;
  EngineOptions o = SmallOptions(32);
  o.max_num_seqs = 1;
  o.max_num_batched_tokens = 8;
  Rng rng(13);
  Request low = MakeRequest("low", RandomPrompt(rng, 30), 4, 2);
  low.priority = 2;
  low.sampling.prompt_logprobs = 0;
  auto core = MakeCore(fake, o);
  ASSERT_TRUE(core->AddRequest(low, 0).ok());
  std::vector<RequestOutput> outs;
  Collected c;
  core->Step(&outs);
  core->Step(&outs);  // 16 of 30 prompt tokens
  ASSERT_TRUE(core->AddRequest(MakeRequest("high", RandomPrompt(rng, 5), 3, 3), 0).ok());
  std::vector<SampleResult> pls;
  auto take = [&] {
    for (RequestOutput& d : outs)
      if (d.request_id == "low") pls.insert(pls.end(), d.prompt_logprobs.begin(), d.prompt_logprobs.end());
    Absorb(outs, &c);
  };
  take();
  while (core->HasUnfinished()) core->Step(&outs), take();
  EXPECT_EQ(core->stats().num_preemptions, 1);
  EXPECT_LT(c.final[K("high", 0)].times.finished, c.final[K("low", 0)].times.finished);
  ASSERT_EQ(pls.size(), 29u);
  const int64_t v = fake.config().vocab_size;
  std::vector<float> raw(static_cast<size_t>(v));
  std::vector<double> lp;
  for (size_t i = 0; i < pls.size(); ++i) {
    fake.TEST_Logits(std::vector<int32_t>(low.prompt.begin(), low.prompt.begin() + static_cast<std::ptrdiff_t>(i) + 1), raw.data());
    LogSoftmax(raw.data(), v, &lp);
    EXPECT_EQ(pls[i].token, low.prompt[i + 1]) << i;
    EXPECT_EQ(pls[i].logprob, static_cast<float>(lp[static_cast<size_t>(low.prompt[i + 1])])) << i;
    EXPECT_TRUE(pls[i].top.empty());
  }
  EXPECT_EQ(c.tokens[K("low", 0)], Reference(fake, low));
}

// The async pipeline step by step: the first Step only launches (its outputs come one
// Step later), no step computes a token past max_tokens, and a stop leaves exactly one
// speculative step whose sample is never emitted. Without async scheduling each Step
// emits its own step.
TEST(EngineCoreTest, AsyncStepsLagByOneNeverPassMaxTokensAndDiscardTheStepAfterAStop) {
  Rng rng(12);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 6);
  Request free_run = MakeRequest("m", prompt, 7);
  FakeModelRunner ref_fake;
  const std::vector<int32_t> want = Reference(ref_fake, free_run);
  for (bool async : {false, true}) {
    const std::string mode = async ? "async" : "sync";
    // max_tokens = 7: 1 prefill + 6 decode steps in both modes.
    {
      FakeModelRunner fake;
      EngineOptions o = SmallOptions();
      o.async_scheduling = async;
      auto core = MakeCore(fake, o);
      ASSERT_TRUE(core->AddRequest(free_run, 0).ok());
      std::vector<RequestOutput> outs;
      core->Step(&outs);
      EXPECT_EQ(outs.size(), async ? 0u : 1u) << mode;
      Collected c;
      Absorb(outs, &c);
      RunToCompletion(*core, &c);
      EXPECT_EQ(c.tokens[K("m", 0)], want) << mode;
      EXPECT_EQ(fake.TEST_steps().size(), 7u) << mode;
      EXPECT_EQ(c.final[K("m", 0)].usage.completion_tokens, 7) << mode;
    }
    // A stop id at the third token: the async engine has already launched the step for
    // the fourth; it runs, and its sample is dropped.
    {
      FakeModelRunner fake;
      EngineOptions o = SmallOptions();
      o.async_scheduling = async;
      auto core = MakeCore(fake, o);
      Request r = free_run;
      r.sampling.stop_token_ids = {want[2]};
      const size_t first = static_cast<size_t>(std::find(want.begin(), want.end(), want[2]) - want.begin());
      ASSERT_TRUE(core->AddRequest(r, 0).ok());
      Collected c;
      RunToCompletion(*core, &c);
      EXPECT_EQ(c.tokens[K("m", 0)], std::vector<int32_t>(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(first) + 1))
          << mode;
      EXPECT_EQ(c.final[K("m", 0)].finish_reason, FinishReason::kStop) << mode;
      EXPECT_EQ(c.final[K("m", 0)].usage.completion_tokens, static_cast<int64_t>(first) + 1) << mode;
      EXPECT_EQ(fake.TEST_steps().size(), first + 1 + (async ? 1 : 0)) << mode;
      EXPECT_EQ(core->block_pool().num_free(), core->block_pool().num_blocks()) << mode;
      EXPECT_EQ(core->stats().num_generated_tokens, static_cast<int64_t>(first) + 1) << mode;
    }
    // Aborted while its next step is in flight: the abort's final output is the last
    // thing the request emits, with the tokens emitted so far counted.
    {
      FakeModelRunner fake;
      EngineOptions o = SmallOptions();
      o.async_scheduling = async;
      auto core = MakeCore(fake, o);
      ASSERT_TRUE(core->AddRequest(free_run, 0).ok());
      Collected c;
      std::vector<RequestOutput> outs;
      while (c.tokens[K("m", 0)].size() < 3) {
        core->Step(&outs);
        Absorb(outs, &c);
      }
      ASSERT_TRUE(core->Abort("m", &outs));
      Absorb(outs, &c);
      EXPECT_FALSE(core->HasUnfinished()) << mode;
      EXPECT_EQ(c.tokens[K("m", 0)], std::vector<int32_t>(want.begin(), want.begin() + 3)) << mode;
      EXPECT_EQ(c.final[K("m", 0)].finish_reason, FinishReason::kAbort) << mode;
      EXPECT_EQ(c.final[K("m", 0)].usage.completion_tokens, 3) << mode;
      EXPECT_EQ(core->block_pool().num_free(), core->block_pool().num_blocks()) << mode;
      core->Step(&outs);
      EXPECT_TRUE(outs.empty()) << mode;
    }
  }
}

}  // namespace
}  // namespace tide
