// ModelRunner: the seam between the engine and whatever computes logits. The engine
// hands it one ForwardBatch per step; it owns the KV cache storage. The real runner
// wraps Model::Forward (MakeModelRunner); tests use engine/fake_model_runner.h.
//
// Thread-safety: called only from the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backend/exec.h"
#include "base/status.h"
#include "engine/sampler.h"
#include "model/config.h"
#include "model/forward_batch.h"

namespace tide {

class Model;

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
};

// A runner over a loaded Model on `ctx`. REQUIRES: model and ctx.pool outlive it.
// On CUDA the runner queues its work on a stream of its own and runs decode steps as
// CUDA graphs (Model::SetDecodeGraphs) unless the environment sets TIDE_CUDA_GRAPHS=0.
std::unique_ptr<ModelRunner> MakeModelRunner(Model& model, const ExecContext& ctx);

}  // namespace tide
