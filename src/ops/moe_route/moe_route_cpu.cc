// Follows Hugging Face's Mixtral/Qwen-MoE routers in f32: softmax(logits.float()),
// torch.topk, then (optionally) weights / weights.sum(). Experts are chosen on the f32
// probabilities, not the logits: two logits that round to the same probability tie,
// and the tie goes to the lower id, as torch.topk does.
#include <cmath>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/moe_route/moe_route.h"

namespace tide {
namespace {

void RouteTokens(const MoeRouteParams& p, int64_t begin, int64_t end) {
  const int n = p.n_experts;
  std::vector<float> prob(static_cast<size_t>(n));  // once per chunk, not per token
  float* pr = prob.data();
  for (int64_t t = begin; t < end; ++t) {
    const float* x = p.logits + t * n;
    float mx = x[0];
    for (int e = 1; e < n; ++e) mx = std::max(mx, x[e]);
    float sum = 0.f;
    for (int e = 0; e < n; ++e) sum += pr[e] = std::exp(x[e] - mx);
    for (int e = 0; e < n; ++e) pr[e] /= sum;

    int32_t* ids = p.expert_ids + t * p.top_k;
    float* w = p.weights + t * p.top_k;
    float chosen_sum = 0.f;
    for (int k = 0; k < p.top_k; ++k) {
      // Chosen experts are marked with -1 (probabilities are >= 0); `best` starts at
      // the first unchosen expert so that NaN logits still yield k distinct valid ids.
      int best = 0;
      while (pr[best] < 0.f) ++best;
      for (int e = best + 1; e < n; ++e) {
        if (pr[e] > pr[best]) best = e;
      }
      ids[k] = best;
      w[k] = pr[best];
      chosen_sum += pr[best];
      pr[best] = -1.f;
    }
    if (p.renormalize) {
      for (int k = 0; k < p.top_k; ++k) w[k] /= chosen_sum;
    }
  }
}

constexpr int64_t kGrainElems = 1 << 13;

}  // namespace

void MoeRouteCpu(const MoeRouteParams& p, ThreadPool* pool) {
  if (p.n_tokens == 0) return;
  if (pool == nullptr) {
    RouteTokens(p, 0, p.n_tokens);
    return;
  }
  const int64_t grain = (kGrainElems + p.n_experts - 1) / p.n_experts;
  pool->ParallelFor(p.n_tokens, grain, [&](int64_t b, int64_t e) { RouteTokens(p, b, e); });
}

}  // namespace tide
