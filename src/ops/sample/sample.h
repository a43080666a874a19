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

// ---- sample: per row, a token drawn from processed logits with the row's own settings
// (engine/sampler.cc's Sample, token for token), plus log-probabilities of the raw row.
//
// Per row, as the host sampler does: temperature 0 = argmax (ties to the lowest id).
// Otherwise candidates by (logit descending, id ascending); top-k keeps the first k;
// probabilities softmax(logit / temperature) in f64 over the candidates; top-p keeps the
// smallest prefix whose mass reaches top_p (at least one); min-p keeps those with
// probability >= min_p * the largest; u = UniformAt(seed, position) * kept mass, and the
// token is the first whose cumulative probability exceeds u — walked in id order when
// only temperature is set (no top-k below vocab, no top-p, no min-p), in candidate order
// otherwise. log-probabilities are of raw_logits (f64 log-softmax, rounded once).
// The CUDA kernel sums in another order than the host, so a draw u within ~1e-12
// (relative) of a cumulative boundary, or a top-p/min-p comparison that close to its
// threshold, may go the other way; Ref and Cpu equal the host sampler exactly.
struct SampleRowSpec {          // one logit row's sampling settings
  float temperature = 0.f;      // 0 = greedy (argmax, ties to the lowest id); else > 0
  int32_t top_k = 0;            // 0 = off
  float top_p = 1.f;            // 1 = off; in (0, 1]
  float min_p = 0.f;            // 0 = off; in [0, 1]
  uint64_t seed = 0;            // the sequence's seed
  uint64_t position = 0;        // counter: index of the output token being sampled
};

struct SampleParams {
  const float* logits = nullptr;      // [rows, vocab] processed logits: the token is chosen from these
  const float* raw_logits = nullptr;  // [rows, vocab] the model's raw logits: logprobs are of these (may == logits)
  const SampleRowSpec* spec = nullptr;  // [rows]
  int64_t rows = 0, vocab = 0;
  int top_k_logprobs = 0;             // 0..kSampleMaxTopK: the most likely (id, logprob) of raw_logits per row
  int32_t* token = nullptr;           // [rows]
  float* logprob = nullptr;           // [rows] log-softmax of raw_logits at token (f64 sum, rounded once)
  int32_t* top_ids = nullptr;         // [rows, top_k_logprobs] (-1 past vocab; unused when 0)
  float* top_logprobs = nullptr;      // [rows, top_k_logprobs] (-inf past vocab)
  // Host-known hint (optional): every spec has temperature 0. On CUDA the launch is then
  // SampleGreedy's kernels alone; on the CPU it changes nothing. Wrong = wrong tokens.
  bool all_greedy = false;
  // Checks sizes and pointers only: spec values live in device memory on CUDA, and are
  // the caller's to validate (SamplingParams::Validate); each row needs a finite logit.
  [[nodiscard]] Status check() const;
};

void SampleRef(const SampleParams& p);  // the host sampler's algorithm, row by row
void SampleCpu(const SampleParams& p, ThreadPool* pool);
// CUDA (built with TIDE_CUDA): every pointer in p is device memory; `workspace` holds at
// least SampleCudaWorkspaceBytes(rows, vocab) device bytes (contents need not be kept
// between calls, but must not be shared with a launch still running). Runs on `stream`.
void SampleCuda(const SampleParams& p, void* workspace, size_t workspace_bytes, void* stream);
size_t SampleCudaWorkspaceBytes(int64_t rows, int64_t vocab);
// Dispatcher. On CUDA it uses a grow-only workspace of its own (as SampleGreedy does):
// not thread-safe, and a growth frees the old buffer (waits for the device), so the
// first call at a new largest shape must not be inside a graph capture.
void Sample(const ExecContext& ctx, const SampleParams& p);

// Test hook (CUDA builds): out[i] = base/rng.h UniformAt(key[i], counter[i]) computed on
// the device by the kernel's own copy; device pointers.
void TEST_SampleCudaUniformAt(const uint64_t* key, const uint64_t* counter, double* out, int64_t n, void* stream);

}  // namespace tide
