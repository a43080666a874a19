// tide generate: one prompt in, streamed text (or one JSON object) out.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "backend/cpu/thread_pool.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "engine/generator.h"

namespace tide::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt = "Once upon a time";
  std::string prompt_ids;
  int max_tokens = 64;
  float temperature = 0.f;
  float top_p = 1.f;
  int top_k = 0;
  float min_p = 0.f;
  uint64_t seed = 0;
  int threads = 0;
  bool ignore_eos = false;
  bool json = false;
};

Result<std::vector<int32_t>> ParseIds(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      return InvalidArgument("--prompt-ids: '" + item + "' is not an integer");
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) return InvalidArgument("--prompt-ids: bad id '" + item + "'");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) return InvalidArgument("--prompt-ids: no ids given");
  return ids;
}

Status Run(const GenerateArgs& a) {
  ThreadPool::SetGlobalThreads(a.threads);
  ASSIGN_OR_RETURN(std::string path, ResolveModelPath(a.model));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  // A folder without tokenizer files (e.g. from `tide synth`) still runs on token ids.
  std::unique_ptr<Tokenizer> tok;
  if (auto t = LoadTokenizerFor(path, *model); t.ok()) {
    tok = std::move(*t);
  } else if (a.prompt_ids.empty()) {
    return t.status().WithContext("cannot tokenize --prompt (give --prompt-ids instead)");
  }

  GenerateRequest req;
  if (!a.prompt_ids.empty()) {
    ASSIGN_OR_RETURN(req.prompt, ParseIds(a.prompt_ids));
  } else {
    ASSIGN_OR_RETURN(req.prompt, tok->Encode(a.prompt, /*add_special_tokens=*/true));
  }
  req.max_tokens = a.max_tokens;
  req.ignore_eos = a.ignore_eos;
  if (tok) req.stop_token_ids = tok->eos_ids();
  req.sampling.temperature = a.temperature;
  req.sampling.top_p = a.top_p;
  req.sampling.top_k = a.top_k;
  req.sampling.min_p = a.min_p;
  req.sampling.seed = a.seed;
  req.sampling.top_logprobs = a.json ? 20 : 0;

  ExecContext ctx;
  ctx.pool = &ThreadPool::Global();
  std::unique_ptr<IncrementalDetokenizer> detok;
  if (tok) detok = std::make_unique<IncrementalDetokenizer>(*tok, /*skip_special_tokens=*/true);
  if (!a.json) {
    std::fputs(a.prompt_ids.empty() ? a.prompt.c_str() : "", stdout);
    std::fflush(stdout);
  }
  GenerateStats stats;
  auto on_token = [&](int, const SampleResult& s) {
    if (a.json || !detok) return;
    const std::string text = detok->Push(s.token);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  };
  ASSIGN_OR_RETURN(std::vector<GenerateOutput> outs, Generate(*model, ctx, {req}, GeneratorOptions{}, on_token, &stats));
  const GenerateOutput& out = outs[0];
  if (a.json) {
    std::string text;
    if (tok) {
      ASSIGN_OR_RETURN(text, tok->Decode(out.tokens, /*skip_special_tokens=*/true));
    }
    nlohmann::ordered_json j;
    j["prompt_ids"] = req.prompt;
    j["output_ids"] = out.tokens;
    j["text"] = text;
    j["finish_reason"] = FinishReasonName(out.finish);
    nlohmann::ordered_json tops = nlohmann::ordered_json::array();
    for (const SampleResult& s : out.samples) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (const TokenLogprob& t : s.top) row.push_back({{"id", t.id}, {"logprob", t.logprob}});
      tops.push_back(std::move(row));
    }
    j["top_logprobs"] = std::move(tops);
    // Invalid UTF-8 in model output must not abort the dump: replace it.
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (detok) {
      std::fputs(detok->Flush().c_str(), stdout);
    } else {
      for (int32_t t : out.tokens) std::printf(" %d", t);
    }
    std::fputs("\n", stdout);
  }
  const double decode_tps = stats.decode_seconds > 0 ? static_cast<double>(stats.decode_steps) / stats.decode_seconds : 0;
  std::fprintf(stderr,
               "[tide] prompt tokens: %lld, prefill: %.1f tok/s, generated tokens: %lld, decode: %.1f tok/s, "
               "finish: %s\n",
               static_cast<long long>(stats.prompt_tokens),
               stats.prefill_seconds > 0 ? static_cast<double>(stats.prompt_tokens) / stats.prefill_seconds : 0.0,
               static_cast<long long>(stats.generated_tokens), decode_tps, FinishReasonName(out.finish));
  return OkStatus();
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a prompt (streams text, then a stats line)");
  sub->add_option("--model,-m", a->model, "HF model folder or .gguf file (default: the built-in model)");
  sub->add_option("--prompt,-p", a->prompt, "Prompt text")->capture_default_str();
  sub->add_option("--prompt-ids", a->prompt_ids, "Prompt as comma-separated token ids (overrides --prompt)");
  sub->add_option("--max-tokens,-n", a->max_tokens, "Maximum tokens to generate")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--temperature,-t", a->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-p", a->top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "Keep only the k most likely tokens; 0 = off")->capture_default_str();
  sub->add_option("--min-p", a->min_p, "Drop tokens below min_p x the top probability")->capture_default_str();
  sub->add_option("--seed", a->seed, "Sampling seed (output is a function of seed and position)")->capture_default_str();
  sub->add_option("--threads", a->threads, "CPU threads; 0 = all cores")->capture_default_str();
  sub->add_flag("--ignore-eos", a->ignore_eos, "Keep generating past end-of-sequence tokens");
  sub->add_flag("--json", a->json, "Print one JSON object (ids, text, finish_reason, top-20 logprobs per step)");
  sub->callback([a] {
    Status s = Run(*a);
    if (!s.ok()) {
      std::fprintf(stderr, "tide generate: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tide::cli
