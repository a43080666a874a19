// Determinism on real (tiny golden) models, verified rather than assumed: a seeded
// request's tokens and logprobs are bit-identical alone, among 50 other requests with
// small chunked-prefill budgets, after being preempted and recomputed, and with its
// prompt served from the prefix cache.
#include <gtest/gtest.h>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"
#include "engine/engine_core.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "model/model.h"

namespace tide {
namespace {

ExecContext Ctx() {
  static ThreadPool pool(2);
  ExecContext ctx;
  ctx.pool = &pool;
  return ctx;
}

Request Target(int64_t vocab) {
  Request r;
  r.id = "target";
  Rng rng(11);
  for (int i = 0; i < 37; ++i) r.prompt.push_back(static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(vocab)));
  r.sampling.temperature = 0.8f;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = 42;
  r.sampling.max_tokens = 24;
  r.sampling.ignore_eos = true;
  r.sampling.logprobs = true;
  r.sampling.repetition_penalty = 1.1f;
  return r;
}

std::vector<Request> Others(int64_t vocab, int count, const std::vector<int32_t>& shared_prefix) {
  std::vector<Request> out;
  Rng rng(99);
  for (int i = 0; i < count; ++i) {
    Request r;
    r.id = "other" + std::to_string(i);
    if (i % 3 == 0) r.prompt = shared_prefix;  // some share the target's prompt blocks
    for (int k = 1 + static_cast<int>(rng.NextU64() % 40); k > 0; --k)
      r.prompt.push_back(static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(vocab)));
    r.sampling.temperature = i % 2 ? 1.f : 0.f;
    r.sampling.seed = rng.NextU64();
    r.sampling.max_tokens = 1 + static_cast<int>(rng.NextU64() % 30);
    r.sampling.ignore_eos = true;
    out.push_back(std::move(r));
  }
  return out;
}

struct RunResult {
  Completion target;
  EngineStats stats;
};

RunResult RunWith(Model& model, EngineOptions o, std::vector<Request> reqs) {
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(model, Ctx());
  auto core = EngineCore::Create(*runner, nullptr, o);
  EXPECT_TRUE(core.ok()) << core.status().ToString();
  if (!core.ok()) return {};
  auto out = RunToCompletion(**core, std::move(reqs));
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  RunResult run;
  run.stats = (*core)->stats();
  for (Completion& c : *out)
    if (c.request_id == "target") run.target = std::move(c);
  EXPECT_EQ((*core)->block_pool().num_free(), (*core)->block_pool().num_blocks());
  return run;
}

void ExpectSame(const Completion& want, const Completion& got, const std::string& what) {
  ASSERT_EQ(want.token_ids, got.token_ids) << what;
  ASSERT_EQ(want.logprobs.size(), got.logprobs.size()) << what;
  for (size_t i = 0; i < want.logprobs.size(); ++i)
    ASSERT_EQ(want.logprobs[i].logprob, got.logprobs[i].logprob) << what << ": logprob of step " << i;
}

class DeterminismTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DeterminismTest, SeededRequestIsBitIdenticalInEveryBatchComposition) {
  auto model = Model::Load("tests/golden/" + GetParam());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const int64_t vocab = (*model)->config().vocab_size;
  const Request target = Target(vocab);

  EngineOptions alone_opt;
  alone_opt.num_kv_blocks = 256;
  alone_opt.enable_prefix_caching = false;
  alone_opt.max_model_len = 128;
  const RunResult alone = RunWith(**model, alone_opt, {target});
  ASSERT_EQ(alone.target.token_ids.size(), 24u);

  // Among 50 others, 16-token blocks, 48-token steps (prompts chunked at other offsets).
  EngineOptions busy = alone_opt;
  busy.enable_prefix_caching = true;
  busy.max_num_seqs = 16;
  busy.max_num_batched_tokens = 48;
  std::vector<Request> mixed = Others(vocab, 50, {});
  mixed.insert(mixed.begin() + 20, target);
  const RunResult among = RunWith(**model, busy, mixed);
  ExpectSame(alone.target, among.target, "among 50 others");

  // Preempted: a KV budget of 10 blocks (160 tokens) for 16 sequences; the target has
  // the lowest priority, so it is the one that gives its blocks back.
  EngineOptions tight = busy;
  tight.num_kv_blocks = 10;
  tight.block_size = 16;
  std::vector<Request> pressed = Others(vocab, 12, {});
  Request low = target;
  low.priority = 1;
  pressed.push_back(low);
  const RunResult preempted = RunWith(**model, tight, pressed);
  EXPECT_GT(preempted.stats.num_preemptions, 0);
  ExpectSame(alone.target, preempted.target, "after preemption");

  // Priority preemption: the target runs alone for a while, then better-priority
  // requests arrive that cannot all fit; the target (worst priority) is preempted for
  // them, resumes later and must still produce the same tokens and logprobs.
  {
    std::unique_ptr<ModelRunner> runner = MakeModelRunner(**model, Ctx());
    EngineOptions o = tight;
    o.max_num_seqs = 4;
    auto core = EngineCore::Create(*runner, nullptr, o);
    ASSERT_TRUE(core.ok()) << core.status().ToString();
    Request low = target;
    low.priority = 3;
    ASSERT_TRUE((*core)->AddRequest(low, EngineClock()).ok());
    Completion got;
    std::vector<RequestOutput> outs;
    auto absorb = [&] {
      for (RequestOutput& d : outs) {
        if (d.request_id != "target") continue;
        got.token_ids.insert(got.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
        got.logprobs.insert(got.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
      }
      outs.clear();
    };
    for (int i = 0; i < 8; ++i) (*core)->Step(&outs), absorb();
    ASSERT_GT(got.token_ids.size(), 0u);
    ASSERT_LT(got.token_ids.size(), 24u);
    for (Request& r : Others(vocab, 8, {})) {
      r.priority = 0;
      r.sampling.max_tokens = 20;
      ASSERT_TRUE((*core)->AddRequest(r, EngineClock()).ok());
    }
    for (int i = 0; i < 10000 && (*core)->HasUnfinished(); ++i) (*core)->Step(&outs), absorb();
    EXPECT_GT((*core)->stats().num_preemptions, 0);
    EXPECT_EQ((*core)->block_pool().num_free(), (*core)->block_pool().num_blocks());
    ExpectSame(alone.target, got, "after priority preemption");
  }

  // Prefix hits: others sharing the target's prompt run first and leave it cached.
  EngineOptions cached = busy;
  cached.max_num_seqs = 1;  // strictly one after another
  std::vector<Request> first = Others(vocab, 6, target.prompt);
  first.push_back(target);
  const RunResult hit = RunWith(**model, cached, first);
  EXPECT_GE(hit.target.usage.cached_prompt_tokens, 32);
  ExpectSame(alone.target, hit.target, "with prefix-cache hits");
}

INSTANTIATE_TEST_SUITE_P(GoldenModels, DeterminismTest, ::testing::Values("llama", "qwen2", "mixtral"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tide
