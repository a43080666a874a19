// Model: a loaded decoder-only transformer (any architecture of ModelConfig) and its
// forward pass over the paged KV cache. Weights stay in the memory-mapped files where
// their layout allows; small vectors (norms, biases) are widened to f32 at load.
//
// Thread-safety: Forward mutates the model's scratch buffers; one caller at a time
// (the engine thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/exec.h"
#include "base/status.h"
#include "formats/weight_store.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/forward_batch.h"

namespace tide {

class Model {
 public:
  // `path` is a Hugging Face folder (config.json + safetensors) or a .gguf file.
  // Errors name the file and tensor: a missing tensor, a wrong shape, an unsupported
  // dtype or architecture.
  static Result<std::unique_ptr<Model>> Load(const std::string& path);
  static Result<std::unique_ptr<Model>> FromStore(ModelConfig config, std::unique_ptr<WeightStore> store);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  [[nodiscard]] const ModelConfig& config() const noexcept;
  [[nodiscard]] const WeightStore& weights() const noexcept;

  // Runs one step: writes this step's K/V into `cache` at batch.slots and fills
  // `logits` with [batch.logit_rows.size(), vocab_size] f32 rows (in logit_rows order).
  // kInvalidArgument if the batch is inconsistent with itself or the cache (checked
  // before any work: the cache is untouched then).
  Status Forward(const ExecContext& ctx, const ForwardBatch& batch, KvCache& cache, std::vector<float>* logits);

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tide
