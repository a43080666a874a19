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
#include "ops/logits_process/logits_process.h"
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

// A penalised row reads its whole history; the engine launches one with at most its
// last output pending, and that output is the row's own input token. The previous
// step's row that samples it, or -1 when the history is all known.
Result<int32_t> PendingHistoryRow(const ForwardBatch& batch, const RowSampling& row, size_t r) {
  if (!row.process || !NeedsTokenHistory(*row.request)) return -1;
  if (row.output.empty() || row.output.back() != kPendingToken) return -1;
  const auto at = static_cast<size_t>(batch.logit_rows[r]);
  const int32_t prev = batch.has_prev_samples() ? batch.prev_sample_row[at] : -1;
  if (prev < 0) return InvalidArgument("Launch: a penalised row's last output is pending but is not its input token");
  return prev;
}

// Capacity to allocate when `have` bytes are too few for `need`: replacing a buffer frees
// the old one, and cudaFree waits for the whole device, so a batch that grows a row at a
// time (a server ramping up) must not reallocate, and stall the pipeline, every step.
int64_t GrowCapacity(int64_t have, int64_t need) { return std::max({need, 2 * have, int64_t{4096}}); }

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
      ASSIGN_OR_RETURN(greedy_dev_, DeviceBuffer::Allocate(ctx_.device, GrowCapacity(greedy_dev_.size(), layout.bytes())));
    }
    SampleGreedy(ctx_, layout.Params(logits, model_.config().vocab_size, greedy_dev_.data()));
    greedy_host_.resize(static_cast<size_t>(layout.bytes()));
    RETURN_IF_ERROR(CopyToHost(ctx_, greedy_host_.data(), greedy_dev_.data(), layout.bytes()));
    Unpack(layout.Params(nullptr, model_.config().vocab_size, greedy_host_.data()), out);
    return OkStatus();
  }

  // On CUDA: the step and its sampling are queued on the runner's stream, with the input
  // tokens of pending samples gathered on the device (Model::ForwardKeepLogits), every
  // row processed (ops/logits_process) and sampled (ops/sample) there, and only the ids
  // and log-probabilities copied back, into pinned memory behind an event; Collect waits
  // for that event only. Two result slots alternate: the step launched next reads the
  // ids of this one while writing its own.
  Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) override {
    if (ctx_.device == DeviceKind::kCpu) return ModelRunner::Launch(batch, rows);
    RETURN_IF_ERROR(CheckLaunch(batch, rows, flights_.size(), prev_rows_));
    if (!cache_) return FailedPrecondition("KV cache not allocated");
    int top = 0;
    bool greedy = true, process = false;
    for (const RowSampling& row : rows) {
      top = std::max(top, row.sampler->top_logprobs);
      greedy &= row.sampler->temperature == 0.f;
      process |= row.process;
    }
    RETURN_IF_ERROR(CheckTop(top));
    const int64_t vocab = model_.config().vocab_size;
    if (process && vocab > kLogitsProcessCudaMaxVocab)
      return Unimplemented("logits processing on the GPU is limited to a vocabulary of " +
                           std::to_string(kLogitsProcessCudaMaxVocab));
    const GreedyLayout layout{static_cast<int64_t>(rows.size()), top};
    Slot& slot = slots_[next_slot_];
    const int64_t bytes = std::max<int64_t>(layout.bytes(), 8);
    if (slot.dev.size() < bytes) {
      ASSIGN_OR_RETURN(slot.dev, DeviceBuffer::Allocate(ctx_.device, GrowCapacity(slot.dev.size(), bytes)));
    }
    if (slot.host.size() < bytes) {
      ASSIGN_OR_RETURN(slot.host, HostBuffer::Allocate(ctx_.device, GrowCapacity(slot.host.size(), bytes)));
    }
    if (!slot.ready) {
      ASSIGN_OR_RETURN(slot.done, DeviceEvent::Create(ctx_.device));
      slot.ready = true;
    }
    // The rows' settings (and lists) go up before the forward is queued: one copy each.
    if (!greedy || process) RETURN_IF_ERROR(UploadSampling(batch, rows, process));
    const float* logits = nullptr;
    RETURN_IF_ERROR(model_.ForwardKeepLogits(ctx_, batch, *cache_, &logits, prev_ids_));
    if (layout.rows > 0) {
      const float* chosen = logits;
      if (process) {
        // The token is drawn from the processed copy; logprobs stay of the raw rows.
        ASSIGN_OR_RETURN(float* proc, processed_.Grow(ctx_.device, layout.rows * vocab));
        RETURN_IF_ERROR(CopyOnDevice(ctx_, proc, logits, layout.rows * vocab * 4));
        LogitsProcess(ctx_, lists_.Params(proc, layout.rows, vocab));
        chosen = proc;
      }
      if (greedy && !process) {
        SampleGreedy(ctx_, layout.Params(logits, vocab, slot.dev.data()));
      } else {
        const SampleGreedyParams out = layout.Params(chosen, vocab, slot.dev.data());
        SampleParams sp;
        sp.logits = chosen;
        sp.raw_logits = logits;
        sp.spec = specs_dev_.as<SampleRowSpec>();
        sp.rows = layout.rows;
        sp.vocab = vocab;
        sp.top_k_logprobs = top;
        sp.token = out.token;
        sp.logprob = out.logprob;
        sp.top_ids = out.top_ids;
        sp.top_logprobs = out.top_logprobs;
        Sample(ctx_, sp);
      }
    }
    RETURN_IF_ERROR(CopyToHostAsync(ctx_, slot.host.data(), slot.dev.data(), layout.bytes()));
    RETURN_IF_ERROR(slot.done.Record(ctx_));
    InFlight f;
    f.slot = next_slot_;
    f.layout = layout;
    prev_ids_ = slot.dev.as<int32_t>();
    prev_rows_ = layout.rows;
    next_slot_ ^= 1;
    flights_.push_back(f);
    return OkStatus();
  }

  bool LaunchIsAsync() const override { return ctx_.device == DeviceKind::kCuda; }

  Status Collect(std::vector<SampleResult>* out) override {
    if (ctx_.device == DeviceKind::kCpu) return ModelRunner::Collect(out);
    if (flights_.empty()) return FailedPrecondition("Collect: no step in flight");
    const InFlight f = flights_.front();
    flights_.pop_front();
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
  };

  // ops/logits_process's CSR lists for one step, packed into one device buffer.
  struct Lists {
    std::vector<int32_t> ints;   // offsets and ids, array after array
    std::vector<float> floats;   // bias values, then the three penalties per row
    size_t prompt_off = 0, prompt_ids = 0, output_off = 0, output_ids = 0, bias_off = 0, bias_ids = 0,
           masked_off = 0, masked_ids = 0;
    size_t bias_values = 0, repetition = 0, presence = 0, frequency = 0;
    const uint8_t* dev = nullptr;  // ints, then floats
    LogitsProcessParams Params(float* logits, int64_t rows, int64_t vocab) const {
      const auto* i = reinterpret_cast<const int32_t*>(dev);
      const auto* f = reinterpret_cast<const float*>(dev + ints.size() * 4);
      LogitsProcessParams p;
      p.logits = logits;
      p.rows = rows;
      p.vocab = vocab;
      p.prompt_offsets = i + prompt_off;
      p.prompt_ids = i + prompt_ids;
      p.output_offsets = i + output_off;
      p.output_ids = i + output_ids;
      p.bias_offsets = i + bias_off;
      p.bias_ids = i + bias_ids;
      p.bias_values = f + bias_values;
      p.masked_offsets = i + masked_off;
      p.masked_ids = i + masked_ids;
      p.repetition_penalty = f + repetition;
      p.presence_penalty = f + presence;
      p.frequency_penalty = f + frequency;
      return p;
    }
  };

  // Per row the SampleRowSpec and, with `process`, ProcessLogits' inputs as CSR lists
  // (bias; EOS and stop ids while min_tokens is not reached; the prompt for a repetition
  // penalty and the outputs for any penalty), each uploaded in one copy. A pending last
  // output is copied in on the device from the previous step's ids.
  Status UploadSampling(const ForwardBatch& batch, std::span<const RowSampling> rows, bool process) {
    specs_host_.clear();
    for (const RowSampling& row : rows) {
      const SamplingParams& p = *row.sampler;
      specs_host_.push_back({p.temperature, p.top_k, p.top_p, p.min_p, p.seed, row.position});
    }
    const int64_t spec_bytes = std::max<int64_t>(static_cast<int64_t>(specs_host_.size() * sizeof(SampleRowSpec)), 1);
    if (specs_dev_.size() < spec_bytes) {
      ASSIGN_OR_RETURN(specs_dev_, DeviceBuffer::Allocate(ctx_.device, GrowCapacity(specs_dev_.size(), spec_bytes)));
    }
    RETURN_IF_ERROR(CopyToDevice(ctx_, specs_dev_.data(), specs_host_.data(), spec_bytes));
    if (!process) return OkStatus();
    Lists& l = lists_;
    l.ints.clear();
    l.floats.clear();
    // One CSR list per kind: offsets [rows + 1] then ids, appended to l.ints.
    auto csr = [&](size_t* off, size_t* ids, auto&& fill) {
      *off = l.ints.size();
      l.ints.resize(l.ints.size() + rows.size() + 1);
      std::vector<int32_t> all;
      for (size_t r = 0; r < rows.size(); ++r) {
        l.ints[*off + r] = static_cast<int32_t>(all.size());
        if (rows[r].process) fill(rows[r], &all);
      }
      l.ints[*off + rows.size()] = static_cast<int32_t>(all.size());
      *ids = l.ints.size();
      l.ints.insert(l.ints.end(), all.begin(), all.end());
    };
    csr(&l.prompt_off, &l.prompt_ids, [](const RowSampling& row, std::vector<int32_t>* v) {
      if (row.request->repetition_penalty != 1.f) v->insert(v->end(), row.prompt.begin(), row.prompt.end());
    });
    std::vector<std::pair<size_t, int32_t>> pending;  // (index in the output ids, previous step's row)
    Status bad;
    csr(&l.output_off, &l.output_ids, [&](const RowSampling& row, std::vector<int32_t>* v) {
      if (!NeedsTokenHistory(*row.request)) return;
      v->insert(v->end(), row.output.begin(), row.output.end());
      const size_t r = static_cast<size_t>(&row - rows.data());
      Result<int32_t> prev = PendingHistoryRow(batch, row, r);
      if (!prev.ok()) {
        bad = prev.status();
      } else if (*prev >= 0) {
        pending.push_back({v->size() - 1, *prev});
      }
    });
    RETURN_IF_ERROR(bad);
    std::vector<float> bias_values;
    csr(&l.bias_off, &l.bias_ids, [&](const RowSampling& row, std::vector<int32_t>* v) {
      for (const auto& [id, b] : row.request->logit_bias) {
        v->push_back(id);
        bias_values.push_back(b);
      }
    });
    csr(&l.masked_off, &l.masked_ids, [](const RowSampling& row, std::vector<int32_t>* v) {
      const SamplingParams& p = *row.request;
      if (static_cast<int64_t>(row.output.size()) >= p.min_tokens) return;
      if (!p.ignore_eos) v->insert(v->end(), row.eos_ids.begin(), row.eos_ids.end());
      v->insert(v->end(), p.stop_token_ids.begin(), p.stop_token_ids.end());
    });
    l.bias_values = 0;
    l.floats = std::move(bias_values);
    auto per_row = [&](size_t* at, float off_value, auto&& get) {
      *at = l.floats.size();
      for (const RowSampling& row : rows) l.floats.push_back(row.process ? get(*row.request) : off_value);
    };
    per_row(&l.repetition, 1.f, [](const SamplingParams& p) { return p.repetition_penalty; });
    per_row(&l.presence, 0.f, [](const SamplingParams& p) { return p.presence_penalty; });
    per_row(&l.frequency, 0.f, [](const SamplingParams& p) { return p.frequency_penalty; });
    const int64_t bytes = static_cast<int64_t>(l.ints.size() * 4 + l.floats.size() * 4);
    lists_host_.resize(static_cast<size_t>(bytes));
    std::memcpy(lists_host_.data(), l.ints.data(), l.ints.size() * 4);
    std::memcpy(lists_host_.data() + l.ints.size() * 4, l.floats.data(), l.floats.size() * 4);
    if (lists_dev_.size() < bytes) {
      ASSIGN_OR_RETURN(lists_dev_, DeviceBuffer::Allocate(ctx_.device, GrowCapacity(lists_dev_.size(), bytes)));
    }
    RETURN_IF_ERROR(CopyToDevice(ctx_, lists_dev_.data(), lists_host_.data(), bytes));
    for (const auto& [i, prev] : pending)
      RETURN_IF_ERROR(CopyOnDevice(ctx_, lists_dev_.as<int32_t>() + l.output_ids + i, prev_ids_ + prev, 4));
    l.dev = lists_dev_.as<uint8_t>();
    return OkStatus();
  }

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
  std::vector<SampleRowSpec> specs_host_;
  DeviceBuffer specs_dev_, lists_dev_;
  Lists lists_;
  std::vector<uint8_t> lists_host_;
  // The processed copy of the logit rows (grown on demand, reused every step).
  struct Grown {
    DeviceBuffer buf;
    Result<float*> Grow(DeviceKind device, int64_t n) {
      if (buf.size() < n * 4) {
        const int64_t cap = GrowCapacity(buf.size(), n * 4);
        buf = DeviceBuffer();
        ASSIGN_OR_RETURN(buf, DeviceBuffer::Allocate(device, cap));
      }
      return buf.as<float>();
    }
  } processed_;
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
  // A penalised row's pending last output: the previous step's sample, as its input.
  host_rows_.assign(rows.begin(), rows.end());
  host_histories_.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    ASSIGN_OR_RETURN(const int32_t prev, PendingHistoryRow(batch, rows[r], r));
    if (prev < 0) continue;
    host_histories_[r].assign(rows[r].output.begin(), rows[r].output.end());
    host_histories_[r].back() = host_last_ids_[static_cast<size_t>(prev)];
    host_rows_[r].output = host_histories_[r];
  }
  RETURN_IF_ERROR(Forward(*b, &host_logits_));
  const int64_t vocab = config().vocab_size;
  std::vector<SampleResult> out;
  out.reserve(rows.size());
  host_last_ids_.clear();
  for (size_t r = 0; r < rows.size(); ++r) {
    out.push_back(SampleRow(host_logits_.data() + static_cast<int64_t>(r) * vocab, vocab, host_rows_[r], &host_scratch_));
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
