#include "engine/logits_processor.h"

#include <cmath>
#include <vector>

namespace tide {

bool NeedsLogitsProcessing(const SamplingParams& p, int64_t num_output) {
  return !p.logit_bias.empty() || num_output < p.min_tokens || p.repetition_penalty != 1.f ||
         p.presence_penalty != 0.f || p.frequency_penalty != 0.f;
}

bool NeedsTokenHistory(const SamplingParams& p) {
  return p.repetition_penalty != 1.f || p.presence_penalty != 0.f || p.frequency_penalty != 0.f;
}

void ProcessLogits(const SamplingParams& p, std::span<const int32_t> prompt, std::span<const int32_t> output,
                   std::span<const int32_t> eos_ids, float* logits, int64_t vocab) {
  for (const auto& [id, bias] : p.logit_bias) logits[id] += bias;
  if (static_cast<int64_t>(output.size()) < p.min_tokens) {
    if (!p.ignore_eos)
      for (int32_t id : eos_ids)
        if (id >= 0 && id < vocab) logits[id] = -INFINITY;
    for (int32_t id : p.stop_token_ids) logits[id] = -INFINITY;
  }
  if (p.repetition_penalty != 1.f) {
    // A token is penalised once however often it occurs.
    std::vector<uint8_t> seen(static_cast<size_t>(vocab), 0);
    auto mark = [&](std::span<const int32_t> ids) {
      for (int32_t id : ids)
        if (id >= 0 && id < vocab) seen[static_cast<size_t>(id)] = 1;
    };
    mark(prompt);
    mark(output);
    const float r = p.repetition_penalty;
    for (int64_t i = 0; i < vocab; ++i)
      if (seen[static_cast<size_t>(i)]) logits[i] = logits[i] > 0.f ? logits[i] / r : logits[i] * r;
  }
  if (p.presence_penalty != 0.f || p.frequency_penalty != 0.f) {
    std::vector<int32_t> count(static_cast<size_t>(vocab), 0);
    for (int32_t id : output)
      if (id >= 0 && id < vocab) ++count[static_cast<size_t>(id)];
    for (int64_t i = 0; i < vocab; ++i) {
      const int32_t c = count[static_cast<size_t>(i)];
      if (c > 0) logits[i] -= std::fma(p.frequency_penalty, static_cast<float>(c), p.presence_penalty);
    }
  }
}

}  // namespace tide
