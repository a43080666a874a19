// The load generator of `tide bench serve`: sends a workload to an OpenAI-compatible
// server over HTTP/1.1 with streaming (SSE), on one thread (asynchronous sockets), at a
// chosen arrival process, and records a Sample per request.
//
// Robustness: a request that fails (connect refused, HTTP error, connection dropped
// mid-stream, malformed event, timeout) becomes a failed Sample; the run goes on. Every
// request is bounded in time (request_timeout_s) and bytes (64 MiB of response), so the
// run is bounded by (number of requests) x (timeout).
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "base/status.h"
#include "bench/serve_stats.h"
#include "bench/serve_workload.h"

namespace tide::bench {

// Where requests go: plain http only (no TLS).
struct Target {
  std::string host = "127.0.0.1";
  std::string port = "8000";
  std::string path = "/v1/completions";
  [[nodiscard]] bool chat() const;  // path ends with chat/completions
};

// "http://host:port[/path]"; a URL without a path keeps `default_path`. Errors:
// kInvalidArgument (https, no host, bad port).
Result<Target> ParseTarget(const std::string& url, const std::string& default_path);

struct LoadOptions {
  // Arrivals: Poisson at request_rate (burstiness 1) or gamma-distributed gaps with shape
  // `burstiness` and the same mean; infinity sends everything at time 0.
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  int max_concurrency = 0;  // 0 = unlimited
  uint64_t seed = 0;
  // Request body.
  std::string model_name = "default";
  bool ignore_eos = false;
  double temperature = 0.0;
  // Bounds.
  double request_timeout_s = 600;
  // Progress bar on stderr (redrawn every 100 ms).
  bool progress = false;
  // When set to true (a SIGINT handler), stops sending, cuts the streams in flight and
  // returns what finished; cut requests are marked interrupted. May be null.
  const std::atomic<bool>* interrupt = nullptr;
};

struct LoadResult {
  std::vector<Sample> samples;  // one per workload item, in workload order
  double duration_s = 0;        // first send to last response
  int max_in_flight = 0;
  bool interrupted = false;
  bool server_usage = false;  // every completed request carried usage counts
};

// Runs the workload against `target`. Prompt token counts come from the server's usage
// when it reports one, else from `counter` (as do output counts; without usage and
// without a tokenizer, output tokens = content events). Errors: only for a target that
// cannot be resolved (kUnavailable) or bad options (kInvalidArgument); server failures
// are in the samples.
Result<LoadResult> RunLoad(const Target& target, const std::vector<WorkloadItem>& workload, const LoadOptions& opts,
                           const TokenCounter& counter);

// Arrival offsets (seconds from the start) for n requests. Deterministic in seed.
std::vector<double> ArrivalTimes(int64_t n, double rate, double burstiness, uint64_t seed);

// Incremental parser of a text/event-stream body: feed bytes as they come, get the data
// payloads of complete events. Bounded: a single event over 16 MiB is an error.
class SseParser {
 public:
  // Appends `bytes`; every complete event's data (its "data:" lines joined by '\n') goes
  // to `out`. Errors: kResourceExhausted for an oversized event.
  Status Feed(std::string_view bytes, std::vector<std::string>* out);

 private:
  std::string buf_;
  size_t scanned_ = 0;
};

}  // namespace tide::bench
