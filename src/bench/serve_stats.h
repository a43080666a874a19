// What one `tide bench serve` run measured: a Sample per request, the summary of a load
// point (one request rate), the stdout tables and the --json document.
//
// Definitions (the same as vLLM's benchmark, so figures compare across tools):
//   TTFT = first content byte of the stream - request sent;
//   ITL  = gaps between successive content events of one stream;
//   TPOT = (E2E - TTFT) / (output_tokens - 1), for requests with > 1 output token;
//   E2E  = last byte - request sent;
//   goodput = completed requests meeting every SLO given, per second of the run.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace tide::bench {

// One request, finished, failed or interrupted. Times in seconds.
struct Sample {
  int64_t index = 0;  // in the workload
  bool ok = false;
  bool interrupted = false;  // cut short by Ctrl-C: neither completed nor failed
  std::string error;         // when !ok: "HTTP 500: ...", "connection reset", ...
  int http_status = 0;
  double start_s = 0;  // sent, from the start of the load point
  double ttft_s = 0;
  double e2e_s = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  std::vector<double> itl_s;
};

// Service-level objectives for goodput; 0 = not set.
struct Slo {
  double ttft_ms = 0;
  double tpot_ms = 0;
  double itl_ms = 0;  // every gap of the request
  double e2e_ms = 0;
  [[nodiscard]] bool any() const { return ttft_ms > 0 || tpot_ms > 0 || itl_ms > 0 || e2e_ms > 0; }
};

// "ttft=500,tpot=50" or vLLM's --goodput form "ttft:500 tpot:50"; keys ttft, tpot, itl,
// e2e (alias e2el). Errors: kInvalidArgument naming the bad part.
Result<Slo> ParseSlo(const std::string& text);

struct Distribution {
  int64_t count = 0;
  double mean = 0, stddev = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};
// Linear-interpolated percentiles (numpy's default) of `v`, in the units given.
Distribution Describe(std::vector<double> v);

// What produced the token counts in the report.
// kStreamEvents: output tokens = content events of the stream (no usage, no tokenizer).
enum class TokenCountSource { kServerUsage, kTokenizer, kEstimate, kStreamEvents };
const char* TokenCountSourceName(TokenCountSource s);

struct PointSummary {
  double request_rate = 0;  // requests/s asked for; infinity = all at once
  double burstiness = 1;
  int max_concurrency = 0;  // 0 = unlimited
  int64_t completed = 0, failed = 0, interrupted = 0;
  double duration_s = 0;
  int64_t total_input_tokens = 0, total_output_tokens = 0;
  double request_throughput = 0, input_throughput = 0, output_throughput = 0, total_throughput = 0;
  double goodput = 0;  // requests/s meeting the SLO (0 without one)
  Distribution ttft_ms, tpot_ms, itl_ms, e2e_ms;
  int max_in_flight = 0;
  TokenCountSource prompt_count = TokenCountSource::kEstimate, output_count = TokenCountSource::kEstimate;
  std::map<std::string, int64_t> errors;  // error text -> occurrences
};

// Summarises one load point. `duration_s` is the wall time from the first send to the
// last response.
PointSummary Summarize(const std::vector<Sample>& samples, double duration_s, const Slo& slo);

// One load point: its samples and summary.
struct PointResult {
  PointSummary summary;
  std::vector<Sample> samples;
};

// The vLLM-style table of one point.
void PrintPoint(std::FILE* out, const PointSummary& s, const Slo& slo);
// One line per point of a sweep.
void PrintSweep(std::FILE* out, const std::vector<PointResult>& points);

// The --json document: {"tool", "config": <config_json>, "points": [{"summary": {...},
// "samples": [...]}]}. `config_json` must be a JSON object text.
std::string ToJson(const std::vector<PointResult>& points, const std::string& config_json);

}  // namespace tide::bench
