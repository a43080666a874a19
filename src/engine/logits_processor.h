// Logits processing: the request-level adjustments applied to one row of logits before
// Sample (engine/sampler.h), in this order (as vLLM applies them):
//   1. logit_bias: logit[id] += bias
//   2. min_tokens: while fewer than min_tokens outputs exist, EOS ids (unless
//      ignore_eos) and stop_token_ids get -inf
//   3. repetition_penalty r over tokens in prompt or output: logit > 0 ? logit / r : logit * r
//   4. presence p and frequency f over output tokens: logit -= p + f * count
// Every step is a pure function of (params, prompt, output so far): a preempted and
// recomputed sequence sees the same adjusted logits.
#pragma once

#include <cstdint>
#include <span>

#include "engine/sampling_params.h"

namespace tide {

// Whether ProcessLogits would change anything for a sequence with num_output outputs.
[[nodiscard]] bool NeedsLogitsProcessing(const SamplingParams& p, int64_t num_output);
// Whether ProcessLogits reads the values of the prompt and output tokens (the penalties),
// not only how many outputs there are: such a row needs every earlier token known.
[[nodiscard]] bool NeedsTokenHistory(const SamplingParams& p);

// REQUIRES: every id in p.logit_bias and p.stop_token_ids is in [0, vocab) (checked at
// submission). `logits` is one row of `vocab` floats, modified in place.
void ProcessLogits(const SamplingParams& p, std::span<const int32_t> prompt, std::span<const int32_t> output,
                   std::span<const int32_t> eos_ids, float* logits, int64_t vocab);

}  // namespace tide
