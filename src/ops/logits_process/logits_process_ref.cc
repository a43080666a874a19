// The definition: engine/logits_processor.cc's ProcessLogits on each row, with the
// row's lists read from the CSR arrays (vocab-sized flag and count arrays, as there).
#include <cmath>
#include <vector>

#include "ops/logits_process/logits_process.h"

namespace tide {

void LogitsProcessRef(const LogitsProcessParams& p) {
  auto span = [](const int32_t* off, int64_t r, int64_t* lo, int64_t* hi) {
    *lo = off == nullptr ? 0 : off[r];
    *hi = off == nullptr ? 0 : off[r + 1];
  };
  auto in_vocab = [&](int32_t id) { return id >= 0 && id < p.vocab; };
  for (int64_t r = 0; r < p.rows; ++r) {
    float* x = p.logits + r * p.vocab;
    int64_t lo, hi;
    span(p.bias_offsets, r, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i)
      if (in_vocab(p.bias_ids[i])) x[p.bias_ids[i]] += p.bias_values[i];
    span(p.masked_offsets, r, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i)
      if (in_vocab(p.masked_ids[i])) x[p.masked_ids[i]] = -INFINITY;
    int64_t plo, phi, olo, ohi;
    span(p.prompt_offsets, r, &plo, &phi);
    span(p.output_offsets, r, &olo, &ohi);
    const float rep = p.repetition_penalty == nullptr ? 1.f : p.repetition_penalty[r];
    if (rep != 1.f) {
      std::vector<uint8_t> seen(static_cast<size_t>(p.vocab), 0);
      for (int64_t i = plo; i < phi; ++i)
        if (in_vocab(p.prompt_ids[i])) seen[static_cast<size_t>(p.prompt_ids[i])] = 1;
      for (int64_t i = olo; i < ohi; ++i)
        if (in_vocab(p.output_ids[i])) seen[static_cast<size_t>(p.output_ids[i])] = 1;
      for (int64_t i = 0; i < p.vocab; ++i)
        if (seen[static_cast<size_t>(i)]) x[i] = x[i] > 0.f ? x[i] / rep : x[i] * rep;
    }
    const float pres = p.presence_penalty == nullptr ? 0.f : p.presence_penalty[r];
    const float freq = p.frequency_penalty == nullptr ? 0.f : p.frequency_penalty[r];
    if (pres != 0.f || freq != 0.f) {
      std::vector<int32_t> count(static_cast<size_t>(p.vocab), 0);
      for (int64_t i = olo; i < ohi; ++i)
        if (in_vocab(p.output_ids[i])) ++count[static_cast<size_t>(p.output_ids[i])];
      for (int64_t i = 0; i < p.vocab; ++i) {
        const int32_t c = count[static_cast<size_t>(i)];
        if (c > 0) x[i] -= std::fma(freq, static_cast<float>(c), pres);
      }
    }
  }
}

}  // namespace tide
