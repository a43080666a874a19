// Test helpers shared by golden_test.cc (CPU) and cuda_golden_test.cc (GPU): reading the
// transformers fixtures of tests/golden/ and running a model over them the same way on
// either device. Test-only; include from tests.
#pragma once

#include <gtest/gtest.h>
#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/file.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "engine/sampler.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace tide::golden {

// Greedy steps past the first one whose reference top-1/top-2 margin is below this may
// legitimately differ (f32 rounding can pick the other token).
inline constexpr double kMarginFloor = 1e-2;

inline nlohmann::json ReadJson(const std::string& path) {
  auto text = ReadFileToString(path, 64u << 20);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
}

// The fixture folders of tests/golden/ (every architecture; the trained models,
// stories260K and the built-in one, have tests of their own).
inline std::vector<std::string> Models() {
  std::vector<std::string> names;
  if (DIR* d = opendir("tests/golden")) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n[0] != '.' && n != "stories260K" && n != "builtin" && FileExists("tests/golden/" + n + "/reference.json")) names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Last-position log-softmax of `ids` from one prefill through a paged cache on the
// context's device (blocks 0..n-1 in order).
inline std::vector<double> LastLogprobs(Model& model, const ExecContext& ctx, const std::vector<int32_t>& ids) {
  std::vector<double> lp;
  const ModelConfig& c = model.config();
  const int bs = 16;
  const int64_t blocks = (static_cast<int64_t>(ids.size()) + bs - 1) / bs;
  auto cache = KvCache::Create({c.num_layers, blocks, bs, c.num_kv_heads, c.head_dim}, ctx.device);
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
  Status s = model.Forward(ctx, b, *cache, &logits);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (s.ok()) LogSoftmax(logits.data(), c.vocab_size, &lp);
  return lp;
}

// Asserts max |got - want| <= tol and prints the measured value (the figure the notes quote).
inline void ExpectLogprobsClose(const std::vector<double>& got, const nlohmann::json& want, double tol,
                                const std::string& what) {
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
  EXPECT_LE(worst, tol) << what << ": max |log p - ref| = " << worst << " at token " << at;
}

// Greedy tokens identical to the reference up to the first low-margin step.
inline void ExpectGreedyMatches(const Completion& got, const nlohmann::json& want_ids, const nlohmann::json& margins,
                                const std::string& what) {
  size_t n = 0;
  while (n < margins.size() && margins[n].get<double>() >= kMarginFloor) ++n;
  n = std::min(n, got.token_ids.size());
  for (size_t i = 0; i < n; ++i)
    ASSERT_EQ(got.token_ids[i], want_ids[i].get<int32_t>())
        << what << ": greedy step " << i << " (margin " << margins[i].get<double>() << ")";
}

// Greedy decoding of every prompt together through the engine (continuous batching,
// chunked prefill under a 512-token budget, prefix caching on), with logprobs; checks
// that every KV block is free again afterwards.
inline std::vector<Completion> Greedy(Model& model, const ExecContext& ctx,
                                      const std::vector<std::vector<int32_t>>& prompts, int steps) {
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(model, ctx);
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

}  // namespace tide::golden
