// Fidelity against Hugging Face transformers: tiny random models of every supported
// architecture (tests/golden/, made by tests/golden/make_golden.py in float64, float32
// for MoE) and the real stories260K model in both its GGUF and safetensors forms.
//
// Contract (tests/golden/README.md): the last position's log-softmax within 1e-3 max-abs;
// greedy tokens identical up to the first step whose reference top-1/top-2 margin is
// below 1e-2 (past that, f32 rounding may legitimately pick the other token).
#include <gtest/gtest.h>
#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

using json = nlohmann::json;

constexpr double kLogprobTol = 1e-3;
constexpr double kMarginFloor = 1e-2;

json ReadJson(const std::string& path) {
  auto text = ReadFileToString(path, 64u << 20);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? json::parse(*text) : json();
}

std::vector<std::string> GoldenModels() {
  std::vector<std::string> names;
  if (DIR* d = opendir("tests/golden")) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n[0] != '.' && n != "stories260K" && FileExists("tests/golden/" + n + "/reference.json")) names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

ExecContext Ctx() {
  static ThreadPool pool(2);
  ExecContext ctx;
  ctx.pool = &pool;
  return ctx;
}

// Last-position log-softmax of `ids` from one prefill through the paged cache.
std::vector<double> LastLogprobs(Model& model, const std::vector<int32_t>& ids) {
  std::vector<double> lp;
  const ModelConfig& c = model.config();
  const int bs = 16;
  const int64_t blocks = (static_cast<int64_t>(ids.size()) + bs - 1) / bs;
  auto cache = KvCache::Create({c.num_layers, blocks, bs, c.num_kv_heads, c.head_dim});
  EXPECT_TRUE(cache.ok());
  ForwardBatch b;
  b.tokens = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    b.positions.push_back(static_cast<int32_t>(i));
    b.slots.push_back(static_cast<int64_t>(i));  // blocks 0..n-1 in order
  }
  b.q_start = {0, static_cast<int32_t>(ids.size())};
  b.kv_len = {static_cast<int32_t>(ids.size())};
  b.max_blocks_per_seq = static_cast<int>(blocks);
  for (int64_t i = 0; i < blocks; ++i) b.block_table.push_back(static_cast<int32_t>(i));
  b.logit_rows = {static_cast<int32_t>(ids.size()) - 1};
  std::vector<float> logits;
  Status s = model.Forward(Ctx(), b, *cache, &logits);
  EXPECT_TRUE(s.ok()) << s.ToString();
  LogSoftmax(logits.data(), c.vocab_size, &lp);
  return lp;
}

void ExpectLogprobsClose(const std::vector<double>& got, const json& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(got[i] - want[i].get<double>());
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  std::printf("  %s: max |log p - ref| = %.3g\n", what.c_str(), worst);
  EXPECT_LE(worst, kLogprobTol) << what << ": max |log p - ref| = " << worst << " at token " << at;
}

// Number of leading greedy steps that must match: up to the first low-margin step.
size_t StepsThatMustMatch(const json& margins) {
  size_t n = 0;
  while (n < margins.size() && margins[n].get<double>() >= kMarginFloor) ++n;
  return n;
}

// Greedy decoding of every prompt together through the engine (continuous batching,
// chunked prefill under a 512-token budget, prefix caching on).
std::vector<Completion> Greedy(Model& model, const std::vector<std::vector<int32_t>>& prompts, int steps) {
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(model, Ctx());
  EngineOptions o;
  o.num_kv_blocks = 512;
  o.max_num_batched_tokens = 512;
  auto core = EngineCore::Create(*runner, nullptr, o);
  EXPECT_TRUE(core.ok()) << core.status().ToString();
  if (!core.ok()) return {};
  std::vector<Request> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = std::to_string(i);
    r.prompt = prompts[i];
    r.sampling.max_tokens = steps;
    r.sampling.temperature = 0.f;
    r.sampling.ignore_eos = true;
    r.sampling.logprobs = true;
    reqs.push_back(r);
  }
  auto out = RunToCompletion(**core, std::move(reqs));
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*core)->block_pool().num_free(), 512) << "blocks leaked";
  return out.ok() ? *out : std::vector<Completion>();
}

void ExpectGreedyMatches(const Completion& got, const json& want_ids, const json& margins, const std::string& what) {
  const size_t n = std::min(StepsThatMustMatch(margins), got.token_ids.size());
  for (size_t i = 0; i < n; ++i)
    ASSERT_EQ(got.token_ids[i], want_ids[i].get<int32_t>()) << what << ": greedy step " << i << " (margin "
                                                         << margins[i].get<double>() << ")";
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesTransformers) {
  const std::string dir = "tests/golden/" + GetParam();
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const json ref = ReadJson(dir + "/reference.json");
  ASSERT_TRUE(ref.contains("prompts"));
  std::vector<std::vector<int32_t>> prompts;
  int steps = 0;
  for (const json& p : ref["prompts"]) {
    prompts.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    steps = std::max(steps, static_cast<int>(p["greedy_ids"].size()));
    ExpectLogprobsClose(LastLogprobs(**model, prompts.back()), p["last_logprobs"],
                        GetParam() + " prompt of " + std::to_string(prompts.back().size()) + " tokens");
  }
  // All prompts decoded together must agree with the reference and with each alone
  // (the forward pass is batch-invariant, so exactly).
  std::vector<Completion> together = Greedy(**model, prompts, steps);
  ASSERT_EQ(together.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const json& p = ref["prompts"][i];
    ExpectGreedyMatches(together[i], p["greedy_ids"], p["greedy_margins"], GetParam() + " batched prompt " + std::to_string(i));
    std::vector<Completion> alone = Greedy(**model, {prompts[i]}, steps);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].token_ids, together[i].token_ids) << "batched and unbatched greedy differ for prompt " << i;
    ASSERT_EQ(alone[0].logprobs.size(), together[i].logprobs.size());
    for (size_t s = 0; s < alone[0].logprobs.size(); ++s)
      ASSERT_EQ(alone[0].logprobs[s].logprob, together[i].logprobs[s].logprob) << "logprob differs at step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, GoldenTest, ::testing::ValuesIn(GoldenModels()),
                         [](const auto& info) { return info.param; });

TEST(GoldenFixturesTest, EveryArchitectureHasAFixture) {
  const std::vector<std::string> have = GoldenModels();
  for (const char* arch : {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"})
    EXPECT_NE(std::find(have.begin(), have.end(), arch), have.end()) << "missing fixture tests/golden/" << arch;
}

// stories260K: a real trained model, the same weights as GGUF and as HF safetensors.
constexpr const char* kStoriesDir = "../shared/models/stories260K";

TEST(GoldenSharedTest, Stories260KGgufAndSafetensorsMatchTransformers) {
  if (!FileExists(std::string(kStoriesDir) + "/stories260K.gguf") || !FileExists(std::string(kStoriesDir) + "/hf/config.json"))
    GTEST_SKIP() << "../shared/models/stories260K is absent (CI places shared/ beside the clone)";
  const json ref = ReadJson("tests/golden/stories260K/reference.json");
  const std::vector<int32_t> prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const int steps = static_cast<int>(ref["greedy_ids"].size());
  std::vector<std::vector<int32_t>> tokens;
  for (const std::string& path : {std::string(kStoriesDir) + "/stories260K.gguf", std::string(kStoriesDir) + "/hf"}) {
    auto model = Model::Load(path);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    // The tokenizer of each form gives the reference's prompt ids.
    std::unique_ptr<Tokenizer> tok;
    if (IsDirectory(path)) {
      auto t = Tokenizer::FromHfFolder(path);
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      tok = std::move(*t);
    } else {
      auto t = Tokenizer::FromGguf(*(*model)->weights().gguf());
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      tok = std::move(*t);
    }
    auto ids = tok->Encode(ref["prompt_text"].get<std::string>(), true);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    EXPECT_EQ(*ids, prompt) << path;
    ExpectLogprobsClose(LastLogprobs(**model, prompt), ref["last_logprobs"], path);
    std::vector<Completion> out = Greedy(**model, {prompt}, steps);
    ASSERT_EQ(out.size(), 1u);
    ExpectGreedyMatches(out[0], ref["greedy_ids"], ref["greedy_margins"], path);
    tokens.push_back(out[0].token_ids);
    auto text = tok->Decode(out[0].token_ids, false);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, ref["text"].get<std::string>()) << path;
  }
  EXPECT_EQ(tokens[0], tokens[1]) << "GGUF and safetensors forms of stories260K generate different tokens";
}

}  // namespace
}  // namespace tide
