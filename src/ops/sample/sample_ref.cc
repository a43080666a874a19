// The definition, as engine/sampler.cc computes it: f64 log-softmax of the whole row,
// candidates sorted by (logit descending, id ascending).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "base/rng.h"
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

namespace tide {
namespace {

// engine/sampler.cc's order: larger logit first, then lower id.
struct Better {
  const float* x;
  bool operator()(int32_t a, int32_t b) const { return x[a] != x[b] ? x[a] > x[b] : a < b; }
};

int32_t DrawRow(const float* x, int64_t vocab, const SampleRowSpec& s) {
  const Better better{x};
  if (s.temperature == 0.f) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; ++i)
      if (better(i, best)) best = i;
    return best;
  }
  std::vector<int32_t> cand(static_cast<size_t>(vocab));
  std::iota(cand.begin(), cand.end(), 0);
  size_t n = cand.size();
  const bool needs_order = s.top_p < 1.f || s.min_p > 0.f;
  if (s.top_k > 0 && static_cast<size_t>(s.top_k) < n) {
    n = static_cast<size_t>(s.top_k);
    std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(n), cand.end(), better);
  } else if (needs_order) {
    std::sort(cand.begin(), cand.end(), better);
  }
  const double inv_t = 1.0 / static_cast<double>(s.temperature);
  double mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[cand[i]]) * inv_t);
  std::vector<double> prob(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    prob[i] = std::exp(std::fma(static_cast<double>(x[cand[i]]), inv_t, -mx));
    sum += prob[i];
  }
  for (double& q : prob) q /= sum;
  if (s.top_p < 1.f) {
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += prob[i];
      if (cum >= static_cast<double>(s.top_p)) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (s.min_p > 0.f) {
    const double floor = static_cast<double>(s.min_p) * prob[0];
    size_t keep = 1;
    while (keep < n && prob[keep] >= floor) ++keep;
    n = keep;
  }
  double mass = 0;
  for (size_t i = 0; i < n; ++i) mass += prob[i];
  const double u = UniformAt(s.seed, s.position) * mass;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += prob[i];
    if (u < cum) return cand[i];
  }
  return cand[n - 1];
}

}  // namespace

void SampleRef(const SampleParams& p) {
  const int k = p.top_k_logprobs;
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* raw = p.raw_logits + r * p.vocab;
    const int32_t token = DrawRow(p.logits + r * p.vocab, p.vocab, p.spec[r]);
    double mx = -INFINITY;
    for (int64_t i = 0; i < p.vocab; ++i) mx = std::max(mx, static_cast<double>(raw[i]));
    double sum = 0;
    for (int64_t i = 0; i < p.vocab; ++i) sum += std::exp(static_cast<double>(raw[i]) - mx);
    const double lse = mx + std::log(sum);
    p.token[r] = token;
    p.logprob[r] = static_cast<float>(static_cast<double>(raw[token]) - lse);
    if (k == 0) continue;
    std::vector<int32_t> idx(static_cast<size_t>(p.vocab));
    std::iota(idx.begin(), idx.end(), 0);
    const size_t kk = std::min<size_t>(static_cast<size_t>(k), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kk), idx.end(), Better{raw});
    for (int j = 0; j < k; ++j) {
      const int32_t id = static_cast<size_t>(j) < kk ? idx[static_cast<size_t>(j)] : -1;
      p.top_ids[r * k + j] = id;
      p.top_logprobs[r * k + j] = id < 0 ? -INFINITY : static_cast<float>(static_cast<double>(raw[id]) - lse);
    }
  }
}

}  // namespace tide
