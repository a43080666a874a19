// Async scheduling against the synchronous engine: the same random workload (n > 1,
// stop ids and strings, max_tokens = 1, EOS, penalties, biases, min_tokens, prompt
// logprobs, priorities, aborts, late arrivals, preemption under a tiny KV pool, prefix
// caching on and off) must give token-for-token identical completions — tokens, text,
// logprobs, prompt logprobs, finish reasons, status and usage — over the fake model and
// over the built-in model on the CPU. A recording runner checks that the async runs did
// queue steps whose input tokens were still pending.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"
#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "model/builtin.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

// Forwards to another runner through the default (host) Launch / Collect and counts the
// launched steps that read a pending token.
class RecordingRunner final : public ModelRunner {
 public:
  explicit RecordingRunner(ModelRunner& inner) : inner_(inner) {}
  const ModelConfig& config() const override { return inner_.config(); }
  int64_t kv_bytes_per_token() const override { return inner_.kv_bytes_per_token(); }
  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    return inner_.AllocateKvCache(num_blocks, block_size);
  }
  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override {
    ++num_forwards;
    return inner_.Forward(batch, logits);
  }
  Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) override {
    ++num_launches;
    if (batch.has_prev_samples()) ++num_launches_reading_pending;
    return ModelRunner::Launch(batch, rows);
  }
  bool LaunchIsAsync() const override { return true; }  // pipeline as on a GPU
  Status Collect(std::vector<SampleResult>* out) override {
    Status s = ModelRunner::Collect(out);
    if (s.ok() && fail_next_collect) {
      fail_next_collect = false;
      return Internal("injected collect failure");
    }
    return s;
  }
  int num_forwards = 0, num_launches = 0, num_launches_reading_pending = 0;
  bool fail_next_collect = false;

 private:
  ModelRunner& inner_;
};

struct Workload {
  std::vector<Request> upfront;
  std::map<int, std::vector<Request>> later;  // added before the Step call with this index
  std::map<std::string, int> abort_after;     // request id -> abort once it has this many tokens
};

// `host_rows`: some requests ask for prompt logprobs or penalties (steps that need the
// logits on the host, which drain the pipeline).
Workload MakeWorkload(uint64_t seed, int64_t vocab, int count, const std::vector<int32_t>& eos,
                      const std::vector<std::string>& stop_strings, bool host_rows) {
  Workload w;
  Rng rng(seed);
  auto pick = [&](uint64_t n) { return rng.NextU64() % n; };
  std::vector<int32_t> shared;  // a common prefix some prompts start with (prefix hits)
  for (int i = 0; i < 11; ++i) shared.push_back(1 + static_cast<int32_t>(pick(static_cast<uint64_t>(vocab - 1))));
  for (int i = 0; i < count; ++i) {
    Request r;
    r.id = "r" + std::to_string(i);
    if (pick(3) == 0) r.prompt = shared;
    for (int k = 1 + static_cast<int>(pick(30)); k > 0; --k)
      r.prompt.push_back(1 + static_cast<int32_t>(pick(static_cast<uint64_t>(vocab - 1))));
    SamplingParams& p = r.sampling;
    p.temperature = pick(3) == 0 ? 0.f : 0.7f + 0.1f * static_cast<float>(pick(5));
    if (pick(4) == 0) p.top_k = 1 + static_cast<int>(pick(20));
    if (pick(4) == 0) p.top_p = 0.8f;
    if (pick(5) == 0) p.min_p = 0.05f;
    p.seed = rng.NextU64();
    p.max_tokens = pick(6) == 0 ? 1 : 1 + static_cast<int>(pick(20));
    p.ignore_eos = pick(2) == 0;
    if (pick(6) == 0) p.stop_token_ids = {static_cast<int32_t>(1 + pick(static_cast<uint64_t>(vocab - 1)))};
    if (pick(4) == 0) p.n = 2 + static_cast<int>(pick(2));
    if (pick(3) == 0) {
      p.logprobs = true;
      p.top_logprobs = static_cast<int>(pick(4));
    }
    if (host_rows && pick(12) == 0) p.prompt_logprobs = static_cast<int>(pick(3));
    if (host_rows && pick(12) == 0) p.repetition_penalty = 1.3f;
    if (host_rows && pick(16) == 0) {
      p.presence_penalty = 0.5f;
      p.frequency_penalty = 0.3f;
    }
    if (pick(6) == 0) p.logit_bias = {{static_cast<int32_t>(pick(static_cast<uint64_t>(vocab))), 2.f}};
    if (pick(8) == 0 && !eos.empty()) {
      p.logit_bias.push_back({eos[0], 3.f});  // EOS likely, held back by min_tokens
      p.min_tokens = std::min(p.max_tokens, 2);
      p.ignore_eos = false;
    }
    if (!stop_strings.empty() && pick(3) == 0) {
      p.stop = {stop_strings[pick(stop_strings.size())]};
      p.include_stop_str_in_output = pick(2) == 0;
    }
    r.priority = static_cast<int>(pick(3));
    if (p.n == 1 && pick(7) == 0) w.abort_after[r.id] = static_cast<int>(pick(4));
    if (pick(4) == 0) {
      w.later[1 + static_cast<int>(pick(12))].push_back(std::move(r));
    } else {
      w.upfront.push_back(std::move(r));
    }
  }
  return w;
}

struct RunOutput {
  std::map<std::pair<std::string, int>, Completion> completions;
  EngineStats stats;
};

RunOutput RunWorkload(ModelRunner& runner, const Tokenizer* tok, EngineOptions o, const Workload& w) {
  RunOutput out;
  auto core = EngineCore::Create(runner, tok, o);
  EXPECT_TRUE(core.ok()) << core.status().ToString();
  if (!core.ok()) return out;
  EngineCore& c = **core;
  std::vector<RequestOutput> outs;
  auto add = [&](const Request& r) { EXPECT_TRUE(c.AddRequest(r, EngineClock()).ok()) << r.id; };
  for (const Request& r : w.upfront) add(r);
  // An abort before any step: the same in both modes.
  for (const auto& [id, k] : w.abort_after)
    if (k == 0) c.Abort(id, &outs);
  std::map<std::string, int> emitted;
  auto absorb = [&] {
    for (RequestOutput& ro : outs) {
      Completion& cp = out.completions[{ro.request_id, ro.index}];
      cp.request_id = ro.request_id;
      cp.index = ro.index;
      cp.token_ids.insert(cp.token_ids.end(), ro.token_ids.begin(), ro.token_ids.end());
      emitted[ro.request_id] += static_cast<int>(ro.token_ids.size());
      cp.text += ro.text;
      for (SampleResult& lp : ro.logprobs) cp.logprobs.push_back(std::move(lp));
      for (SampleResult& lp : ro.prompt_logprobs) cp.prompt_logprobs.push_back(std::move(lp));
      if (ro.finished()) {
        EXPECT_EQ(cp.finish_reason, FinishReason::kNone) << "two final outputs for " << ro.request_id;
        cp.finish_reason = ro.finish_reason;
        cp.status = ro.status;
        cp.usage = ro.usage;
      }
    }
    outs.clear();
  };
  absorb();
  int step = 0;
  const int last_arrival = w.later.empty() ? 0 : w.later.rbegin()->first;
  while (c.HasUnfinished() || step <= last_arrival) {
    if (auto it = w.later.find(step); it != w.later.end())
      for (const Request& r : it->second) add(r);
    c.Step(&outs);
    absorb();
    // Aborts keyed on the request's own output count fire after the same token in both
    // modes (the async step already queued for it is discarded).
    for (const auto& [id, k] : w.abort_after) {
      if (k == 0 || emitted[id] < k) continue;
      auto cp = out.completions.find({id, 0});
      if (cp != out.completions.end() && cp->second.finish_reason == FinishReason::kNone) c.Abort(id, &outs);
    }
    absorb();
    ++step;
    if (step > 100000) {
      ADD_FAILURE() << "no progress";
      break;
    }
  }
  out.stats = c.stats();
  EXPECT_EQ(c.block_pool().num_free(), c.block_pool().num_blocks());
  return out;
}

void ExpectSameResult(const SampleResult& a, const SampleResult& b, const std::string& what) {
  EXPECT_EQ(a.token, b.token) << what;
  EXPECT_EQ(a.logprob, b.logprob) << what;
  ASSERT_EQ(a.top.size(), b.top.size()) << what;
  for (size_t i = 0; i < a.top.size(); ++i) {
    EXPECT_EQ(a.top[i].id, b.top[i].id) << what << " top " << i;
    EXPECT_EQ(a.top[i].logprob, b.top[i].logprob) << what << " top " << i;
  }
}

// Not usage.cached_prompt_tokens: it depends on what the prefix cache (or a running n > 1
// leader) held when a request was admitted, and async scheduling shifts admissions.
void ExpectSameCompletions(const RunOutput& sync, const RunOutput& async, const std::string& what) {
  ASSERT_EQ(sync.completions.size(), async.completions.size()) << what;
  int finished_by[4] = {0, 0, 0, 0};
  for (const auto& [key, s] : sync.completions) {
    const std::string name = what + " " + key.first + "/" + std::to_string(key.second);
    auto it = async.completions.find(key);
    ASSERT_NE(it, async.completions.end()) << name;
    const Completion& a = it->second;
    EXPECT_EQ(s.token_ids, a.token_ids) << name;
    EXPECT_EQ(s.text, a.text) << name;
    EXPECT_EQ(s.finish_reason, a.finish_reason) << name;
    EXPECT_EQ(s.status.code(), a.status.code()) << name;
    EXPECT_EQ(s.usage.prompt_tokens, a.usage.prompt_tokens) << name;
    EXPECT_EQ(s.usage.completion_tokens, a.usage.completion_tokens) << name;
    EXPECT_EQ(s.usage.completion_tokens, static_cast<int64_t>(s.token_ids.size())) << name;
    ASSERT_EQ(s.logprobs.size(), a.logprobs.size()) << name;
    for (size_t i = 0; i < s.logprobs.size(); ++i) ExpectSameResult(s.logprobs[i], a.logprobs[i], name + " logprob");
    ASSERT_EQ(s.prompt_logprobs.size(), a.prompt_logprobs.size()) << name;
    for (size_t i = 0; i < s.prompt_logprobs.size(); ++i)
      ExpectSameResult(s.prompt_logprobs[i], a.prompt_logprobs[i], name + " prompt logprob");
    ++finished_by[static_cast<int>(s.finish_reason)];
  }
  // The workload exercised every way to end.
  EXPECT_GT(finished_by[static_cast<int>(FinishReason::kStop)], 0) << what;
  EXPECT_GT(finished_by[static_cast<int>(FinishReason::kLength)], 0) << what;
  EXPECT_GT(finished_by[static_cast<int>(FinishReason::kAbort)], 0) << what;
}

struct Config {
  std::string name;
  EngineOptions options;
  bool tiny_pool = false;
};

std::vector<Config> Configs(int block_size, int64_t max_model_len) {
  std::vector<Config> out;
  for (bool prefix : {true, false})
    for (bool tiny : {false, true}) {
      EngineOptions o;
      o.block_size = block_size;
      o.max_model_len = max_model_len;
      o.num_kv_blocks = tiny ? (max_model_len + block_size - 1) / block_size + 2 : 512;
      o.max_num_seqs = 8;
      o.max_num_batched_tokens = 40;
      o.enable_prefix_caching = prefix;
      out.push_back({std::string(prefix ? "prefix caching" : "no prefix caching") + (tiny ? ", tiny KV pool" : ""),
                     o, tiny});
    }
  return out;
}

TEST(AsyncSchedulingTest, FakeModelOutputsAreIdenticalToTheSynchronousEngine) {
  FakeModelOptions fo;
  fo.vocab_size = 48;
  FakeModelRunner fake(fo);
  for (uint64_t seed : {1, 2, 3}) {
    const bool host_rows = seed != 3;
    const Workload w = MakeWorkload(seed, fo.vocab_size, 40, fo.eos_token_ids, {}, host_rows);
    for (const Config& cfg : Configs(/*block_size=*/4, /*max_model_len=*/96)) {
      const std::string what = "seed " + std::to_string(seed) + ", " + cfg.name;
      EngineOptions so = cfg.options, ao = cfg.options;
      so.async_scheduling = false;
      ao.async_scheduling = true;
      RecordingRunner sync_runner(fake), async_runner(fake);
      const RunOutput sync = RunWorkload(sync_runner, nullptr, so, w);
      const RunOutput async = RunWorkload(async_runner, nullptr, ao, w);
      ExpectSameCompletions(sync, async, what);
      EXPECT_EQ(sync_runner.num_launches_reading_pending, 0) << what;
      // Without host rows nearly every step reads the samples of the one before it.
      EXPECT_GT(async_runner.num_launches_reading_pending, host_rows ? 0 : async_runner.num_launches / 2)
          << what << ": " << async_runner.num_launches << " launches, " << async_runner.num_forwards << " forwards";
      if (host_rows) {
        EXPECT_GT(sync_runner.num_forwards - sync_runner.num_launches, 0) << what << ": no host-logits step ran";
      }
      if (cfg.tiny_pool) {
        EXPECT_GT(async.stats.num_preemptions, 0) << what;
      }
    }
  }
}

TEST(AsyncSchedulingTest, BuiltinModelOnTheCpuIsIdenticalToTheSynchronousEngine) {
  ASSERT_EQ(::setenv("TIDE_CACHE_DIR", ::testing::TempDir().c_str(), 1), 0);
  auto dir = EnsureBuiltinModel();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  auto model = Model::Load(*dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto tok = Tokenizer::FromHfFolder(*dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  static ThreadPool pool(2);
  ExecContext ctx;
  ctx.pool = &pool;
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(**model, ctx);
  const int64_t vocab = (*model)->config().vocab_size;
  std::vector<int32_t> eos = (*tok)->eos_ids();
  const Workload w = MakeWorkload(7, vocab, 24, eos, {"\n", "(", " =", "self", "e"}, /*host_rows=*/true);
  for (const Config& cfg : Configs(/*block_size=*/8, /*max_model_len=*/80)) {
    EngineOptions so = cfg.options, ao = cfg.options;
    so.async_scheduling = false;
    ao.async_scheduling = true;
    RecordingRunner sync_runner(*runner), async_runner(*runner);
    const RunOutput sync = RunWorkload(sync_runner, tok->get(), so, w);
    const RunOutput async = RunWorkload(async_runner, tok->get(), ao, w);
    ExpectSameCompletions(sync, async, cfg.name);
    EXPECT_GT(async_runner.num_launches_reading_pending, 5) << cfg.name;
    bool any_text = false;
    for (const auto& [k, c] : sync.completions) any_text |= !c.text.empty();
    EXPECT_TRUE(any_text);
  }
}

// A failed Launch (with the previous step in flight) or a failed Collect ends exactly the
// requests of that step with the runner's status, keeps what they emitted before, frees
// their blocks, and leaves the engine usable; a request not in that step runs on.
TEST(AsyncSchedulingTest, FailedLaunchOrCollectEndsThatStepsRequestsOnly) {
  for (bool fail_collect : {false, true}) {
    const std::string what = fail_collect ? "collect" : "launch";
    FakeModelRunner fake;
    RecordingRunner runner(fake);
    EngineOptions o;
    o.num_kv_blocks = 64;
    o.block_size = 4;
    o.max_model_len = 64;
    o.max_num_seqs = 2;  // "late" waits until a slot frees
    auto core = EngineCore::Create(runner, nullptr, o);
    ASSERT_TRUE(core.ok()) << core.status().ToString();
    Request a, b, late;
    a.id = "a";
    a.prompt = {1, 2, 3, 4, 5};
    a.sampling.max_tokens = 20;
    a.sampling.ignore_eos = true;
    b = a;
    b.id = "b";
    b.prompt = {6, 7};
    late = a;
    late.id = "late";
    late.sampling.max_tokens = 4;
    for (const Request& r : {a, b, late}) ASSERT_TRUE((*core)->AddRequest(r, 0).ok());
    std::vector<RequestOutput> outs;
    std::map<std::string, std::vector<RequestOutput>> by_id;
    auto step = [&] {
      outs.clear();
      (*core)->Step(&outs);
      for (RequestOutput& ro : outs) by_id[ro.request_id].push_back(ro);
    };
    for (int i = 0; i < 4; ++i) step();
    ASSERT_EQ(by_id["a"].size(), 3u) << what;  // the 4th step is in flight
    if (fail_collect) {
      runner.fail_next_collect = true;
    } else {
      fake.TEST_FailNextForward();
    }
    step();
    for (const char* id : {"a", "b"}) {
      ASSERT_FALSE(by_id[id].empty()) << what;
      const RequestOutput& last = by_id[id].back();
      EXPECT_EQ(last.finish_reason, FinishReason::kAbort) << what << " " << id;
      EXPECT_EQ(last.status.code(), StatusCode::kInternal) << what << " " << id;
      int64_t emitted = 0;
      for (const RequestOutput& ro : by_id[id]) emitted += static_cast<int64_t>(ro.token_ids.size());
      EXPECT_EQ(last.usage.completion_tokens, emitted) << what << " " << id;
      EXPECT_EQ(emitted, 3) << what << " " << id;
    }
    while ((*core)->HasUnfinished()) step();
    ASSERT_FALSE(by_id["late"].empty()) << what;
    EXPECT_EQ(by_id["late"].back().finish_reason, FinishReason::kLength) << what;
    EXPECT_TRUE(by_id["late"].back().status.ok()) << what;
    EXPECT_EQ(by_id["a"].back().finish_reason, FinishReason::kAbort) << what;  // nothing after the final output
    EXPECT_EQ((*core)->block_pool().num_free(), (*core)->block_pool().num_blocks()) << what;
  }
}

}  // namespace
}  // namespace tide
