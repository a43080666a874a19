#include "bench/decode_overhead.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "engine/engine_core.h"

namespace tide::bench {
namespace {

// Passes every call through and notes, per engine step, which steps were launched and
// which collected (with the host window from launch to samples on the host).
class WindowRunner final : public ModelRunner {
 public:
  WindowRunner(ModelRunner& inner, const cuda::KernelTracer& clock) : inner_(inner), clock_(clock) {}
  const ModelConfig& config() const override { return inner_.config(); }
  int64_t kv_bytes_per_token() const override { return inner_.kv_bytes_per_token(); }
  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    return inner_.AllocateKvCache(num_blocks, block_size);
  }
  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override {
    const uint64_t t0 = clock_.NowNs();
    Status s = inner_.Forward(batch, logits);
    Note(batch, t0);
    return s;
  }
  Status ForwardGreedy(const ForwardBatch& batch, int top_logprobs, std::vector<SampleResult>* out) override {
    const uint64_t t0 = clock_.NowNs();
    Status s = inner_.ForwardGreedy(batch, top_logprobs, out);
    Note(batch, t0);
    return s;
  }
  Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) override {
    const uint64_t t0 = clock_.NowNs();
    Status s = inner_.Launch(batch, rows);
    if (s.ok()) {
      in_flight_.push_back({IsDecode(batch), {t0, 0}});
      launched.push_back(in_flight_.back());
    }
    return s;
  }
  bool LaunchIsAsync() const override { return inner_.LaunchIsAsync(); }
  Status Collect(std::vector<SampleResult>* out) override {
    Status s = inner_.Collect(out);
    if (!in_flight_.empty()) {
      Call c = in_flight_.front();
      in_flight_.pop_front();
      c.window.end_ns = clock_.NowNs();
      collected.push_back(c);
    }
    return s;
  }

  struct Call {
    bool decode = false;
    TimeWindow window;
  };
  // This engine step's; the caller clears them.
  std::vector<Call> launched, collected;

 private:
  static bool IsDecode(const ForwardBatch& b) { return b.num_tokens() == b.num_seqs(); }
  void Note(const ForwardBatch& batch, uint64_t t0) {
    const Call c{IsDecode(batch), {t0, clock_.NowNs()}};
    launched.push_back(c);
    collected.push_back(c);
  }

  ModelRunner& inner_;
  const cuda::KernelTracer& clock_;
  std::deque<Call> in_flight_;
};

}  // namespace

Result<DecodeOverhead> TraceDecodeOverhead(ModelRunner& runner, const EngineOptions& options,
                                           std::vector<Request> requests, cuda::KernelTracer& tracer,
                                           const DecodeOverheadOptions& o) {
  WindowRunner wr(runner, tracer);
  ASSIGN_OR_RETURN(std::unique_ptr<EngineCore> core, EngineCore::Create(wr, nullptr, options));
  std::vector<std::string> ids;
  for (Request& r : requests) {
    ids.push_back(r.id);
    RETURN_IF_ERROR(core->AddRequest(std::move(r), EngineClock()));
  }
  struct Traced {
    TimeWindow engine, model;
  };
  std::vector<Traced> traced;
  std::vector<RequestOutput> outs;
  int decode_steps = 0;
  while (core->HasUnfinished() && static_cast<int>(traced.size()) < o.traced_steps) {
    wr.launched.clear();
    wr.collected.clear();
    outs.clear();
    const uint64_t t0 = tracer.NowNs();
    core->Step(&outs);
    const uint64_t t1 = tracer.NowNs();
    for (const RequestOutput& out : outs) RETURN_IF_ERROR(out.status);
    // A decode step launched and a decode step collected (the same one when synchronous).
    const bool decode = wr.launched.size() == 1 && wr.launched[0].decode && wr.collected.size() == 1 &&
                        wr.collected[0].decode;
    if (!decode || ++decode_steps <= o.warmup_steps) continue;
    traced.push_back({{t0, t1}, options.async_scheduling ? TimeWindow{} : wr.collected[0].window});
  }
  // Ends the requests and waits for the step still in flight.
  for (const std::string& id : ids) core->Abort(id, &outs);
  if (static_cast<int>(traced.size()) < o.traced_steps)
    return Internal("only " + std::to_string(traced.size()) + " decode steps ran after " +
                    std::to_string(o.warmup_steps) + " warm-up ones; the requests need more tokens");
  ASSIGN_OR_RETURN(std::vector<GpuActivity> acts, tracer.Collect());
  DecodeOverhead d;
  for (const Traced& t : traced) {
    if (!options.async_scheduling) d.model_step += MeasureStepOverhead(acts, t.model);
    d.engine_step += MeasureStepOverhead(acts, t.engine);
  }
  return d;
}

std::string FormatStepOverhead(const StepOverhead& s) {
  const double n = static_cast<double>(std::max<int64_t>(s.num_steps, 1));
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "wall %.3f ms, GPU busy %.3f ms (%.1f%%), gaps inside %.3f ms, host %.3f + %.3f ms -> overhead %.1f%% "
                "(target <= %.0f%%)",
                1e3 * s.wall_s / n, 1e3 * s.busy_s / n, 100 * s.busy_fraction(), 1e3 * s.gaps_s / n,
                1e3 * s.host_before_s / n, 1e3 * s.host_after_s / n, 100 * s.overhead_fraction(),
                100 * kDecodeOverheadTarget);
  return buf;
}

}  // namespace tide::bench
