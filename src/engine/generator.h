// Generate: a simple generation loop for one or a few sequences — every sequence's KV
// blocks are reserved up front, prompts are prefilled in chunks under a per-step token
// budget, then all sequences decode together, one token each per step. (Continuous
// batching, preemption and prefix caching belong to the Scheduler.)
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backend/exec.h"
#include "base/status.h"
#include "engine/sampler.h"
#include "model/model.h"

namespace tide {

struct GenerateRequest {
  std::vector<int32_t> prompt;   // token ids, non-empty
  int max_tokens = 64;           // > 0
  SamplingParams sampling;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // end generation (besides the model's EOS ids)
};

enum class FinishReason { kStop, kLength };
const char* FinishReasonName(FinishReason r);

struct GenerateOutput {
  std::vector<int32_t> tokens;        // generated ids (a stop token included, as HF does)
  std::vector<SampleResult> samples;  // one per generated token
  FinishReason finish = FinishReason::kLength;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;  // steps that held prompt tokens (incl. the first sample)
  double decode_seconds = 0;   // the remaining steps
  int64_t decode_steps = 0;
};

struct GeneratorOptions {
  int block_size = 16;
  int64_t max_batched_tokens = 512;  // prompt tokens per step (decodes always fit)
};

// Called after each sampled token: (request index, its sample).
using TokenCallback = std::function<void(int, const SampleResult&)>;

// Errors: kInvalidArgument (empty prompt, prompt + max_tokens over the model's context,
// bad sampling params, token ids out of vocabulary) before any work; kResourceExhausted
// when the KV cache cannot be allocated.
Result<std::vector<GenerateOutput>> Generate(Model& model, const ExecContext& ctx,
                                             const std::vector<GenerateRequest>& requests,
                                             const GeneratorOptions& options, const TokenCallback& on_token,
                                             GenerateStats* stats);

}  // namespace tide
