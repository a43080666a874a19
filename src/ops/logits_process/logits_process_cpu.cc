// Rows in parallel. Instead of vocab-sized flag and count arrays per row, the row's ids
// are sorted (prompt and output together for the repetition penalty, output alone for
// the counts): the work follows the history length, not the vocabulary. Each logit gets
// the same float operations as in the reference, so results are bit-identical.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/logits_process/logits_process.h"

namespace tide {
namespace {

void Row(const LogitsProcessParams& p, int64_t r, std::vector<int32_t>& ids) {
  auto range = [&](const int32_t* off, int64_t* lo, int64_t* hi) {
    *lo = off == nullptr ? 0 : off[r];
    *hi = off == nullptr ? 0 : off[r + 1];
  };
  auto in_vocab = [&](int32_t id) { return id >= 0 && id < p.vocab; };
  float* x = p.logits + r * p.vocab;
  int64_t lo, hi;
  range(p.bias_offsets, &lo, &hi);
  for (int64_t i = lo; i < hi; ++i)
    if (in_vocab(p.bias_ids[i])) x[p.bias_ids[i]] += p.bias_values[i];
  range(p.masked_offsets, &lo, &hi);
  for (int64_t i = lo; i < hi; ++i)
    if (in_vocab(p.masked_ids[i])) x[p.masked_ids[i]] = -INFINITY;
  int64_t plo, phi, olo, ohi;
  range(p.prompt_offsets, &plo, &phi);
  range(p.output_offsets, &olo, &ohi);
  auto gather = [&](const int32_t* src, int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i)
      if (in_vocab(src[i])) ids.push_back(src[i]);
  };
  const float rep = p.repetition_penalty == nullptr ? 1.f : p.repetition_penalty[r];
  if (rep != 1.f) {
    ids.clear();
    gather(p.prompt_ids, plo, phi);
    gather(p.output_ids, olo, ohi);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t id : ids) x[id] = x[id] > 0.f ? x[id] / rep : x[id] * rep;
  }
  const float pres = p.presence_penalty == nullptr ? 0.f : p.presence_penalty[r];
  const float freq = p.frequency_penalty == nullptr ? 0.f : p.frequency_penalty[r];
  if (pres != 0.f || freq != 0.f) {
    ids.clear();
    gather(p.output_ids, olo, ohi);
    std::sort(ids.begin(), ids.end());
    for (size_t i = 0; i < ids.size();) {
      size_t j = i;
      while (j < ids.size() && ids[j] == ids[i]) ++j;
      x[ids[i]] -= std::fma(freq, static_cast<float>(j - i), pres);
      i = j;
    }
  }
}

}  // namespace

void LogitsProcessCpu(const LogitsProcessParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    std::vector<int32_t> ids;
    for (int64_t r = 0; r < p.rows; ++r) Row(p, r, ids);
    return;
  }
  pool->ParallelFor(p.rows, 1, [&](int64_t lo, int64_t hi) {
    std::vector<int32_t> ids;
    for (int64_t r = lo; r < hi; ++r) Row(p, r, ids);
  });
}

}  // namespace tide
