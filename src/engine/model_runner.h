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
};

// A runner over a loaded Model on `ctx`. REQUIRES: model and ctx.pool outlive it.
std::unique_ptr<ModelRunner> MakeModelRunner(Model& model, const ExecContext& ctx);

}  // namespace tide
