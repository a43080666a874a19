// ModelRunner: the seam between the engine and whatever computes logits. The engine
// hands it one ForwardBatch per step; it owns the KV cache storage. The real runner
// wraps Model::Forward (MakeModelRunner); tests use engine/fake_model_runner.h.
//
// Two ways to run a step: Forward (blocks; the logits come to the host) and Launch /
// Collect (the step is queued and its rows are sampled by the runner, so only the
// sampled ids and log-probabilities come back, and the engine prepares the next step
// while this one runs). The defaults of Launch / Collect run synchronously through
// Forward and the host sampler, so every runner supports both.
//
// Thread-safety: called only from the engine thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "backend/exec.h"
#include "base/status.h"
#include "engine/sampler.h"
#include "model/config.h"
#include "model/forward_batch.h"

namespace tide {

class Model;

// How one logit row of a launched step is sampled: exactly what the host path does with
// the row's logits (engine/logits_processor.h, then engine/sampler.h).
struct RowSampling {
  const SamplingParams* sampler = nullptr;  // temperature, top_k/p, min_p, seed, logprobs, top_logprobs
  uint64_t position = 0;                    // index of the output token being sampled (the RNG counter)
  // Logits processing (ProcessLogits) when `process`: `request` holds the bias, min_tokens,
  // penalties, stop ids and ignore_eos; `output.size()` outputs precede this one. Pending
  // outputs (kPendingToken) may end `output`; for a row whose penalties read the history
  // (NeedsTokenHistory) at most the last one, and only when it is the row's own input
  // token (prev_sample_row of its logit row): the runner substitutes the previous step's
  // sample. Spans are valid during Launch only.
  bool process = false;
  const SamplingParams* request = nullptr;
  std::span<const int32_t> prompt, output, eos_ids;
};

// The value of a token the engine has asked for but not yet seen (a pending sample).
inline constexpr int32_t kPendingToken = -1;

// What the host sampler returns for one row: ProcessLogits (when row.process) on a copy of
// `raw`, then Sample(processed, raw, vocab, *row.sampler, row.position).
SampleResult SampleRow(const float* raw, int64_t vocab, const RowSampling& row, std::vector<float>* scratch);

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  // vocab_size, max_position_embeddings, eos_token_ids and the KV shape are read.
  [[nodiscard]] virtual const ModelConfig& config() const = 0;
  // Bytes of KV storage per token (all layers, K and V): sizes the cache from a budget.
  [[nodiscard]] virtual int64_t kv_bytes_per_token() const = 0;
  // Allocates the KV cache of num_blocks x block_size tokens; called once, before any
  // Forward. kResourceExhausted when the memory cannot be had.
  [[nodiscard]] virtual Status AllocateKvCache(int64_t num_blocks, int block_size) = 0;
  // One step: writes the batch's K/V and fills `logits` with
  // [batch.logit_rows.size(), vocab_size] f32 rows. kInvalidArgument for a batch that
  // is inconsistent with itself or the cache (the cache is untouched then); other
  // codes for backend failures.
  [[nodiscard]] virtual Status Forward(const ForwardBatch& batch, std::vector<float>* logits) = 0;

  // One step sampled greedily without the logits leaving the device. For each logit row
  // r (batch.logit_rows order), (*out)[r] is what Sample() returns for that row with
  // temperature 0 and logprobs on: token = the argmax of the raw logits, ties to the
  // lowest id; logprob = its log-softmax (f64 sum); top = the top_logprobs most likely
  // (id, logprob), most likely first, ties to the lower id (fewer when the vocabulary
  // is smaller). Only for rows that would be sampled greedily from unmodified logits:
  // penalties, biases and other logits processors need Forward.
  // kInvalidArgument when top_logprobs is outside [0, 20] or the batch is bad (as
  // Forward). The default runs Forward and the CPU op; the model runner's copies only
  // these numbers from the GPU.
  [[nodiscard]] virtual Status ForwardGreedy(const ForwardBatch& batch, int top_logprobs,
                                             std::vector<SampleResult>* out);

  // ---- asynchronous steps
  // Queues one step whose logit rows are all sampled: rows[r] says how row r
  // (batch.logit_rows order) is sampled. A token with batch.prev_sample_row[i] = r >= 0
  // is the one row r of the previously launched step samples (resolved by the runner, on
  // the device where there is one). At most two steps are launched and not collected.
  // Errors: kInvalidArgument for a bad batch, rows.size() != logit_rows.size() or a
  // prev_sample_row outside the previous step's rows; kFailedPrecondition with two steps
  // already in flight; backend failures. A failed Launch queues nothing (the previous
  // launched step stays the one prev_sample_row refers to).
  // The default runs the step now: Forward, then SampleRow on the host.
  [[nodiscard]] virtual Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows);
  // Waits for the oldest launched, uncollected step and moves its results into *out, one
  // per row, as SampleRow returns them (top may hold more entries than the row asked for;
  // logprob and top are filled when the row asked for either). kFailedPrecondition when
  // nothing is in flight; a device fault of that step (kInternal).
  [[nodiscard]] virtual Status Collect(std::vector<SampleResult>* out);
  // Whether Launch returns before the step has run (a GPU runner). Only then does the
  // engine keep a step queued behind the running one (EngineOptions::async_scheduling):
  // with a Launch that runs the step at once, as the default does, a queued step would
  // only hold every output back by one step. Runners that wrap another forward it.
  [[nodiscard]] virtual bool LaunchIsAsync() const { return false; }

 private:
  // The default Launch / Collect: finished steps, oldest first, and the ids of the last
  // launched step (what the next prev_sample_row refers to).
  std::deque<std::vector<SampleResult>> host_done_;
  std::vector<int32_t> host_last_ids_;
  std::vector<RowSampling> host_rows_;
  std::vector<std::vector<int32_t>> host_histories_;
  ForwardBatch host_resolved_;
  std::vector<float> host_logits_, host_scratch_;
};

// A runner over a loaded Model on `ctx`. REQUIRES: model and ctx.pool outlive it.
// On CUDA the runner queues its work on a stream of its own and runs decode steps as
// CUDA graphs (Model::SetDecodeGraphs) unless the environment sets TIDE_CUDA_GRAPHS=0.
// Its Launch processes and samples every row on the device (ops/logits_process,
// ops/sample) and Collect copies back only ids and log-probabilities; on the CPU it uses
// the default Launch / Collect.
std::unique_ptr<ModelRunner> MakeModelRunner(Model& model, const ExecContext& ctx);

}  // namespace tide
