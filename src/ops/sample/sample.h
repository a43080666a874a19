// sample (greedy): per logit row, the argmax token, its log-probability and the top_k
// most likely (id, log-probability) pairs, so that a greedy step needs only these few
// numbers from the device instead of the whole [rows, vocab] logits.
//
// Order: by descending logit, ties to the lower id (engine/sampler.cc's total order), so
// token[r] is the lowest id among equal maxima and top_ids[r][0] == token[r].
// log-probability = logit - logsumexp(row), the sum taken in f64 as the host sampler
// does (LogSoftmax); results are rounded to f32 once at the end.
// NaN logits are unsupported; -inf logits are allowed (they get log-probability -inf)
// as long as one logit per row is finite.
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

inline constexpr int kSampleMaxTopK = 20;  // OpenAI's top_logprobs limit

struct SampleGreedyParams {
  const float* logits = nullptr;   // [rows, vocab]
  int64_t rows = 0, vocab = 0;
  int top_k = 0;                   // 0..kSampleMaxTopK
  int32_t* token = nullptr;        // [rows]
  float* logprob = nullptr;        // [rows]
  int32_t* top_ids = nullptr;      // [rows, top_k] (unused when top_k == 0)
  float* top_logprobs = nullptr;   // [rows, top_k], most likely first
  [[nodiscard]] Status check() const;
};

void SampleGreedyRef(const SampleGreedyParams& p);  // LogSoftmax + sort, in f64
void SampleGreedyCpu(const SampleGreedyParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory. Runs on
// `stream` (cudaStream_t).
void SampleGreedyCuda(const SampleGreedyParams& p, void* stream);
void SampleGreedy(const ExecContext& ctx, const SampleGreedyParams& p);

}  // namespace tide
