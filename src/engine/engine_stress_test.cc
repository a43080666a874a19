// Many requests through EngineCore and the fake model: random prompts from a few shared
// system prompts, random lengths, priorities, n, and cancellations in every state, under
// a KV budget small enough to force preemption. Every completion must equal its
// sequential reference, and at the end the pool must be entirely free.
#include <gtest/gtest.h>

#include <map>

#include "base/rng.h"
#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine/sampler.h"

namespace tide {
namespace {

std::vector<int32_t> Reference(const FakeModelRunner& fake, const Request& r, int index) {
  std::vector<int32_t> ctx = r.prompt, out;
  std::vector<float> logits(static_cast<size_t>(fake.config().vocab_size));
  SamplingParams sp = r.sampling;
  sp.seed += static_cast<uint64_t>(index);
  for (int i = 0; i < r.sampling.max_tokens; ++i) {
    fake.TEST_Logits(ctx, logits.data());
    const int32_t t = Sample(logits.data(), fake.config().vocab_size, sp, static_cast<uint64_t>(i)).token;
    ctx.push_back(t);
    out.push_back(t);
    if (t == 0) break;  // EOS
  }
  return out;
}

// Random arrivals (priorities 0..2, some n > 1, some asking for prompt logprobs) and
// cancellations under a KV budget that makes preemption routine.
void RunStress(bool prefix_caching, bool async_scheduling = true) {
  FakeModelRunner fake;
  EngineOptions o;
  o.async_scheduling = async_scheduling;
  o.num_kv_blocks = 32;  // 128 tokens for up to 24 sequences: preemption is routine
  o.block_size = 4;
  o.max_num_seqs = 24;
  o.max_num_batched_tokens = 64;
  o.max_model_len = 96;
  o.enable_prefix_caching = prefix_caching;
  auto core_or = EngineCore::Create(fake, nullptr, o);
  ASSERT_TRUE(core_or.ok()) << core_or.status().ToString();
  EngineCore& core = **core_or;

  Rng rng(2024);
  std::vector<std::vector<int32_t>> systems;
  for (int s = 0; s < 4; ++s) {
    std::vector<int32_t> p;
    for (int i = 0; i < 12 + 4 * s; ++i) p.push_back(1 + static_cast<int32_t>(rng.NextU64() % 63));
    systems.push_back(p);
  }
  std::map<std::string, Request> live;
  std::map<std::pair<std::string, int>, std::vector<int32_t>> got;
  std::map<std::pair<std::string, int>, FinishReason> finish;
  std::vector<Request> finished_requests;
  std::vector<RequestOutput> outs;
  int submitted = 0, cancelled = 0, checked = 0;
  auto absorb = [&] {
    for (RequestOutput& out : outs) {
      auto key = std::make_pair(out.request_id, out.index);
      got[key].insert(got[key].end(), out.token_ids.begin(), out.token_ids.end());
      if (out.finished()) finish[key] = out.finish_reason;
    }
    outs.clear();
  };
  auto check_done = [&](const Request& r) {
    for (int i = 0; i < r.sampling.n; ++i) {
      auto key = std::make_pair(r.id, i);
      ASSERT_TRUE(finish.count(key)) << r.id;
      const std::vector<int32_t> want = Reference(fake, r, i);
      if (finish[key] == FinishReason::kAbort) {
        // A cancelled completion's tokens are a prefix of what it would have produced.
        ASSERT_LE(got[key].size(), want.size()) << r.id;
        ASSERT_TRUE(std::equal(got[key].begin(), got[key].end(), want.begin())) << r.id;
      } else {
        ASSERT_EQ(got[key], want) << r.id << " completion " << i;
        ++checked;
      }
      got.erase(key);
      finish.erase(key);
    }
  };
  while (submitted < 10000 || core.HasUnfinished()) {
    // A few arrivals per step.
    for (int k = static_cast<int>(rng.NextU64() % 4); k > 0 && submitted < 10000; --k) {
      Request r;
      r.id = "r" + std::to_string(submitted++);
      r.prompt = systems[rng.NextU64() % systems.size()];
      for (int i = static_cast<int>(rng.NextU64() % 20); i > 0; --i) r.prompt.push_back(1 + static_cast<int32_t>(rng.NextU64() % 63));
      r.sampling.max_tokens = 1 + static_cast<int>(rng.NextU64() % 12);
      r.sampling.temperature = rng.NextU64() % 4 == 0 ? 0.f : 1.f;
      r.sampling.seed = rng.NextU64();
      r.sampling.n = rng.NextU64() % 10 == 0 ? 2 + static_cast<int>(rng.NextU64() % 3) : 1;
      r.priority = static_cast<int>(rng.NextU64() % 3);
      if (rng.NextU64() % 16 == 0) r.sampling.prompt_logprobs = static_cast<int>(rng.NextU64() % 3);
      ASSERT_TRUE(core.AddRequest(r, EngineClock()).ok());
      live.emplace(r.id, r);
    }
    // Cancel a random live request now and then: waiting, prefilling, decoding or preempted.
    if (!live.empty() && rng.NextU64() % 8 == 0) {
      auto it = live.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(rng.NextU64() % live.size()));
      const int64_t free_before = core.block_pool().num_free();
      core.Abort(it->first, &outs);
      ++cancelled;
      EXPECT_GE(core.block_pool().num_free(), free_before);
    }
    core.Step(&outs);
    absorb();
    for (auto it = live.begin(); it != live.end();) {
      bool all = true;
      for (int i = 0; i < it->second.sampling.n; ++i) all = all && finish.count({it->first, i});
      if (all) {
        check_done(it->second);
        it = live.erase(it);
      } else {
        ++it;
      }
    }
  }
  EXPECT_TRUE(live.empty());
  EXPECT_EQ(core.block_pool().num_free(), core.block_pool().num_blocks()) << "blocks leaked";
  const EngineStats st = core.stats();
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
  EXPECT_GT(st.num_preemptions, 0) << "the budget was meant to force preemption";
  if (prefix_caching) {
    EXPECT_GT(st.prefix_cache.hits, 0);
  }
  EXPECT_GT(checked, 8000);
  std::printf("  %d requests, %d cancelled, %lld preemptions, %lld steps, prefix hit tokens %lld of %lld\n", submitted,
              cancelled, static_cast<long long>(st.num_preemptions), static_cast<long long>(st.num_steps),
              static_cast<long long>(st.prefix_cache.hit_tokens), static_cast<long long>(st.prefix_cache.query_tokens));
}

TEST(EngineStressTest, TenThousandRandomRequestsWithCancellationsLeakNothing) { RunStress(/*prefix_caching=*/true); }

TEST(EngineStressTest, WithoutPrefixCachingSharedSiblingBlocksLeakNothing) { RunStress(/*prefix_caching=*/false); }

TEST(EngineStressTest, SynchronousStepsLeakNothing) {
  RunStress(/*prefix_caching=*/true, /*async_scheduling=*/false);
}

TEST(EngineStressTest, SharedSystemPromptHitRate) {
  // 200 requests = one 64-token system prompt + a 0..15-token user suffix. After the
  // first request, every system-prompt block should come from the cache.
  FakeModelRunner fake;
  EngineOptions o;
  o.num_kv_blocks = 256;
  o.block_size = 16;
  o.max_num_seqs = 16;
  o.max_num_batched_tokens = 256;
  o.max_model_len = 128;
  auto core = EngineCore::Create(fake, nullptr, o);
  ASSERT_TRUE(core.ok());
  Rng rng(7);
  std::vector<int32_t> system;
  for (int i = 0; i < 64; ++i) system.push_back(1 + static_cast<int32_t>(rng.NextU64() % 63));
  std::vector<RequestOutput> outs;
  int64_t prompt_tokens = 0;
  for (int i = 0; i < 200; ++i) {
    Request r;
    r.id = std::to_string(i);
    r.prompt = system;
    for (int k = static_cast<int>(rng.NextU64() % 16); k > 0; --k) r.prompt.push_back(1 + static_cast<int32_t>(rng.NextU64() % 63));
    r.sampling.max_tokens = 4;
    r.sampling.ignore_eos = true;
    prompt_tokens += static_cast<int64_t>(r.prompt.size());
    ASSERT_TRUE((*core)->AddRequest(r, EngineClock()).ok());
    if (i == 0)  // the first one alone, so that the rest can hit its blocks
      while ((*core)->HasUnfinished()) (*core)->Step(&outs);
  }
  while ((*core)->HasUnfinished()) (*core)->Step(&outs);
  const PrefixCacheStats s = (*core)->stats().prefix_cache;
  const double rate = static_cast<double>(s.hit_tokens) / static_cast<double>(s.query_tokens);
  std::printf("  prefix cache: %lld/%lld lookups hit, %lld of %lld prompt tokens (%.1f%%)\n",
              static_cast<long long>(s.hits), static_cast<long long>(s.queries), static_cast<long long>(s.hit_tokens),
              static_cast<long long>(s.query_tokens), 100 * rate);
  EXPECT_EQ(s.queries, 200);
  EXPECT_EQ(s.hits, 199);
  // Each later request hits all 4 system blocks, except when its prompt is exactly 64
  // tokens (the last block is then recomputed for its logits).
  EXPECT_GE(s.hit_tokens, 199 * 48);
  EXPECT_GT(rate, 0.75);
  EXPECT_EQ((*core)->block_pool().num_free(), 256);
}

}  // namespace
}  // namespace tide
