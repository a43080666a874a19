#include "server/metrics.h"

#include <cstdio>

namespace tide::server {
namespace {

// vLLM's bucket choices, so dashboards built for it read ours the same way.
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kTokenLatencyBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
                                                  0.5,   0.75,  1.0,  2.5,   5.0,  7.5,   10.0, 20.0, 40.0, 80.0};
const std::vector<double> kRequestLatencyBuckets = {0.01, 0.05, 0.1,  0.3,  0.5,  0.8,   1.0,   1.5,   2.0,   2.5,  5.0,
                                                    10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
                                                    1920.0, 7680.0};
const std::vector<double> kTokenCountBuckets = {1,    2,    5,     10,    20,    50,     100,    200,   500,
                                                1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000};

std::string Fmt(double v) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

void Head(std::string* out, const char* name, const char* type, const char* help) {
  *out += "# HELP ";
  *out += name;
  *out += " ";
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += " ";
  *out += type;
  *out += "\n";
}

void Line(std::string* out, const std::string& name, const std::string& labels, double v) {
  *out += name + "{" + labels + "} " + Fmt(v) + "\n";
}

// Label values are ours (endpoints, reasons, the model name) but escape anyway.
std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& labels, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    Line(out, name + "_bucket", labels + ",le=\"" + Fmt(bounds_[i]) + "\"", static_cast<double>(cumulative));
  }
  Line(out, name + "_bucket", labels + ",le=\"+Inf\"", static_cast<double>(count_));
  Line(out, name + "_sum", labels, sum_);
  Line(out, name + "_count", labels, static_cast<double>(count_));
}

Metrics::Metrics(std::string model_name)
    : model_(std::move(model_name)),
      label_("model_name=\"" + Escape(model_) + "\""),
      ttft_(kTtftBuckets),
      tpot_(kTokenLatencyBuckets),
      itl_(kTokenLatencyBuckets),
      e2e_(kRequestLatencyBuckets),
      queue_(kRequestLatencyBuckets),
      prefill_(kRequestLatencyBuckets),
      decode_(kRequestLatencyBuckets),
      prompt_len_(kTokenCountBuckets),
      gen_len_(kTokenCountBuckets) {}

void Metrics::CountHttp(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++http_[{endpoint, status}];
}

void Metrics::CountRejection(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_[reason];
}

void Metrics::ObserveCompletion(const RequestOutput& o, const std::vector<double>& token_times) {
  const RequestTimes& t = o.times;
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_[FinishReasonName(o.finish_reason)];
  if (t.finished > 0 && t.arrival > 0) e2e_.Observe(t.finished - t.arrival);
  if (t.first_scheduled > 0) queue_.Observe(t.first_scheduled - t.arrival);
  if (t.first_token > 0) {
    ttft_.Observe(t.first_token - t.arrival);
    if (t.first_scheduled > 0) prefill_.Observe(t.first_token - t.first_scheduled);
    if (t.finished >= t.first_token) decode_.Observe(t.finished - t.first_token);
  }
  const int64_t n = o.usage.completion_tokens;
  if (n > 1 && t.finished > t.first_token) tpot_.Observe((t.finished - t.first_token) / static_cast<double>(n - 1));
  for (size_t i = 1; i < token_times.size(); ++i) itl_.Observe(token_times[i] - token_times[i - 1]);
  prompt_len_.Observe(static_cast<double>(o.usage.prompt_tokens));
  gen_len_.Observe(static_cast<double>(n));
}

void Metrics::CountAborted(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  finished_["abort"] += static_cast<uint64_t>(n);
}

std::string Metrics::Render(const EngineStats& e, const ServerGauges& g) const {
  std::string out;
  out.reserve(16384);
  const std::string& l = label_;
  auto gauge = [&](const char* name, const char* help, double v) {
    Head(&out, name, "gauge", help);
    Line(&out, name, l, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    Head(&out, name, "counter", help);
    Line(&out, name, l, v);
  };
  gauge("tide_num_requests_running", "Sequences in the engine's running batch.", static_cast<double>(e.num_running));
  gauge("tide_num_requests_waiting", "Sequences waiting for the engine to schedule them.", static_cast<double>(e.num_waiting));
  gauge("tide_num_requests_queued", "Requests admitted by the server that have produced no output yet.",
        static_cast<double>(g.requests_queued));
  const int64_t used = e.num_blocks - e.num_free_blocks;
  gauge("tide_kv_cache_blocks_total", "KV cache blocks.", static_cast<double>(e.num_blocks));
  gauge("tide_kv_cache_blocks_used", "KV cache blocks held by live sequences.", static_cast<double>(used));
  gauge("tide_kv_cache_blocks_cached_free", "Free KV blocks still indexed by the prefix cache.",
        static_cast<double>(e.num_cached_free_blocks));
  gauge("tide_kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = full).",
        e.num_blocks > 0 ? static_cast<double>(used) / static_cast<double>(e.num_blocks) : 0.0);
  const PrefixCacheStats& pc = e.prefix_cache;
  counter("tide_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          static_cast<double>(pc.query_tokens));
  counter("tide_prefix_cache_hits_total", "Prompt tokens served by the prefix cache.", static_cast<double>(pc.hit_tokens));
  gauge("tide_prefix_cache_hit_rate", "Prefix cache hits / queries (tokens), since start.",
        pc.query_tokens > 0 ? static_cast<double>(pc.hit_tokens) / static_cast<double>(pc.query_tokens) : 0.0);
  counter("tide_num_preemptions_total", "Sequences preempted (recomputed later) for lack of KV blocks.",
          static_cast<double>(e.num_preemptions));
  counter("tide_prompt_tokens_total", "Prompt tokens computed (prefill, recomputation included).",
          static_cast<double>(e.num_prompt_tokens_computed));
  counter("tide_generation_tokens_total", "Tokens generated.", static_cast<double>(e.num_generated_tokens));
  counter("tide_engine_steps_total", "Engine steps run.", static_cast<double>(e.num_steps));
  gauge("tide_http_connections", "Open HTTP connections.", static_cast<double>(g.http_connections));
  gauge("tide_server_ready", "1 when the server takes requests (model loaded and warm, not draining).",
        g.ready && !g.draining ? 1.0 : 0.0);
  gauge("tide_server_draining", "1 while draining after SIGTERM.", g.draining ? 1.0 : 0.0);

  std::lock_guard<std::mutex> lock(mu_);
  Head(&out, "tide_http_requests_total", "counter", "HTTP responses by endpoint and status.");
  for (const auto& [k, v] : http_)
    Line(&out, "tide_http_requests_total",
         l + ",endpoint=\"" + Escape(k.first) + "\",status=\"" + std::to_string(k.second) + "\"", static_cast<double>(v));
  Head(&out, "tide_request_success_total", "counter", "Completions finished, by finish reason.");
  for (const char* reason : {"stop", "length", "abort"}) {
    auto it = finished_.find(reason);
    Line(&out, "tide_request_success_total", l + ",finished_reason=\"" + reason + "\"",
         it == finished_.end() ? 0.0 : static_cast<double>(it->second));
  }
  Head(&out, "tide_request_rejected_total", "counter", "Requests refused before reaching the engine, by reason.");
  for (const char* reason :
       {"max_waiting", "queue_time", "engine_full", "draining", "not_ready", "rate_limit", "concurrency", "auth"}) {
    auto it = rejected_.find(reason);
    Line(&out, "tide_request_rejected_total", l + ",reason=\"" + reason + "\"",
         it == rejected_.end() ? 0.0 : static_cast<double>(it->second));
  }
  auto hist = [&](const char* name, const char* help, const Histogram& h) {
    Head(&out, name, "histogram", help);
    h.Render(name, l, &out);
  };
  hist("tide_time_to_first_token_seconds", "Time from arrival to the first generated token.", ttft_);
  hist("tide_time_per_output_token_seconds", "Mean time per output token after the first, per completion.", tpot_);
  hist("tide_inter_token_latency_seconds", "Time between consecutive output tokens.", itl_);
  hist("tide_e2e_request_latency_seconds", "Time from arrival to the last token.", e2e_);
  hist("tide_request_queue_time_seconds", "Time from arrival to the first step that ran the request.", queue_);
  hist("tide_request_prefill_time_seconds", "Time from first scheduled to the first token.", prefill_);
  hist("tide_request_decode_time_seconds", "Time from the first token to the last.", decode_);
  hist("tide_request_prompt_tokens", "Prompt length of finished completions.", prompt_len_);
  hist("tide_request_generation_tokens", "Generated tokens of finished completions.", gen_len_);
  return out;
}

}  // namespace tide::server
