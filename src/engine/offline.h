// Offline generation: submit a batch of requests to an EngineCore and step it until every
// one has finished. For `tide generate`-style tools, benchmarks and tests; a server uses
// Engine (engine.h) instead.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/engine_core.h"

namespace tide {

// Everything one completion produced, assembled from its deltas.
struct Completion {
  std::string request_id;
  int index = 0;
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<SampleResult> logprobs;
  std::vector<SampleResult> prompt_logprobs;  // sampling.prompt_logprobs >= 0, completion 0
  std::vector<double> token_times;
  FinishReason finish_reason = FinishReason::kNone;
  Status status;
  Usage usage;
  RequestTimes times;
};

// Adds every request (arrival = now), then steps until all have finished. Returns the
// completions in request order, then index. `on_output` (optional) sees every delta as
// it is produced. Errors: the first AddRequest error (kInvalidArgument,
// kAlreadyExists); requests added before it are aborted.
Result<std::vector<Completion>> RunToCompletion(EngineCore& core, std::vector<Request> requests,
                                                const std::function<void(const RequestOutput&)>& on_output = nullptr);

}  // namespace tide
