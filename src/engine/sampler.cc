#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/rng.h"

namespace tide {

void LogSoftmax(const float* logits, int64_t n, std::vector<double>* out) {
  out->resize(static_cast<size_t>(n));
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) (*out)[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - lse;
}

void FillLogprobs(const float* logits, int64_t vocab, int top_logprobs, SampleResult* r) {
  std::vector<double> lp;
  LogSoftmax(logits, vocab, &lp);
  r->logprob = static_cast<float>(lp[static_cast<size_t>(r->token)]);
  r->top.clear();
  if (top_logprobs <= 0) return;
  auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  const size_t k = std::min<size_t>(static_cast<size_t>(top_logprobs), idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), better);
  for (size_t i = 0; i < k; ++i) r->top.push_back({idx[i], static_cast<float>(lp[static_cast<size_t>(idx[i])])});
}

SampleResult Sample(const float* logits, int64_t vocab, const SamplingParams& p, uint64_t position) {
  return Sample(logits, logits, vocab, p, position);
}

SampleResult Sample(const float* logits, const float* logprob_logits, int64_t vocab, const SamplingParams& p,
                    uint64_t position) {
  SampleResult r;
  // Log-probabilities cost an f64 exp per vocabulary entry: only when asked for.
  const bool want_lp = p.logprobs || p.top_logprobs > 0;
  auto finish = [&](int32_t token) {
    r.token = token;
    if (want_lp) FillLogprobs(logprob_logits, vocab, p.top_logprobs, &r);
    return r;
  };

  // Candidates by descending logit, ties -> lower id (a total order: deterministic).
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };

  if (p.temperature == 0.f) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; ++i)
      if (better(i, best)) best = i;
    return finish(best);
  }

  // Temperature-scaled probabilities over the surviving candidates, in f64. Only top-p
  // and min-p need the candidates in probability order; plain temperature sampling
  // walks the vocabulary in id order (as deterministic, and no 100k-entry sort).
  std::vector<int32_t> cand(static_cast<size_t>(vocab));
  std::iota(cand.begin(), cand.end(), 0);
  size_t n = cand.size();
  const bool needs_order = p.top_p < 1.f || p.min_p > 0.f;
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    n = static_cast<size_t>(p.top_k);
    std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(n), cand.end(), better);
  } else if (needs_order) {
    std::sort(cand.begin(), cand.end(), better);
  }
  cand.resize(n);
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  double mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[cand[i]]) * inv_t);
  std::vector<double> prob(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    // An explicit fma: the CUDA sampler rounds the same way, and every host build (Release
    // contracts a*b-c by itself, -O1 does not) draws the same token.
    prob[i] = std::exp(std::fma(static_cast<double>(logits[cand[i]]), inv_t, -mx));
    sum += prob[i];
  }
  for (double& x : prob) x /= sum;
  if (p.top_p < 1.f) {
    // Keep the smallest prefix whose mass reaches top_p (at least one token).
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += prob[i];
      if (cum >= static_cast<double>(p.top_p)) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (p.min_p > 0.f) {
    const double floor = static_cast<double>(p.min_p) * prob[0];  // prob[0] is the largest here
    size_t keep = 1;
    while (keep < n && prob[keep] >= floor) ++keep;
    n = keep;
  }
  double mass = 0;
  for (size_t i = 0; i < n; ++i) mass += prob[i];
  const double u = UniformAt(p.seed, position) * mass;
  double cum = 0;
  size_t pick = n - 1;
  for (size_t i = 0; i < n; ++i) {
    cum += prob[i];
    if (u < cum) {
      pick = i;
      break;
    }
  }
  return finish(cand[pick]);
}

}  // namespace tide
