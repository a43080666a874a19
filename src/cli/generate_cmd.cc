// tide generate: one prompt in, streamed text (or one JSON object) out, through the
// Engine (one request; its stream drives the output).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>
#include <sstream>

#include "backend/cpu/thread_pool.h"
#include "backend/device_memory.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "kv/kv_cache.h"

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
  // One request: one sequence, and by default a context and a KV cache of exactly
  // prompt + max_tokens.
  EngineFlags engine = [] {
    EngineFlags f;
    f.max_num_seqs = 1;
    f.max_num_batched_tokens = 512;
    return f;
  }();
  std::string device = "cpu";          // --device: cpu | cuda
  double gpu_memory_utilization = 0;   // --gpu-memory-utilization (cuda); 0 = unset
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
  if (a.device != "cpu" && a.device != "cuda") return InvalidArgument("--device must be cpu or cuda, got " + a.device);
  ExecContext ctx;
  ctx.pool = &ThreadPool::Global();
  int64_t gpu_kv_budget = 0;
  if (a.device == "cuda") {
    ctx.device = DeviceKind::kCuda;
    ASSIGN_OR_RETURN(gpu_kv_budget, PlaceWeights(*model, ctx, a.gpu_memory_utilization));
  }
  // A folder without tokenizer files (e.g. from `tide synth`) still runs on token ids.
  std::unique_ptr<Tokenizer> tok;
  if (auto t = LoadTokenizerFor(path, *model); t.ok()) {
    tok = std::move(*t);
  } else if (a.prompt_ids.empty()) {
    return t.status().WithContext("cannot tokenize --prompt (give --prompt-ids instead)");
  }

  Request req;
  req.id = "generate";
  if (!a.prompt_ids.empty()) {
    ASSIGN_OR_RETURN(req.prompt, ParseIds(a.prompt_ids));
  } else {
    ASSIGN_OR_RETURN(req.prompt, tok->Encode(a.prompt, /*add_special_tokens=*/true));
  }
  SamplingParams& sp = req.sampling;
  sp.max_tokens = a.max_tokens;
  sp.ignore_eos = a.ignore_eos;
  sp.temperature = a.temperature;
  sp.top_p = a.top_p;
  sp.top_k = a.top_k;
  sp.min_p = a.min_p;
  sp.seed = a.seed;
  sp.logprobs = a.json;
  sp.top_logprobs = a.json ? 20 : 0;

  // One request: size the engine for it unless the flags say otherwise (the model's
  // context bounds it; a request over that is refused by the engine with the
  // context-length error).
  EngineOptions eo;
  const int64_t model_ctx = model->config().max_position_embeddings;
  const int64_t need = static_cast<int64_t>(req.prompt.size()) + a.max_tokens;
  eo.max_model_len = need <= model_ctx ? std::max<int64_t>(need, 2) : model_ctx;
  if (gpu_kv_budget > 0) eo.kv_cache_bytes = gpu_kv_budget;
  RETURN_IF_ERROR(ApplyEngineFlags(a.engine, &eo));
  if (a.engine.kv_cache_memory.empty() && gpu_kv_budget <= 0)
    eo.num_kv_blocks = (eo.max_model_len + eo.block_size - 1) / std::max(eo.block_size, 1);
  // The runner puts the KV cache on ctx.device.
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(*model, ctx);
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(*runner, tok.get(), eo));
  ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine->Submit(req));

  if (!a.json) {
    std::fputs(a.prompt_ids.empty() ? a.prompt.c_str() : "", stdout);
    std::fflush(stdout);
  }
  std::vector<int32_t> ids;
  std::vector<SampleResult> samples;
  std::string text;
  RequestOutput last;
  while (std::optional<RequestOutput> o = stream->Next()) {
    ids.insert(ids.end(), o->token_ids.begin(), o->token_ids.end());
    for (SampleResult& s : o->logprobs) samples.push_back(std::move(s));
    text += o->text;
    if (!a.json) {
      if (tok) {
        std::fputs(o->text.c_str(), stdout);
      } else {
        for (int32_t t : o->token_ids) std::printf(" %d", t);
      }
      std::fflush(stdout);
    }
    if (o->finished()) last = std::move(*o);
  }
  RETURN_IF_ERROR(last.status);
  if (a.json) {
    nlohmann::ordered_json j;
    j["prompt_ids"] = req.prompt;
    j["output_ids"] = ids;
    j["text"] = text;
    j["finish_reason"] = FinishReasonName(last.finish_reason);
    nlohmann::ordered_json tops = nlohmann::ordered_json::array();
    for (const SampleResult& s : samples) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (const TokenLogprob& t : s.top) row.push_back({{"id", t.id}, {"logprob", t.logprob}});
      tops.push_back(std::move(row));
    }
    j["top_logprobs"] = std::move(tops);
    // Invalid UTF-8 in model output must not abort the dump: replace it.
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fputs("\n", stdout);
  }
  // Prefill: scheduling to first token; decode: the remaining tokens after it.
  const RequestTimes& t = last.times;
  const double prefill_s = t.first_token - t.first_scheduled;
  const double decode_s = t.finished - t.first_token;
  const int64_t n = last.usage.completion_tokens;
  std::fprintf(stderr,
               "[tide] KV cache: %s\n[tide] prompt tokens: %lld, prefill: %.1f tok/s, generated tokens: %lld, "
               "decode: %.1f tok/s, finish: %s\n",
               engine->KvSummary().c_str(), static_cast<long long>(last.usage.prompt_tokens),
               prefill_s > 0 ? static_cast<double>(last.usage.prompt_tokens) / prefill_s : 0.0,
               static_cast<long long>(n), decode_s > 0 && n > 1 ? static_cast<double>(n - 1) / decode_s : 0.0,
               FinishReasonName(last.finish_reason));
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
  AddEngineFlags(sub, &a->engine,
                 "exactly one request of --max-model-len (with --device cuda and --gpu-memory-utilization, that share)");
  sub->add_option("--device", a->device, "Where the model runs: cpu or cuda")->capture_default_str();
  sub->add_option("--gpu-memory-utilization", a->gpu_memory_utilization,
                  "With --device cuda: fraction of GPU memory for weights + KV cache (e.g. 0.9); sizes the KV cache")
      ->check(CLI::Range(0.0, 1.0));
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
