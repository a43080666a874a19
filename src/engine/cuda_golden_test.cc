// Fidelity on the GPU: the golden fixtures of every architecture (tests/golden/) run
// with weights, KV cache and activations on CUDA, against the same transformers
// references as golden_test.cc. Skips, saying why, where no GPU is present.
//
// Numerics on the device: weights are the fixtures' bf16, exact on the GPU; activations
// stay f32. What differs from the CPU is reduction order (GEMV shuffle trees, cuBLASLt
// tiles, attention tiles) and the prefill GEMM's split of x into bf16 terms. With two
// terms (16 of x's 24 bits) prompts of 33+ tokens measured 1e-4..3e-4 on an H200; with
// three (matmul_cuda.cu) the split is exact to f32 and what is left is f32 reduction
// order, ~1e-6 relative per op, as on the CPU (~1e-5 measured there). We assert 2e-4,
// five times tighter than the fixture contract (1e-3); the measured value is printed.
//
// Greedy tokens must match the reference up to the first low-margin step, as on the
// CPU. Batched and unbatched runs must pick the same tokens, but their logprobs are
// compared with a tolerance rather than bit for bit: the prefill GEMM (cuBLASLt) may
// choose a different kernel for a different number of rows, so the CUDA path is not yet
// batch-invariant (the decode GEMV and attention kernels are).
#include <gtest/gtest.h>
#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "backend/device_memory.h"
#include "base/file.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "engine/sampler.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace tide {
namespace {

using json = nlohmann::json;

constexpr double kLogprobTol = 2e-4;
constexpr double kMarginFloor = 1e-2;
constexpr double kBatchLogprobTol = 2e-4;  // two runs, each within kLogprobTol's regime

ExecContext CudaCtx() { return ExecContext{.device = DeviceKind::kCuda}; }

// The engine's runner with its KV cache on the GPU.
class CudaRunner final : public ModelRunner {
 public:
  explicit CudaRunner(Model& model) : model_(model) {}
  const ModelConfig& config() const override { return model_.config(); }
  int64_t kv_bytes_per_token() const override { return model_.config().KvBytesPerToken(4); }
  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    const ModelConfig& c = model_.config();
    ASSIGN_OR_RETURN(KvCache cache, KvCache::Create({c.num_layers, num_blocks, block_size, c.num_kv_heads, c.head_dim},
                                                    DeviceKind::kCuda));
    cache_.emplace(std::move(cache));
    return OkStatus();
  }
  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override {
    if (!cache_) return FailedPrecondition("KV cache not allocated");
    return model_.Forward(CudaCtx(), batch, *cache_, logits);
  }

 private:
  Model& model_;
  std::optional<KvCache> cache_;
};

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

std::vector<double> LastLogprobs(Model& model, const std::vector<int32_t>& ids) {
  std::vector<double> lp;
  const ModelConfig& c = model.config();
  const int bs = 16;
  const int64_t blocks = (static_cast<int64_t>(ids.size()) + bs - 1) / bs;
  auto cache = KvCache::Create({c.num_layers, blocks, bs, c.num_kv_heads, c.head_dim}, DeviceKind::kCuda);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  if (!cache.ok()) return lp;
  ForwardBatch b;
  b.tokens = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    b.positions.push_back(static_cast<int32_t>(i));
    b.slots.push_back(static_cast<int64_t>(i));
  }
  b.q_start = {0, static_cast<int32_t>(ids.size())};
  b.kv_len = {static_cast<int32_t>(ids.size())};
  b.max_blocks_per_seq = static_cast<int>(blocks);
  for (int64_t i = 0; i < blocks; ++i) b.block_table.push_back(static_cast<int32_t>(i));
  b.logit_rows = {static_cast<int32_t>(ids.size()) - 1};
  std::vector<float> logits;
  Status s = model.Forward(CudaCtx(), b, *cache, &logits);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (s.ok()) LogSoftmax(logits.data(), c.vocab_size, &lp);
  return lp;
}

std::vector<Completion> Greedy(Model& model, const std::vector<std::vector<int32_t>>& prompts, int steps) {
  CudaRunner runner(model);
  EngineOptions o;
  o.num_kv_blocks = 512;
  o.max_num_batched_tokens = 512;
  auto core = EngineCore::Create(runner, nullptr, o);
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
  return out.ok() ? *out : std::vector<Completion>();
}

class CudaGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGoldenTest, MatchesTransformers) {
  std::string why;
  if (!CudaAvailable(&why)) {
    std::printf("skipping: %s\n", why.c_str());
    GTEST_SKIP() << "no usable CUDA device: " << why;
  }
  const std::string dir = "tests/golden/" + GetParam();
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE((*model)->PlaceOn(CudaCtx()).ok());
  ASSERT_EQ((*model)->device(), DeviceKind::kCuda);
  const json ref = ReadJson(dir + "/reference.json");
  std::vector<std::vector<int32_t>> prompts;
  int steps = 0;
  for (const json& p : ref["prompts"]) {
    prompts.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    steps = std::max(steps, static_cast<int>(p["greedy_ids"].size()));
    const std::vector<double> got = LastLogprobs(**model, prompts.back());
    const json& want = p["last_logprobs"];
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i].get<double>()));
    std::printf("  %s prompt of %zu tokens on CUDA: max |log p - ref| = %.3g\n", GetParam().c_str(),
                prompts.back().size(), worst);
    EXPECT_LE(worst, kLogprobTol) << GetParam() << " prompt of " << prompts.back().size() << " tokens";
  }
  std::vector<Completion> together = Greedy(**model, prompts, steps);
  ASSERT_EQ(together.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const json& p = ref["prompts"][i];
    const json& margins = p["greedy_margins"];
    size_t must = 0;
    while (must < margins.size() && margins[must].get<double>() >= kMarginFloor) ++must;
    must = std::min(must, together[i].token_ids.size());
    for (size_t s = 0; s < must; ++s)
      ASSERT_EQ(together[i].token_ids[s], p["greedy_ids"][s].get<int32_t>()) << GetParam() << " prompt " << i << " step " << s;
    std::vector<Completion> alone = Greedy(**model, {prompts[i]}, steps);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].token_ids, together[i].token_ids) << "batched and unbatched greedy differ for prompt " << i;
    ASSERT_EQ(alone[0].logprobs.size(), together[i].logprobs.size());
    for (size_t s = 0; s < alone[0].logprobs.size(); ++s)
      ASSERT_NEAR(alone[0].logprobs[s].logprob, together[i].logprobs[s].logprob, kBatchLogprobTol) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, CudaGoldenTest, ::testing::ValuesIn(GoldenModels()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tide
