// Model: a loaded decoder-only transformer (any architecture of ModelConfig) and its
// forward pass over the paged KV cache. Weights stay in the memory-mapped files where
// their layout allows; small vectors (norms, biases) are widened to f32 at load.
//
// Thread-safety: Forward mutates the model's scratch buffers; one caller at a time
// (the engine thread).
#pragma once

#include <cstdint>
#include <functional>
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

  // Moves the weights to ctx.device (only kCpu -> kCuda, once): every matrix is copied
  // from the mapped file to device memory through pinned staging, in its file dtype
  // (bf16/f16/f32; q8_0/q4_0 are widened to f32, which is exact); norms, biases and
  // RoPE frequencies follow. `progress(bytes_done, bytes_total)` is called after each
  // tensor. Afterwards Forward needs a context and a KV cache on that device.
  // kResourceExhausted when device memory runs out; kUnimplemented without a GPU.
  [[nodiscard]] Status PlaceOn(const ExecContext& ctx,
                               const std::function<void(int64_t, int64_t)>& progress = nullptr);
  [[nodiscard]] DeviceKind device() const noexcept;
  // Device memory held by the weights after PlaceOn (0 on the CPU).
  [[nodiscard]] int64_t device_weight_bytes() const noexcept;

  // Runs one step: writes this step's K/V into `cache` at batch.slots and fills
  // `logits` with [batch.logit_rows.size(), vocab_size] f32 rows (in logit_rows order).
  // kInvalidArgument if the batch is inconsistent with itself or the cache (checked
  // before any work: the cache is untouched then); kFailedPrecondition when the
  // context, the cache and the weights are not on one device; kInternal for a device
  // fault (CUDA), which then leaves the cache in an unknown state.
  Status Forward(const ExecContext& ctx, const ForwardBatch& batch, KvCache& cache, std::vector<float>* logits);
  // Forward without the copy to the host: *logits points to [batch.logit_rows.size(),
  // vocab_size] f32 rows on the model's device (host memory on the CPU), owned by the
  // model and valid until its next step. Nothing waits for the device: work queued next
  // on ctx.stream sees the rows. Same errors as Forward.
  // `prev_tokens` (memory on the model's device): the previous step's sampled ids; token
  // i with batch.prev_sample_row[i] = r >= 0 is read from prev_tokens[r], in stream
  // order, so a step can be queued before the host knows its input tokens.
  // kInvalidArgument when the batch has such tokens and prev_tokens is null.
  Status ForwardKeepLogits(const ExecContext& ctx, const ForwardBatch& batch, KvCache& cache, const float** logits,
                           const int32_t* prev_tokens = nullptr);

  // CUDA graphs for decode steps (off by default). When on, a batch of n decode rows
  // (one token per sequence, every row sampled, in order; dense models, ctx.stream a
  // DeviceStream's) runs as one replay of a graph captured for the smallest bucket
  // >= n (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, ..., 256) and the block-table width
  // rounded up to a power of two; padded rows write nothing. A graph is captured the
  // first time its shape is seen (that step runs eagerly) and again whenever scratch
  // memory or the KV cache moved. Logits equal the eager path's for the padded batch
  // bit for bit; the first n rows also equal the unpadded eager batch's wherever the
  // kernels are batch-invariant (GEMV up to 8 rows; see docs/architecture.md). Other
  // steps run eagerly. A failed capture logs a warning and turns graphs off. Turning
  // graphs off keeps those captured (for A/B runs); DropDecodeGraphs frees them.
  void SetDecodeGraphs(bool on);
  // Frees every captured graph (e.g. before the KV cache they write is freed).
  void DropDecodeGraphs();

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tide
