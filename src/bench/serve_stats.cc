#include "bench/serve_stats.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace tide::bench {
namespace {

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

double Tpot(const Sample& s) {
  return s.output_tokens > 1 ? (s.e2e_s - s.ttft_s) / static_cast<double>(s.output_tokens - 1) : 0;
}

bool MeetsSlo(const Sample& s, const Slo& slo) {
  if (slo.ttft_ms > 0 && 1e3 * s.ttft_s > slo.ttft_ms) return false;
  if (slo.tpot_ms > 0 && 1e3 * Tpot(s) > slo.tpot_ms) return false;
  if (slo.e2e_ms > 0 && 1e3 * s.e2e_s > slo.e2e_ms) return false;
  if (slo.itl_ms > 0) {
    for (double g : s.itl_s)
      if (1e3 * g > slo.itl_ms) return false;
  }
  return true;
}

std::string RateName(double r) {
  if (std::isinf(r)) return "inf";
  char b[32];
  std::snprintf(b, sizeof b, "%g", r);
  return b;
}

nlohmann::json DistJson(const Distribution& d) {
  return {{"count", d.count}, {"mean", d.mean}, {"std", d.stddev}, {"min", d.min}, {"p50", d.p50},
          {"p90", d.p90},     {"p99", d.p99},   {"max", d.max}};
}

}  // namespace

Result<Slo> ParseSlo(const std::string& text) {
  Slo slo;
  std::string item;
  auto apply = [&](const std::string& kv) -> Status {
    if (kv.empty()) return OkStatus();
    const size_t sep = kv.find_first_of("=:");
    if (sep == std::string::npos) return InvalidArgument("--slo: want KEY=MS, got '" + kv + "'");
    const std::string key = kv.substr(0, sep);
    double ms = 0;
    try {
      size_t used = 0;
      ms = std::stod(kv.substr(sep + 1), &used);
      if (used != kv.size() - sep - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      return InvalidArgument("--slo: '" + kv + "' has no number of milliseconds");
    }
    if (!(ms > 0) || std::isinf(ms)) return InvalidArgument("--slo: '" + kv + "' must be a positive number");
    if (key == "ttft") slo.ttft_ms = ms;
    else if (key == "tpot") slo.tpot_ms = ms;
    else if (key == "itl") slo.itl_ms = ms;
    else if (key == "e2e" || key == "e2el") slo.e2e_ms = ms;
    else return InvalidArgument("--slo: unknown key '" + key + "' (want ttft, tpot, itl, e2e)");
    return OkStatus();
  };
  for (char c : text) {
    if (c == ',' || c == ' ') {
      RETURN_IF_ERROR(apply(item));
      item.clear();
    } else {
      item += c;
    }
  }
  RETURN_IF_ERROR(apply(item));
  if (!slo.any()) return InvalidArgument("--slo: no objective given");
  return slo;
}

Distribution Describe(std::vector<double> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  d.count = static_cast<int64_t>(v.size());
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - d.mean) * (x - d.mean);
  d.stddev = std::sqrt(ss / static_cast<double>(v.size()));
  d.min = v.front();
  d.max = v.back();
  d.p50 = Quantile(v, 0.50);
  d.p90 = Quantile(v, 0.90);
  d.p99 = Quantile(v, 0.99);
  return d;
}

const char* TokenCountSourceName(TokenCountSource s) {
  switch (s) {
    case TokenCountSource::kServerUsage:
      return "server usage";
    case TokenCountSource::kTokenizer:
      return "tokenizer";
    case TokenCountSource::kEstimate:
      return "ESTIMATE bytes/4";
    case TokenCountSource::kStreamEvents:
      return "stream events";
  }
  return "?";
}

PointSummary Summarize(const std::vector<Sample>& samples, double duration_s, const Slo& slo) {
  PointSummary p;
  p.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  int64_t good = 0;
  for (const Sample& s : samples) {
    if (s.interrupted) {
      ++p.interrupted;
      continue;
    }
    if (!s.ok) {
      ++p.failed;
      ++p.errors[s.error];
      continue;
    }
    ++p.completed;
    p.total_input_tokens += s.prompt_tokens;
    p.total_output_tokens += s.output_tokens;
    ttft.push_back(1e3 * s.ttft_s);
    e2e.push_back(1e3 * s.e2e_s);
    if (s.output_tokens > 1) tpot.push_back(1e3 * Tpot(s));
    for (double g : s.itl_s) itl.push_back(1e3 * g);
    if (slo.any() && MeetsSlo(s, slo)) ++good;
  }
  if (duration_s > 0) {
    p.request_throughput = static_cast<double>(p.completed) / duration_s;
    p.input_throughput = static_cast<double>(p.total_input_tokens) / duration_s;
    p.output_throughput = static_cast<double>(p.total_output_tokens) / duration_s;
    p.total_throughput = p.input_throughput + p.output_throughput;
    p.goodput = static_cast<double>(good) / duration_s;
  }
  p.ttft_ms = Describe(std::move(ttft));
  p.tpot_ms = Describe(std::move(tpot));
  p.itl_ms = Describe(std::move(itl));
  p.e2e_ms = Describe(std::move(e2e));
  return p;
}

void PrintPoint(std::FILE* out, const PointSummary& s, const Slo& slo) {
  char title[96];
  std::snprintf(title, sizeof title, " request rate %s/s%s, max concurrency %s ", RateName(s.request_rate).c_str(),
                std::isinf(s.request_rate) || s.burstiness == 1 ? "" : " (gamma)",
                s.max_concurrency > 0 ? std::to_string(s.max_concurrency).c_str() : "unlimited");
  std::string bar(std::max<size_t>(0, (64 - std::min<size_t>(std::strlen(title), 64)) / 2), '=');
  std::fprintf(out, "%s%s%s\n", bar.c_str(), title, bar.c_str());
  auto row = [&](const char* k, const char* fmt, double v) {
    std::fprintf(out, "%-40s", k);
    std::fprintf(out, fmt, v);
    std::fputc('\n', out);
  };
  row("Successful requests:", "%12.0f", static_cast<double>(s.completed));
  row("Failed requests:", "%12.0f", static_cast<double>(s.failed));
  if (s.interrupted > 0) row("Interrupted requests (Ctrl-C):", "%12.0f", static_cast<double>(s.interrupted));
  row("Maximum requests in flight:", "%12.0f", s.max_in_flight);
  row("Benchmark duration (s):", "%12.2f", s.duration_s);
  std::string in_label = std::string("Total input tokens (") + TokenCountSourceName(s.prompt_count) + "):";
  std::string out_label = std::string("Total output tokens (") + TokenCountSourceName(s.output_count) + "):";
  row(in_label.c_str(), "%12.0f", static_cast<double>(s.total_input_tokens));
  row(out_label.c_str(), "%12.0f", static_cast<double>(s.total_output_tokens));
  row("Request throughput (req/s):", "%12.2f", s.request_throughput);
  if (slo.any()) row("Request goodput (req/s):", "%12.2f", s.goodput);
  row("Input token throughput (tok/s):", "%12.2f", s.input_throughput);
  row("Output token throughput (tok/s):", "%12.2f", s.output_throughput);
  row("Total token throughput (tok/s):", "%12.2f", s.total_throughput);
  std::fprintf(out, "%-16s %9s %9s %9s %9s %9s\n", "latency (ms)", "mean", "p50", "p90", "p99", "max");
  auto dist = [&](const char* name, const Distribution& d) {
    std::fprintf(out, "%-16s %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, d.mean, d.p50, d.p90, d.p99, d.max);
  };
  dist("TTFT", s.ttft_ms);
  dist("TPOT", s.tpot_ms);
  dist("ITL", s.itl_ms);
  dist("E2E", s.e2e_ms);
  for (const auto& [err, n] : s.errors) std::fprintf(out, "error x%lld: %s\n", static_cast<long long>(n), err.c_str());
  std::fprintf(out, "%s\n", std::string(64, '=').c_str());
}

void PrintSweep(std::FILE* out, const std::vector<PointResult>& points) {
  std::fprintf(out, "%-8s %5s %5s %6s | %7s %9s %8s | %17s | %17s | %17s\n", "rate", "conc", "done", "failed", "req/s",
               "out tok/s", "goodput", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "ITL p50/p99 ms");
  for (const PointResult& r : points) {
    const PointSummary& s = r.summary;
    std::fprintf(out, "%-8s %5s %5lld %6lld | %7.2f %9.1f %8.2f | %8.1f %8.1f | %8.2f %8.2f | %8.2f %8.2f\n",
                 RateName(s.request_rate).c_str(), s.max_concurrency > 0 ? std::to_string(s.max_concurrency).c_str() : "-",
                 static_cast<long long>(s.completed),
                 static_cast<long long>(s.failed), s.request_throughput, s.output_throughput, s.goodput,
                 s.ttft_ms.p50, s.ttft_ms.p99, s.tpot_ms.p50, s.tpot_ms.p99, s.itl_ms.p50, s.itl_ms.p99);
  }
}

std::string ToJson(const std::vector<PointResult>& points, const std::string& config_json) {
  nlohmann::json doc;
  doc["tool"] = "tide bench serve";
  nlohmann::json config = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  doc["config"] = config.is_object() ? std::move(config) : nlohmann::json::object();
  doc["points"] = nlohmann::json::array();
  for (const PointResult& r : points) {
    const PointSummary& s = r.summary;
    nlohmann::json sum = {
        // JSON has no infinity: "inf" as vLLM writes it.
        {"request_rate", std::isinf(s.request_rate) ? nlohmann::json("inf") : nlohmann::json(s.request_rate)},
        {"burstiness", s.burstiness},
        {"max_concurrency", s.max_concurrency},
        {"completed", s.completed},
        {"failed", s.failed},
        {"interrupted", s.interrupted},
        {"max_in_flight", s.max_in_flight},
        {"duration_s", s.duration_s},
        {"total_input_tokens", s.total_input_tokens},
        {"total_output_tokens", s.total_output_tokens},
        {"input_token_count", TokenCountSourceName(s.prompt_count)},
        {"output_token_count", TokenCountSourceName(s.output_count)},
        {"request_throughput", s.request_throughput},
        {"input_throughput", s.input_throughput},
        {"output_throughput", s.output_throughput},
        {"total_token_throughput", s.total_throughput},
        {"goodput", s.goodput},
        {"ttft_ms", DistJson(s.ttft_ms)},
        {"tpot_ms", DistJson(s.tpot_ms)},
        {"itl_ms", DistJson(s.itl_ms)},
        {"e2e_ms", DistJson(s.e2e_ms)},
    };
    nlohmann::json errs = nlohmann::json::object();
    for (const auto& [e, n] : s.errors) errs[e] = n;
    sum["errors"] = std::move(errs);
    nlohmann::json samples = nlohmann::json::array();
    for (const Sample& x : r.samples) {
      nlohmann::json j = {{"index", x.index},
                          {"ok", x.ok},
                          {"interrupted", x.interrupted},
                          {"http_status", x.http_status},
                          {"start_s", x.start_s},
                          {"ttft_ms", 1e3 * x.ttft_s},
                          {"e2e_ms", 1e3 * x.e2e_s},
                          {"tpot_ms", 1e3 * Tpot(x)},
                          {"prompt_tokens", x.prompt_tokens},
                          {"output_tokens", x.output_tokens}};
      nlohmann::json itl = nlohmann::json::array();
      for (double g : x.itl_s) itl.push_back(1e3 * g);
      j["itl_ms"] = std::move(itl);
      if (!x.ok) j["error"] = x.error;
      samples.push_back(std::move(j));
    }
    doc["points"].push_back({{"summary", std::move(sum)}, {"samples", std::move(samples)}});
  }
  // Replace invalid UTF-8 in error texts instead of throwing (the server's bytes).
  return doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace tide::bench
