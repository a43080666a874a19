// Metrics: what the server exports on GET /metrics, in the Prometheus text format 0.0.4.
// Names follow vLLM's `vllm:` metrics with the prefix `tide_` (docs/api.md lists them);
// every series carries model_name. Engine gauges (running, waiting, KV blocks, prefix
// cache, preemptions, token counters) are read from EngineStats at scrape time; the
// rest are recorded by the server as requests finish.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine_core.h"
#include "engine/request.h"

namespace tide::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Appends the _bucket/_sum/_count lines of `name` with `labels` ("k=\"v\"").
  void Render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative)
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Server-side gauges sampled at scrape time.
struct ServerGauges {
  int64_t http_connections = 0;
  int64_t requests_queued = 0;   // admitted, no output yet (the admission queue)
  bool ready = false;
  bool draining = false;
};

class Metrics {
 public:
  explicit Metrics(std::string model_name);

  // One HTTP response (any endpoint, any status).
  void CountHttp(const std::string& endpoint, int status);
  // A request refused before it reached the engine: reason is one of max_waiting,
  // queue_time, engine_full, draining, not_ready, rate_limit, concurrency, auth.
  void CountRejection(const std::string& reason);
  // One finished completion (a final RequestOutput), with the token times of all its
  // deltas (EngineClock seconds) for inter-token latency.
  void ObserveCompletion(const RequestOutput& final_output, const std::vector<double>& token_times);
  // Completions aborted because their client went away (no final output is read then).
  void CountAborted(int64_t n);

  [[nodiscard]] std::string Render(const EngineStats& engine, const ServerGauges& server) const;

 private:
  const std::string model_;
  const std::string label_;  // model_name="..."
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> http_;  // GUARDED_BY(mu_)
  std::map<std::string, uint64_t> rejected_;              // GUARDED_BY(mu_)
  std::map<std::string, uint64_t> finished_;              // GUARDED_BY(mu_) by finish reason
  Histogram ttft_, tpot_, itl_, e2e_, queue_, prefill_, decode_, prompt_len_, gen_len_;  // GUARDED_BY(mu_)
};

}  // namespace tide::server
