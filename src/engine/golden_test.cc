// Fidelity against Hugging Face transformers: tiny random models of every supported
// architecture (tests/golden/, made by tests/golden/make_golden.py in float64, float32
// for MoE) and the real stories260K model in both its GGUF and safetensors forms.
//
// Contract (tests/golden/README.md): the last position's log-softmax within 1e-3 max-abs;
// greedy tokens identical up to the first step whose reference top-1/top-2 margin is
// below 1e-2 (past that, f32 rounding may legitimately pick the other token).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "engine/golden_fixture.h"
#include "model/builtin.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

using json = nlohmann::json;
using golden::ExpectGreedyMatches;
using golden::Greedy;
using golden::ReadJson;

constexpr double kLogprobTol = 1e-3;  // the fixture contract (tests/golden/README.md)

ExecContext Ctx() {
  static ThreadPool pool(2);
  ExecContext ctx;
  ctx.pool = &pool;
  return ctx;
}

std::vector<double> LastLogprobs(Model& model, const std::vector<int32_t>& ids) {
  return golden::LastLogprobs(model, Ctx(), ids);
}

void ExpectLogprobsClose(const std::vector<double>& got, const json& want, const std::string& what) {
  golden::ExpectLogprobsClose(got, want, kLogprobTol, what);
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
  std::vector<Completion> together = Greedy(**model, Ctx(), prompts, steps);
  ASSERT_EQ(together.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const json& p = ref["prompts"][i];
    ExpectGreedyMatches(together[i], p["greedy_ids"], p["greedy_margins"], GetParam() + " batched prompt " + std::to_string(i));
    std::vector<Completion> alone = Greedy(**model, Ctx(), {prompts[i]}, steps);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].token_ids, together[i].token_ids) << "batched and unbatched greedy differ for prompt " << i;
    ASSERT_EQ(alone[0].logprobs.size(), together[i].logprobs.size());
    for (size_t s = 0; s < alone[0].logprobs.size(); ++s)
      ASSERT_EQ(alone[0].logprobs[s].logprob, together[i].logprobs[s].logprob) << "logprob differs at step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, GoldenTest, ::testing::ValuesIn(golden::Models()),
                         [](const auto& info) { return info.param; });

TEST(GoldenFixturesTest, EveryArchitectureHasAFixture) {
  const std::vector<std::string> have = golden::Models();
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
    std::vector<Completion> out = Greedy(**model, Ctx(), {prompt}, steps);
    ASSERT_EQ(out.size(), 1u);
    ExpectGreedyMatches(out[0], ref["greedy_ids"], ref["greedy_margins"], path);
    tokens.push_back(out[0].token_ids);
    auto text = tok->Decode(out[0].token_ids, false);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, ref["text"].get<std::string>()) << path;
  }
  EXPECT_EQ(tokens[0], tokens[1]) << "GGUF and safetensors forms of stories260K generate different tokens";
}

// The built-in default model (trained, bf16 weights linked into the binary): its
// tokenizer, logits and greedy text against transformers in float64, as for stories260K.
TEST(GoldenTest, BuiltinModelMatchesTransformers) {
  ASSERT_EQ(::setenv("TIDE_CACHE_DIR", ::testing::TempDir().c_str(), 1), 0);
  auto dir = EnsureBuiltinModel();
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  const json ref = ReadJson("tests/golden/builtin/reference.json");
  auto model = Model::Load(*dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto tok = Tokenizer::FromHfFolder(*dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::vector<int32_t> prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  auto ids = (*tok)->Encode(ref["prompt_text"].get<std::string>(), true);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, prompt);
  EXPECT_EQ(*ids, ref["prompt_ids_transformers"].get<std::vector<int32_t>>());
  ExpectLogprobsClose(LastLogprobs(**model, prompt), ref["last_logprobs"], "builtin");
  std::vector<Completion> out = Greedy(**model, Ctx(), {prompt}, static_cast<int>(ref["greedy_ids"].size()));
  ASSERT_EQ(out.size(), 1u);
  ExpectGreedyMatches(out[0], ref["greedy_ids"], ref["greedy_margins"], "builtin");
  auto text = (*tok)->Decode(out[0].token_ids, false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, ref["text"].get<std::string>());
}

}  // namespace
}  // namespace tide
