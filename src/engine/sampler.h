// Sampler: logits -> token, with log-probabilities.
//
// Randomness is counter-based, keyed by (seed, output position): a request's samples
// never depend on what else is in the batch or on how steps were split.
// Filters apply in this order, as vLLM does: temperature, top-k, top-p, min-p. Sample reads
// only the sampling fields of SamplingParams (penalties and biases are applied to the
// logits beforehand, engine/logits_processor.h).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "base/status.h"
#include "engine/sampling_params.h"

namespace tide {


struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.f;
};

struct SampleResult {
  int32_t token = 0;
  float logprob = 0.f;             // of `token` under the model's raw distribution
  std::vector<TokenLogprob> top;   // the top_logprobs most likely tokens, most likely first
};

// REQUIRES: params.Validate().ok(), vocab > 0. `position` is the index of the output
// token being sampled (0 for the first generated token). Logprobs (when asked for) are
// of `logits` itself.
SampleResult Sample(const float* logits, int64_t vocab, const SamplingParams& params, uint64_t position);
// The token is chosen from `logits` (after penalties and biases), the reported logprobs
// are of `logprob_logits` (the model's raw row), as vLLM reports them by default.
SampleResult Sample(const float* logits, const float* logprob_logits, int64_t vocab, const SamplingParams& params,
                    uint64_t position);

// Fills r->logprob (of r->token) and r->top (`top_logprobs` most likely, most likely
// first, ties -> lower id) from log_softmax(logits).
void FillLogprobs(const float* logits, int64_t vocab, int top_logprobs, SampleResult* r);

// log_softmax of one row in f64 accumulation (used for logprobs and by tests).
void LogSoftmax(const float* logits, int64_t n, std::vector<double>* out);

}  // namespace tide
