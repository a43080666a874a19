#include "engine/sampling_params.h"

#include <cmath>

namespace tide {

Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0.f)
    return InvalidArgument("temperature must be a finite number >= 0, got " + std::to_string(temperature));
  if (top_k < 0) return InvalidArgument("top_k must be >= 0 (0 disables it), got " + std::to_string(top_k));
  if (!(top_p > 0.f && top_p <= 1.f)) return InvalidArgument("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0.f && min_p <= 1.f)) return InvalidArgument("min_p must be in [0, 1], got " + std::to_string(min_p));
  if (top_logprobs < 0 || top_logprobs > 20)
    return InvalidArgument("top_logprobs must be in [0, 20], got " + std::to_string(top_logprobs));
  if (prompt_logprobs < -1 || prompt_logprobs > 20)
    return InvalidArgument("prompt_logprobs must be in [0, 20] (or -1 for none), got " + std::to_string(prompt_logprobs));
  if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0.f))
    return InvalidArgument("repetition_penalty must be > 0 (1 disables it), got " + std::to_string(repetition_penalty));
  if (!(presence_penalty >= -2.f && presence_penalty <= 2.f))
    return InvalidArgument("presence_penalty must be in [-2, 2], got " + std::to_string(presence_penalty));
  if (!(frequency_penalty >= -2.f && frequency_penalty <= 2.f))
    return InvalidArgument("frequency_penalty must be in [-2, 2], got " + std::to_string(frequency_penalty));
  for (const auto& [id, bias] : logit_bias)
    if (!std::isfinite(bias)) return InvalidArgument("logit_bias for token " + std::to_string(id) + " is not finite");
  if (max_tokens <= 0) return InvalidArgument("max_tokens must be > 0, got " + std::to_string(max_tokens));
  if (min_tokens < 0 || min_tokens > max_tokens)
    return InvalidArgument("min_tokens must be in [0, max_tokens], got " + std::to_string(min_tokens));
  if (n < 1 || n > 64) return InvalidArgument("n must be in [1, 64], got " + std::to_string(n));
  for (const std::string& s : stop)
    if (s.empty()) return InvalidArgument("stop strings must not be empty");
  return OkStatus();
}

}  // namespace tide
