// Rows in parallel; within a row one pass for the maximum (and its lowest id), one for
// the f64 sum, then top_k selections each taking the best entry ordered after the
// previous one (no sort of the vocabulary).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"
#include "ops/sample/sample.h"

namespace tide {
namespace {

// True when (va, a) comes before (vb, b): larger logit first, then lower id.
inline bool Before(float va, int64_t a, float vb, int64_t b) { return va != vb ? va > vb : a < b; }

// Returns the row's log-sum-exp (for the sample op's logprob of another token).
double Row(const SampleGreedyParams& p, int64_t r) {
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
  return lse;
}

}  // namespace

void SampleGreedyCpu(const SampleGreedyParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    for (int64_t r = 0; r < p.rows; ++r) (void)Row(p, r);
    return;
  }
  pool->ParallelFor(p.rows, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) (void)Row(p, r);
  });
}

}  // namespace tide

// sample: rows in parallel, each with scratch reused across its rows. The arithmetic is
// the host sampler's, in its order (the same sums, so the same tokens bit for bit); the
// saving is in work, not in rounding: top-k ranks only k candidates (partial sort) and
// the logprob side needs one pass for the log-sum-exp plus top_k_logprobs selections.

namespace tide {
namespace {

struct Scratch {
  std::vector<int32_t> cand;
  std::vector<double> prob;
};

int32_t Draw(const float* x, int64_t vocab, const SampleRowSpec& s, Scratch& sc) {
  auto better = [x](int32_t a, int32_t b) { return x[a] != x[b] ? x[a] > x[b] : a < b; };
  if (s.temperature == 0.f) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; ++i)
      if (x[i] > x[best]) best = i;  // strict: the first maximum is the lowest id
    return best;
  }
  const double inv_t = 1.0 / static_cast<double>(s.temperature);
  const bool needs_order = s.top_p < 1.f || s.min_p > 0.f;
  const bool top_k = s.top_k > 0 && s.top_k < vocab;
  if (!top_k && !needs_order) {
    // Id order: no candidate list at all.
    double mx = -INFINITY;
    for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(x[i]) * inv_t);
    sc.prob.resize(static_cast<size_t>(vocab));
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      sc.prob[static_cast<size_t>(i)] = std::exp(std::fma(static_cast<double>(x[i]), inv_t, -mx));
      sum += sc.prob[static_cast<size_t>(i)];
    }
    double mass = 0;
    for (double& q : sc.prob) {
      q /= sum;
      mass += q;
    }
    const double u = UniformAt(s.seed, s.position) * mass;
    double cum = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      cum += sc.prob[static_cast<size_t>(i)];
      if (u < cum) return static_cast<int32_t>(i);
    }
    return static_cast<int32_t>(vocab - 1);
  }
  sc.cand.resize(static_cast<size_t>(vocab));
  std::iota(sc.cand.begin(), sc.cand.end(), 0);
  size_t n = sc.cand.size();
  if (top_k) {
    n = static_cast<size_t>(s.top_k);
    std::partial_sort(sc.cand.begin(), sc.cand.begin() + static_cast<std::ptrdiff_t>(n), sc.cand.end(), better);
  } else {
    std::sort(sc.cand.begin(), sc.cand.end(), better);
  }
  const double mx = static_cast<double>(x[sc.cand[0]]) * inv_t;  // the first candidate is the largest
  sc.prob.resize(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    sc.prob[i] = std::exp(std::fma(static_cast<double>(x[sc.cand[i]]), inv_t, -mx));
    sum += sc.prob[i];
  }
  for (size_t i = 0; i < n; ++i) sc.prob[i] /= sum;
  if (s.top_p < 1.f) {
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += sc.prob[i];
      if (cum >= static_cast<double>(s.top_p)) {
        n = i + 1;
        break;
      }
    }
  }
  if (s.min_p > 0.f) {
    const double floor = static_cast<double>(s.min_p) * sc.prob[0];
    size_t keep = 1;
    while (keep < n && sc.prob[keep] >= floor) ++keep;
    n = keep;
  }
  double mass = 0;
  for (size_t i = 0; i < n; ++i) mass += sc.prob[i];
  const double u = UniformAt(s.seed, s.position) * mass;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += sc.prob[i];
    if (u < cum) return sc.cand[i];
  }
  return sc.cand[n - 1];
}

void SampleRow(const SampleParams& p, int64_t r, Scratch& sc) {
  p.token[r] = Draw(p.logits + r * p.vocab, p.vocab, p.spec[r], sc);
  // The logprob side is the greedy op's row on raw_logits; only the token differs.
  int32_t greedy_token;
  float greedy_lp;
  SampleGreedyParams g{p.raw_logits + r * p.vocab, 1, p.vocab, p.top_k_logprobs, &greedy_token, &greedy_lp,
                       p.top_ids + r * p.top_k_logprobs, p.top_logprobs + r * p.top_k_logprobs};
  if (p.top_k_logprobs == 0) g.top_ids = nullptr, g.top_logprobs = nullptr;
  const double lse = Row(g, 0);
  p.logprob[r] = static_cast<float>(static_cast<double>(p.raw_logits[r * p.vocab + p.token[r]]) - lse);
}

}  // namespace

void SampleCpu(const SampleParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    Scratch sc;
    for (int64_t r = 0; r < p.rows; ++r) SampleRow(p, r, sc);
    return;
  }
  pool->ParallelFor(p.rows, 1, [&](int64_t lo, int64_t hi) {
    Scratch sc;
    for (int64_t r = lo; r < hi; ++r) SampleRow(p, r, sc);
  });
}

}  // namespace tide
