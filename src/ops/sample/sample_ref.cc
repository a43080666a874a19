// The definition, as engine/sampler.cc computes it: f64 log-softmax of the whole row,
// candidates sorted by (logit descending, id ascending).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/sample/sample.h"

namespace tide {

void SampleGreedyRef(const SampleGreedyParams& p) {
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.logits + r * p.vocab;
    double mx = -INFINITY;
    for (int64_t i = 0; i < p.vocab; ++i) mx = std::max(mx, static_cast<double>(x[i]));
    double sum = 0;
    for (int64_t i = 0; i < p.vocab; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
    const double lse = mx + std::log(sum);
    std::vector<int32_t> idx(static_cast<size_t>(p.vocab));
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return x[a] != x[b] ? x[a] > x[b] : a < b; });
    p.token[r] = idx[0];
    p.logprob[r] = static_cast<float>(static_cast<double>(x[idx[0]]) - lse);
    for (int j = 0; j < p.top_k; ++j) {
      const int32_t id = j < p.vocab ? idx[static_cast<size_t>(j)] : -1;
      p.top_ids[r * p.top_k + j] = id;
      p.top_logprobs[r * p.top_k + j] = id < 0 ? -INFINITY : static_cast<float>(static_cast<double>(x[id]) - lse);
    }
  }
}

}  // namespace tide
