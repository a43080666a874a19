// Request (what a caller submits) and RequestOutput (what its stream delivers). The API
// objects, kept apart from the engine's state record (engine/sequence.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/sampler.h"
#include "engine/sampling_params.h"

namespace tide {

struct Request {
  std::string id;                 // unique among the engine's live requests
  std::vector<int32_t> prompt;    // token ids, non-empty
  SamplingParams sampling;
  int priority = 0;               // lower is served first; ties in arrival order (FCFS)
  uint64_t cache_salt = 0;        // the prefix cache's extra key (LoRA id, tenant, ...)
};

// The order is chronological and relied on nowhere else; kNone until the end.
enum class FinishReason { kNone, kStop, kLength, kAbort };
const char* FinishReasonName(FinishReason r);  // "stop", "length", "abort", ""

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache
};

// Timestamps in seconds of the engine's steady clock (EngineClock()).
struct RequestTimes {
  double arrival = 0;           // Submit
  double first_scheduled = 0;   // first step that ran it (queue time = this - arrival)
  double first_token = 0;       // TTFT = this - arrival
  double finished = 0;
};

// One delta of one completion: what became known in one engine step.
struct RequestOutput {
  std::string request_id;
  int index = 0;                        // which of the request's n completions
  std::vector<int32_t> token_ids;       // new tokens
  std::string text;                     // new text (empty without a tokenizer)
  std::vector<SampleResult> logprobs;   // per new token, when sampling.logprobs
  // sampling.prompt_logprobs >= 0: on the first delta of completion 0 only, one entry
  // per prompt token after the first — entry i is prompt token i + 1 (`token`), its
  // logprob given prompt[0..i] and the prompt_logprobs most likely alternatives (`top`),
  // all of the model's raw distribution. Size prompt_tokens - 1. Empty everywhere else.
  std::vector<SampleResult> prompt_logprobs;
  std::vector<double> token_times;      // per new token (EngineClock seconds)
  FinishReason finish_reason = FinishReason::kNone;
  Status status;                        // non-OK only when an engine error ended it
  // Filled on the final delta (finish_reason != kNone):
  Usage usage;
  RequestTimes times;
  [[nodiscard]] bool finished() const { return finish_reason != FinishReason::kNone; }
};

// Seconds on a monotonic clock.
double EngineClock();

}  // namespace tide
