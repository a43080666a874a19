#include <cmath>
#include <vector>

#include "ops/moe_route/moe_route.h"

namespace tide {

void MoeRouteRef(const MoeRouteParams& p) {
  const int e_count = p.n_experts;
  std::vector<double> prob(static_cast<size_t>(e_count));
  std::vector<bool> taken(static_cast<size_t>(e_count));
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const float* x = p.logits + t * e_count;
    double mx = x[0];
    for (int e = 1; e < e_count; ++e) mx = std::max(mx, static_cast<double>(x[e]));
    double sum = 0;
    for (int e = 0; e < e_count; ++e) sum += prob[static_cast<size_t>(e)] = std::exp(x[e] - mx);
    for (double& v : prob) v /= sum;
    std::fill(taken.begin(), taken.end(), false);
    double chosen_sum = 0;
    for (int k = 0; k < p.top_k; ++k) {
      int best = -1;
      for (int e = 0; e < e_count; ++e) {  // strict '>' keeps the lower id on ties
        if (!taken[static_cast<size_t>(e)] && (best < 0 || prob[static_cast<size_t>(e)] > prob[static_cast<size_t>(best)])) best = e;
      }
      taken[static_cast<size_t>(best)] = true;
      p.expert_ids[t * p.top_k + k] = best;
      chosen_sum += prob[static_cast<size_t>(best)];
    }
    for (int k = 0; k < p.top_k; ++k) {
      const double w = prob[static_cast<size_t>(p.expert_ids[t * p.top_k + k])];
      p.weights[t * p.top_k + k] = static_cast<float>(p.renormalize ? w / chosen_sum : w);
    }
  }
}

}  // namespace tide
