#include "engine/model_runner.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "backend/device_graph.h"
#include "backend/device_memory.h"
#include "base/log.h"
#include "engine/logits_processor.h"
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

Status CheckLaunch(const ForwardBatch& batch, std::span<const RowSampling> rows, size_t in_flight,
                   int64_t prev_rows) {
  if (rows.size() != batch.logit_rows.size())
    return InvalidArgument("Launch: " + std::to_string(rows.size()) + " row samplings for " +
                           std::to_string(batch.logit_rows.size()) + " logit rows");
  if (in_flight >= 2) return FailedPrecondition("Launch: two steps are already in flight (Collect one first)");
  for (int32_t r : batch.prev_sample_row)
    if (r >= prev_rows)
      return InvalidArgument("prev_sample_row " + std::to_string(r) + " is not a row of the previous step (" +
                             std::to_string(prev_rows) + " rows)");
  for (const RowSampling& row : rows)
    if (row.sampler == nullptr || (row.process && row.request == nullptr))
      return InvalidArgument("Launch: a row without its sampling parameters");
  return OkStatus();
}

// Whether every row is plain greedy sampling of the raw logits: the device op's case.
bool AllGreedy(std::span<const RowSampling> rows, int* top_logprobs) {
  *top_logprobs = 0;
  for (const RowSampling& row : rows) {
    if (row.sampler->temperature != 0.f || row.process) return false;
    *top_logprobs = std::max(*top_logprobs, row.sampler->top_logprobs);
  }
  return true;
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

  // On CUDA: the step and its sampling are queued on the runner's stream, with the input
  // tokens of pending samples gathered on the device (Model::ForwardKeepLogits) and the
  // ids and log-probabilities copied back into pinned memory behind an event; Collect
  // waits for that event only. Two result slots alternate: the step launched next reads
  // the ids of this one while writing its own.
  Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) override {
    if (ctx_.device == DeviceKind::kCpu) return ModelRunner::Launch(batch, rows);
    RETURN_IF_ERROR(CheckLaunch(batch, rows, flights_.size(), prev_rows_));
    if (!cache_) return FailedPrecondition("KV cache not allocated");
    int top = 0;
    const bool greedy = AllGreedy(rows, &top);
    RETURN_IF_ERROR(CheckTop(top));
    const int64_t vocab = model_.config().vocab_size;
    const GreedyLayout layout{static_cast<int64_t>(rows.size()), greedy ? top : 0};
    Slot& slot = slots_[next_slot_];
    const int64_t bytes = std::max<int64_t>(layout.bytes(), 8);
    if (slot.dev.size() < bytes) {
      ASSIGN_OR_RETURN(slot.dev, DeviceBuffer::Allocate(ctx_.device, bytes));
    }
    if (slot.host.size() < bytes) {
      ASSIGN_OR_RETURN(slot.host, HostBuffer::Allocate(ctx_.device, bytes));
    }
    if (!slot.ready) {
      ASSIGN_OR_RETURN(slot.done, DeviceEvent::Create(ctx_.device));
      slot.ready = true;
    }
    const float* logits = nullptr;
    RETURN_IF_ERROR(model_.ForwardKeepLogits(ctx_, batch, *cache_, &logits, prev_ids_));
    InFlight f;
    f.slot = next_slot_;
    f.layout = layout;
    f.on_device = greedy;
    if (greedy) {
      if (layout.rows > 0) SampleGreedy(ctx_, layout.Params(logits, vocab, slot.dev.data()));
      RETURN_IF_ERROR(CopyToHostAsync(ctx_, slot.host.data(), slot.dev.data(), layout.bytes()));
      RETURN_IF_ERROR(slot.done.Record(ctx_));
    } else {
      // Rows other than plain greedy are sampled on the host for now: their logits come
      // over (this waits for the device), and the ids go back for the next step's gather.
      logits_host_.resize(static_cast<size_t>(layout.rows * vocab));
      RETURN_IF_ERROR(CopyToHost(ctx_, logits_host_.data(), logits, layout.rows * vocab * 4));
      ids_host_.resize(rows.size());
      for (size_t r = 0; r < rows.size(); ++r) {
        f.results.push_back(SampleRow(logits_host_.data() + static_cast<int64_t>(r) * vocab, vocab, rows[r], &scratch_));
        ids_host_[r] = f.results.back().token;
      }
      RETURN_IF_ERROR(CopyToDevice(ctx_, slot.dev.data(), ids_host_.data(), layout.rows * 4));
    }
    prev_ids_ = slot.dev.as<int32_t>();
    prev_rows_ = layout.rows;
    next_slot_ ^= 1;
    flights_.push_back(std::move(f));
    return OkStatus();
  }

  Status Collect(std::vector<SampleResult>* out) override {
    if (ctx_.device == DeviceKind::kCpu) return ModelRunner::Collect(out);
    if (flights_.empty()) return FailedPrecondition("Collect: no step in flight");
    InFlight f = std::move(flights_.front());
    flights_.pop_front();
    if (!f.on_device) {
      *out = std::move(f.results);
      return OkStatus();
    }
    const Slot& slot = slots_[f.slot];
    RETURN_IF_ERROR(slot.done.Wait());
    Unpack(f.layout.Params(nullptr, model_.config().vocab_size, slot.host.data()), out);
    return OkStatus();
  }

 private:
  struct Slot {
    DeviceBuffer dev;   // packed GreedyLayout outputs; token[rows] first (the next step's gather reads it)
    HostBuffer host;    // pinned: their copy on the host
    DeviceEvent done;   // recorded after the copy
    bool ready = false;
  };
  struct InFlight {
    int slot = 0;
    GreedyLayout layout;
    bool on_device = false;
    std::vector<SampleResult> results;  // !on_device: sampled at launch
  };

  Model& model_;
  ExecContext ctx_;
  DeviceStream stream_;
  std::optional<KvCache> cache_;
  DeviceBuffer greedy_dev_;
  std::vector<uint8_t> greedy_host_;
  Slot slots_[2];
  int next_slot_ = 0;
  std::deque<InFlight> flights_;
  const int32_t* prev_ids_ = nullptr;  // device: the last launched step's sampled ids
  int64_t prev_rows_ = 0;
  std::vector<float> logits_host_, scratch_;
  std::vector<int32_t> ids_host_;
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

SampleResult SampleRow(const float* raw, int64_t vocab, const RowSampling& row, std::vector<float>* scratch) {
  const float* logits = raw;
  if (row.process) {
    scratch->assign(raw, raw + vocab);
    ProcessLogits(*row.request, row.prompt, row.output, row.eos_ids, scratch->data(), vocab);
    logits = scratch->data();
  }
  return Sample(logits, raw, vocab, *row.sampler, row.position);
}

Status ModelRunner::Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) {
  RETURN_IF_ERROR(CheckLaunch(batch, rows, host_done_.size(), static_cast<int64_t>(host_last_ids_.size())));
  const ForwardBatch* b = &batch;
  if (batch.has_prev_samples()) {
    host_resolved_ = batch;
    for (size_t i = 0; i < batch.prev_sample_row.size(); ++i)
      if (const int32_t r = batch.prev_sample_row[i]; r >= 0) host_resolved_.tokens[i] = host_last_ids_[static_cast<size_t>(r)];
    host_resolved_.prev_sample_row.clear();
    b = &host_resolved_;
  }
  RETURN_IF_ERROR(Forward(*b, &host_logits_));
  const int64_t vocab = config().vocab_size;
  std::vector<SampleResult> out;
  out.reserve(rows.size());
  host_last_ids_.clear();
  for (size_t r = 0; r < rows.size(); ++r) {
    out.push_back(SampleRow(host_logits_.data() + static_cast<int64_t>(r) * vocab, vocab, rows[r], &host_scratch_));
    host_last_ids_.push_back(out.back().token);
  }
  host_done_.push_back(std::move(out));
  return OkStatus();
}

Status ModelRunner::Collect(std::vector<SampleResult>* out) {
  if (host_done_.empty()) return FailedPrecondition("Collect: no step in flight");
  *out = std::move(host_done_.front());
  host_done_.pop_front();
  return OkStatus();
}

std::unique_ptr<ModelRunner> MakeModelRunner(Model& model, const ExecContext& ctx) {
  return std::make_unique<ModelForwardRunner>(model, ctx);
}

}  // namespace tide
