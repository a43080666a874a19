// SamplingParams: everything a request says about how its tokens are chosen and when
// generation ends. A value type; validated once at submission (Validate, then the
// engine's vocabulary checks), never re-checked on the hot path.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace tide {

struct SamplingParams {
  // ---- sampling (engine/sampler.h): temperature, then top-k, top-p, min-p
  float temperature = 1.f;  // 0 = greedy (argmax; ties -> lowest id)
  int top_k = 0;            // 0 = off
  float top_p = 1.f;        // 1 = off
  float min_p = 0.f;        // 0 = off
  uint64_t seed = 0;        // completion i of n samples with seed + i

  // ---- logits processing, applied in this order before sampling (logits_processor.h)
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, added to its logit)
  float repetition_penalty = 1.f;  // > 0; 1 = off; over prompt and output tokens
  float presence_penalty = 0.f;    // [-2, 2]; over output tokens
  float frequency_penalty = 0.f;   // [-2, 2]; over output tokens

  // ---- stopping
  int max_tokens = 16;       // > 0; capped by max_model_len - prompt length at submission
  int min_tokens = 0;        // EOS and stop_token_ids are masked until this many outputs
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // end generation (the token is part of the output)
  std::vector<std::string> stop;        // stop strings (need a tokenizer); text ends before them
  bool include_stop_str_in_output = false;  // text ends after the matched stop string instead

  // ---- outputs
  bool logprobs = false;    // report the sampled token's log-probability
  int top_logprobs = 0;     // and this many alternatives (0..20)
  // vLLM's prompt_logprobs: -1 = off; k in [0, 20] = for every prompt token after the
  // first, its logprob given the tokens before it and the k most likely alternatives
  // (raw distribution). The request then computes its whole prompt (no prefix-cache hit).
  int prompt_logprobs = -1;
  int n = 1;                // completions of one prompt (1..64); they share its KV blocks

  // kInvalidArgument naming the field: temperature < 0 or not finite, top_k < 0,
  // top_p not in (0, 1], min_p not in [0, 1], top_logprobs not in [0, 20], penalties out
  // of range, prompt_logprobs not in [-1, 20], a non-finite logit bias, max_tokens <= 0, min_tokens not in [0, max_tokens],
  // n not in [1, 64], an empty stop string.
  [[nodiscard]] Status Validate() const;
};

}  // namespace tide
