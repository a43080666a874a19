// Rows in parallel; within a row one pass for the maximum (and its lowest id), one for
// the f64 sum, then top_k selections each taking the best entry ordered after the
// previous one (no sort of the vocabulary).
#include <cmath>

#include "backend/cpu/thread_pool.h"
#include "ops/sample/sample.h"

namespace tide {
namespace {

// True when (va, a) comes before (vb, b): larger logit first, then lower id.
inline bool Before(float va, int64_t a, float vb, int64_t b) { return va != vb ? va > vb : a < b; }

void Row(const SampleGreedyParams& p, int64_t r) {
  const float* x = p.logits + r * p.vocab;
  int64_t best = 0;
  for (int64_t i = 1; i < p.vocab; ++i)
    if (x[i] > x[best]) best = i;
  const double mx = x[best];
  double sum = 0;
  for (int64_t i = 0; i < p.vocab; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  const double lse = mx + std::log(sum);
  p.token[r] = static_cast<int32_t>(best);
  p.logprob[r] = static_cast<float>(mx - lse);
  int64_t prev = -1;
  for (int j = 0; j < p.top_k; ++j) {
    int64_t pick = -1;
    for (int64_t i = 0; i < p.vocab; ++i) {
      if (prev >= 0 && !Before(x[prev], prev, x[i], i)) continue;  // already taken
      if (pick < 0 || Before(x[i], i, x[pick], pick)) pick = i;
    }
    p.top_ids[r * p.top_k + j] = static_cast<int32_t>(pick);
    p.top_logprobs[r * p.top_k + j] = pick < 0 ? -INFINITY : static_cast<float>(static_cast<double>(x[pick]) - lse);
    prev = pick < 0 ? prev : pick;
  }
}

}  // namespace

void SampleGreedyCpu(const SampleGreedyParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    for (int64_t r = 0; r < p.rows; ++r) Row(p, r);
    return;
  }
  pool->ParallelFor(p.rows, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) Row(p, r);
  });
}

}  // namespace tide
