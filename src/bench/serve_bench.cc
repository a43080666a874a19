#include "bench/serve_bench.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "base/file.h"
#include "bench/serve_client.h"
#include "bench/serve_stats.h"
#include "bench/serve_svg.h"
#include "bench/serve_workload.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tide::bench {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Result<std::vector<double>> ParseRates(const std::string& s) {
  std::vector<double> rates;
  for (const std::string& item : SplitList(s)) {
    if (item == "inf") {
      rates.push_back(std::numeric_limits<double>::infinity());
      continue;
    }
    double r = 0;
    try {
      size_t used = 0;
      r = std::stod(item, &used);
      if (used != item.size()) r = -1;
    } catch (const std::exception&) {
      r = -1;
    }
    if (!(r > 0) || std::isinf(r)) return InvalidArgument("--request-rate: want positive numbers or inf, got '" + item + "'");
    rates.push_back(r);
  }
  if (rates.empty() || rates.size() > 64) return InvalidArgument("--request-rate: want 1 to 64 rates");
  return rates;
}

Result<std::vector<int>> ParseConcurrency(const std::string& s) {
  std::vector<int> out;
  for (const std::string& item : SplitList(s)) {
    int c = -1;
    try {
      size_t used = 0;
      c = std::stoi(item, &used);
      if (used != item.size()) c = -1;
    } catch (const std::exception&) {
      c = -1;
    }
    if (c < 0 || c > 1'000'000) return InvalidArgument("--max-concurrency: want integers >= 0, got '" + item + "'");
    out.push_back(c);
  }
  if (out.empty() || out.size() > 64) return InvalidArgument("--max-concurrency: want 1 to 64 values");
  return out;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  if (IsDirectory(path)) return Tokenizer::FromHfFolder(path);
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
  return Tokenizer::FromGguf(*gguf);
}

std::string ConfigJson(const ServeBenchOptions& o, const Target& t, const std::string& count_method) {
  nlohmann::json j = {{"base_url", o.base_url},
                      {"host", t.host},
                      {"port", t.port},
                      {"endpoint", t.path},
                      {"model", o.model},
                      {"served_model_name", o.served_model_name},
                      {"dataset_name", o.dataset_name},
                      {"dataset_path", o.dataset_path},
                      {"num_prompts", o.num_prompts},
                      {"random_input_len", o.random_input_len},
                      {"random_output_len", o.random_output_len},
                      {"random_range_ratio", o.random_range_ratio},
                      {"random_prefix_len", o.random_prefix_len},
                      {"shared_prefix_len", o.shared_prefix_len},
                      {"shared_prefix_groups", o.shared_prefix_groups},
                      {"multi_turn_turns", o.multi_turn_turns},
                      {"seed", o.seed},
                      {"request_rate", o.request_rate},
                      {"burstiness", o.burstiness},
                      {"max_concurrency", o.max_concurrency},
                      {"ignore_eos", o.ignore_eos},
                      {"temperature", o.temperature},
                      {"request_timeout_s", o.request_timeout_s},
                      {"slo", o.slo},
                      {"prompt_token_count", count_method}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Status RunServeBench(const ServeBenchOptions& o, const std::atomic<bool>* interrupt, std::FILE* out) {
  // Validate everything before the first request.
  ASSIGN_OR_RETURN(Target target, ParseTarget(o.base_url, o.endpoint));
  ASSIGN_OR_RETURN(std::vector<double> rates, ParseRates(o.request_rate));
  ASSIGN_OR_RETURN(std::vector<int> concurrencies, ParseConcurrency(o.max_concurrency));
  if (!(o.burstiness > 0) || std::isinf(o.burstiness)) return InvalidArgument("--burstiness must be positive");
  Slo slo;
  if (!o.slo.empty()) {
    ASSIGN_OR_RETURN(slo, ParseSlo(o.slo));
  }
  WorkloadOptions w;
  ASSIGN_OR_RETURN(w.kind, ParseDatasetKind(o.dataset_name));
  ASSIGN_OR_RETURN(w.input_len, ParseLengthRange("--random-input-len", o.random_input_len, o.random_range_ratio));
  ASSIGN_OR_RETURN(w.output_len, ParseLengthRange("--random-output-len", o.random_output_len, o.random_range_ratio));
  w.num_prompts = o.num_prompts;
  w.random_prefix_len = o.random_prefix_len;
  w.shared_prefix_len = o.shared_prefix_len;
  w.shared_prefix_groups = o.shared_prefix_groups;
  w.multi_turn_turns = o.multi_turn_turns;
  w.dataset_path = o.dataset_path;
  w.seed = o.seed;
  if (o.random_prefix_len < 0) return InvalidArgument("--random-prefix-len must be >= 0");

  std::unique_ptr<Tokenizer> tok;
  const std::string tok_path = o.tokenizer.empty() ? o.model : o.tokenizer;
  if (!tok_path.empty()) {
    Result<std::unique_ptr<Tokenizer>> t = LoadTokenizer(tok_path);
    if (!t.ok()) return t.status().WithContext("--model/--tokenizer " + tok_path);
    tok = std::move(t).value();
  }
  const TokenCounter counter(tok.get());
  const std::string count_method =
      counter.exact() ? "counted by the tokenizer" : "ESTIMATED as UTF-8 bytes / 4; --model PATH counts exactly";
  ASSIGN_OR_RETURN(std::vector<WorkloadItem> work, BuildWorkload(w, counter));

  int64_t in_tokens = 0, out_tokens = 0;
  for (const WorkloadItem& it : work) in_tokens += it.prompt_tokens, out_tokens += it.max_tokens;
  std::fprintf(out, "target: http://%s:%s%s (%s), model \"%s\"\n", target.host.c_str(), target.port.c_str(),
               target.path.c_str(), target.chat() ? "chat" : "completions",
               o.served_model_name.empty() ? (o.model.empty() ? "default" : o.model.c_str()) : o.served_model_name.c_str());
  std::fprintf(out, "workload: %s, %zu requests, %lld prompt tokens (%s), %lld max output tokens%s\n",
               o.dataset_name.c_str(), work.size(), static_cast<long long>(in_tokens), count_method.c_str(),
               static_cast<long long>(out_tokens), o.ignore_eos ? " (ignore_eos)" : "");
  std::fflush(out);

  LoadOptions lo;
  lo.burstiness = o.burstiness;
  lo.seed = o.seed;
  lo.model_name = !o.served_model_name.empty() ? o.served_model_name : (o.model.empty() ? "default" : o.model);
  lo.ignore_eos = o.ignore_eos;
  lo.temperature = o.temperature;
  lo.request_timeout_s = o.request_timeout_s;
  lo.progress = o.progress;
  lo.interrupt = interrupt;

  std::vector<PointResult> points;
  bool stopped = false;
  for (int conc : concurrencies) {
    for (double rate : rates) {
      if (stopped) break;
      lo.request_rate = rate;
      lo.max_concurrency = conc;
      ASSIGN_OR_RETURN(LoadResult r, RunLoad(target, work, lo, counter));
      PointResult p;
      p.summary = Summarize(r.samples, r.duration_s, slo);
      p.summary.request_rate = rate;
      p.summary.burstiness = o.burstiness;
      p.summary.max_concurrency = conc;
      p.summary.max_in_flight = r.max_in_flight;
      p.summary.prompt_count = r.server_usage ? TokenCountSource::kServerUsage
                               : counter.exact() ? TokenCountSource::kTokenizer
                                                 : TokenCountSource::kEstimate;
      p.summary.output_count = r.server_usage ? TokenCountSource::kServerUsage
                               : counter.exact() ? TokenCountSource::kTokenizer
                                                 : TokenCountSource::kStreamEvents;
      p.samples = std::move(r.samples);
      PrintPoint(out, p.summary, slo);
      std::fflush(out);
      points.push_back(std::move(p));
      if (r.interrupted) {
        std::fprintf(stderr, "[tide] interrupted: reporting what was measured so far\n");
        stopped = true;
      }
    }
  }
  if (points.size() > 1) PrintSweep(out, points);
  std::fflush(out);
  if (!o.json_path.empty()) {
    RETURN_IF_ERROR(WriteStringToFile(o.json_path, ToJson(points, ConfigJson(o, target, count_method))));
    std::fprintf(stderr, "[tide] wrote %s\n", o.json_path.c_str());
  }
  if (!o.plot_path.empty()) {
    const std::string title = "tide bench serve: " + o.dataset_name + ", " + std::to_string(work.size()) +
                              " requests, http://" + target.host + ":" + target.port + target.path;
    RETURN_IF_ERROR(WriteStringToFile(o.plot_path, RenderSvg(points, title)));
    std::fprintf(stderr, "[tide] wrote %s\n", o.plot_path.c_str());
  }
  return OkStatus();
}

}  // namespace tide::bench
