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
//
// All of the above runs with Precision::kExact (f32-accurate kernels). The default,
// Precision::kFast, rounds activations to bf16 for prefill-sized matmuls (and prefill
// attention at head_dim 64/128, which no fixture has), as bf16 engines do; it is checked
// separately with kBf16, which takes the bf16 GEMM from 9 rows up so that every prompt
// here but the two shortest (m <= 8 stays on the f32 GEMV) exercises it. Each matmul
// input then carries a bf16 rounding (2^-9 relative, ~1e-3 rms, which ops_cuda_test
// checks per matmul); these random models amplify it through sharp attention and
// gains over their 2-5 layers, and the reference logprobs span 15 nats, so the worst
// of the 256-512 logprobs moves by 0.03-0.17 (measured on an H200 for the dense
// models). We assert 0.3 for them. In the MoE fixtures a perturbed router logit can
// also swap an expert (router margins down to 6e-4): measured up to 0.44 (qwen2_moe),
// asserted 0.6. A wrong row, a dropped term or a bad conversion moves logprobs by
// nats, so both still catch a broken bf16 path; the values are printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "backend/device_memory.h"
#include "engine/golden_fixture.h"
#include "model/model.h"

namespace tide {
namespace {

using json = nlohmann::json;

constexpr double kLogprobTol = 2e-4;
constexpr double kBatchLogprobTol = 2e-4;  // two runs, each within kLogprobTol's regime
constexpr double kBf16LogprobTol = 0.3;     // bf16 activations, dense models (see above)
constexpr double kBf16MoeLogprobTol = 0.6;  // bf16 activations, MoE (expert swaps)

ExecContext CudaCtx(Precision precision = Precision::kExact) {
  return ExecContext{.device = DeviceKind::kCuda, .precision = precision};
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
  const json ref = golden::ReadJson(dir + "/reference.json");
  std::vector<std::vector<int32_t>> prompts;
  int steps = 0;
  for (const json& p : ref["prompts"]) {
    prompts.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    steps = std::max(steps, static_cast<int>(p["greedy_ids"].size()));
    golden::ExpectLogprobsClose(golden::LastLogprobs(**model, CudaCtx(), prompts.back()), p["last_logprobs"],
                                kLogprobTol,
                                GetParam() + " prompt of " + std::to_string(prompts.back().size()) + " tokens on CUDA");
    golden::ExpectLogprobsClose(golden::LastLogprobs(**model, CudaCtx(Precision::kBf16), prompts.back()),
                                p["last_logprobs"],
                                GetParam().find("moe") != std::string::npos || GetParam() == "mixtral"
                                    ? kBf16MoeLogprobTol
                                    : kBf16LogprobTol,
                                GetParam() + " prompt of " + std::to_string(prompts.back().size()) +
                                    " tokens on CUDA, bf16 activations");
  }
  std::vector<Completion> together = golden::Greedy(**model, CudaCtx(), prompts, steps);
  ASSERT_EQ(together.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const json& p = ref["prompts"][i];
    golden::ExpectGreedyMatches(together[i], p["greedy_ids"], p["greedy_margins"],
                                GetParam() + " batched prompt " + std::to_string(i) + " on CUDA");
    std::vector<Completion> alone = golden::Greedy(**model, CudaCtx(), {prompts[i]}, steps);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].token_ids, together[i].token_ids) << "batched and unbatched greedy differ for prompt " << i;
    ASSERT_EQ(alone[0].logprobs.size(), together[i].logprobs.size());
    for (size_t s = 0; s < alone[0].logprobs.size(); ++s)
      ASSERT_NEAR(alone[0].logprobs[s].logprob, together[i].logprobs[s].logprob, kBatchLogprobTol) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, CudaGoldenTest, ::testing::ValuesIn(golden::Models()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tide
