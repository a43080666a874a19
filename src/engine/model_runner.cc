#include "engine/model_runner.h"

#include <optional>

#include "kv/kv_cache.h"
#include "model/model.h"

namespace tide {
namespace {

class ModelForwardRunner final : public ModelRunner {
 public:
  ModelForwardRunner(Model& model, const ExecContext& ctx) : model_(model), ctx_(ctx) {}

  const ModelConfig& config() const override { return model_.config(); }
  int64_t kv_bytes_per_token() const override { return model_.config().KvBytesPerToken(4); }  // f32 cache

  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    const ModelConfig& c = model_.config();
    // On the model's device: a CUDA step reads the cache from device memory.
    ASSIGN_OR_RETURN(KvCache cache,
                     KvCache::Create({c.num_layers, num_blocks, block_size, c.num_kv_heads, c.head_dim}, ctx_.device));
    cache_.emplace(std::move(cache));
    return OkStatus();
  }

  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override {
    if (!cache_) return FailedPrecondition("KV cache not allocated");
    return model_.Forward(ctx_, batch, *cache_, logits);
  }

 private:
  Model& model_;
  ExecContext ctx_;
  std::optional<KvCache> cache_;
};

}  // namespace

std::unique_ptr<ModelRunner> MakeModelRunner(Model& model, const ExecContext& ctx) {
  return std::make_unique<ModelForwardRunner>(model, ctx);
}

}  // namespace tide
