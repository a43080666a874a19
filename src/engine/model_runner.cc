#include "engine/model_runner.h"

#include <cstdlib>
#include <cstring>
#include <optional>

#include "backend/device_graph.h"
#include "backend/device_memory.h"
#include "base/log.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "ops/sample/sample.h"

namespace tide {
namespace {

// The op's packed outputs for `rows` rows: token[rows], logprob[rows],
// top_ids[rows * k], top_logprobs[rows * k], back to back (one copy to the host).
struct GreedyLayout {
  int64_t rows = 0;
  int k = 0;
  [[nodiscard]] int64_t bytes() const { return rows * 8 + rows * k * 8; }
  SampleGreedyParams Params(const float* logits, int64_t vocab, void* base) const {
    auto* b = static_cast<uint8_t*>(base);
    return SampleGreedyParams{logits,
                              rows,
                              vocab,
                              k,
                              reinterpret_cast<int32_t*>(b),
                              reinterpret_cast<float*>(b + rows * 4),
                              reinterpret_cast<int32_t*>(b + rows * 8),
                              reinterpret_cast<float*>(b + rows * 8 + rows * k * 4)};
  }
};

void Unpack(const SampleGreedyParams& p, std::vector<SampleResult>* out) {
  out->assign(static_cast<size_t>(p.rows), SampleResult());
  for (int64_t r = 0; r < p.rows; ++r) {
    SampleResult& s = (*out)[static_cast<size_t>(r)];
    s.token = p.token[r];
    s.logprob = p.logprob[r];
    for (int j = 0; j < p.top_k; ++j) {
      const int32_t id = p.top_ids[r * p.top_k + j];
      if (id >= 0) s.top.push_back({id, p.top_logprobs[r * p.top_k + j]});
    }
  }
}

Status CheckTop(int top_logprobs) {
  if (top_logprobs < 0 || top_logprobs > kSampleMaxTopK)
    return InvalidArgument("top_logprobs must be in [0, " + std::to_string(kSampleMaxTopK) + "], got " +
                           std::to_string(top_logprobs));
  return OkStatus();
}

class ModelForwardRunner final : public ModelRunner {
 public:
  ModelForwardRunner(Model& model, const ExecContext& ctx) : model_(model), ctx_(ctx) {
    if (ctx_.device != DeviceKind::kCuda) return;
    // Graph capture needs a stream of our own (not the legacy default stream).
    Result<DeviceStream> s = DeviceStream::Create(ctx_.device);
    if (!s.ok()) {
      TIDE_LOG_WARN("no CUDA stream for the model runner (%s); decode steps run without graphs",
                    s.status().ToString().c_str());
      return;
    }
    stream_ = std::move(*s);
    ctx_.stream = stream_.get();
    const char* env = std::getenv("TIDE_CUDA_GRAPHS");
    model_.SetDecodeGraphs(env == nullptr || std::strcmp(env, "0") != 0);
  }
  ~ModelForwardRunner() override {
    // The graphs write into this runner's cache; they must not outlive it.
    if (ctx_.device == DeviceKind::kCuda) {
      (void)Synchronize(ctx_);
      model_.DropDecodeGraphs();
    }
  }

  const ModelConfig& config() const override { return model_.config(); }
  int64_t kv_bytes_per_token() const override { return model_.config().KvBytesPerToken(4); }  // f32 cache

  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    const ModelConfig& c = model_.config();
    model_.DropDecodeGraphs();
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

  Status ForwardGreedy(const ForwardBatch& batch, int top_logprobs, std::vector<SampleResult>* out) override {
    if (ctx_.device == DeviceKind::kCpu) return ModelRunner::ForwardGreedy(batch, top_logprobs, out);
    RETURN_IF_ERROR(CheckTop(top_logprobs));
    if (!cache_) return FailedPrecondition("KV cache not allocated");
    const float* logits = nullptr;
    RETURN_IF_ERROR(model_.ForwardKeepLogits(ctx_, batch, *cache_, &logits));
    const GreedyLayout layout{static_cast<int64_t>(batch.logit_rows.size()), top_logprobs};
    out->clear();
    if (layout.rows == 0) return Synchronize(ctx_);
    if (greedy_dev_.size() < layout.bytes()) {
      ASSIGN_OR_RETURN(greedy_dev_, DeviceBuffer::Allocate(ctx_.device, layout.bytes()));
    }
    SampleGreedy(ctx_, layout.Params(logits, model_.config().vocab_size, greedy_dev_.data()));
    greedy_host_.resize(static_cast<size_t>(layout.bytes()));
    RETURN_IF_ERROR(CopyToHost(ctx_, greedy_host_.data(), greedy_dev_.data(), layout.bytes()));
    Unpack(layout.Params(nullptr, model_.config().vocab_size, greedy_host_.data()), out);
    return OkStatus();
  }

 private:
  Model& model_;
  ExecContext ctx_;
  DeviceStream stream_;
  std::optional<KvCache> cache_;
  DeviceBuffer greedy_dev_;
  std::vector<uint8_t> greedy_host_;
};

}  // namespace

Status ModelRunner::ForwardGreedy(const ForwardBatch& batch, int top_logprobs, std::vector<SampleResult>* out) {
  RETURN_IF_ERROR(CheckTop(top_logprobs));
  std::vector<float> logits;
  RETURN_IF_ERROR(Forward(batch, &logits));
  const GreedyLayout layout{static_cast<int64_t>(batch.logit_rows.size()), top_logprobs};
  std::vector<uint8_t> packed(static_cast<size_t>(layout.bytes()));
  const SampleGreedyParams p = layout.Params(logits.data(), config().vocab_size, packed.data());
  SampleGreedyCpu(p, nullptr);
  Unpack(p, out);
  return OkStatus();
}

std::unique_ptr<ModelRunner> MakeModelRunner(Model& model, const ExecContext& ctx) {
  return std::make_unique<ModelForwardRunner>(model, ctx);
}

}  // namespace tide
