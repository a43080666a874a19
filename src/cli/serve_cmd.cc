// tide serve: the OpenAI-compatible server (src/server/, docs/api.md).
//
// Start-up order: HTTP first (so /health answers and /ready says 503 while loading), then
// the model (weights read in with a progress line, or copied to the GPU), the engine, a
// warm-up forward, and only then /ready 200 and --port-file. SIGTERM or SIGINT
// drains (ready 503, new requests 503, running ones finish up to --drain-timeout) and
// exits 0; a second SIGINT exits at once.
#include <CLI/CLI.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "backend/cpu/thread_pool.h"
#include "backend/device_memory.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "server/server.h"

namespace tide::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct ServeArgs {
  std::string model;
  std::string served_model_name;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string port_file;
  int io_threads = 2;
  int threads = 0;
  // placement
  std::string device = "cpu";
  double gpu_memory_utilization = 0.9;
  EngineFlags engine;  // --kv-cache-memory, when given, wins over the GPU fraction
  // http
  std::string max_body = "8M";
  double read_timeout_s = 30, idle_timeout_s = 60, write_timeout_s = 60;
  // requests and admission
  double request_timeout_s = 600;
  int64_t max_waiting = 1024;
  double max_queue_time_s = 0;
  double drain_timeout_s = 30;
  std::vector<std::string> api_keys;
  std::string api_keys_file;
  std::string chat_template;
  std::string tool_call_parser;
  bool enable_auto_tool_choice = false;
  bool warmup = true;
};

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

Result<std::string> ReadChatTemplate(const std::string& arg) {
  if (arg.empty()) return std::string();
  std::ifstream in(arg);
  if (!in) return NotFound("--chat-template: cannot open " + arg);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes the port so a reader never sees a partial file: a temporary beside it, renamed.
Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream pf(tmp, std::ios::trunc);
    pf << port << "\n";
    if (!pf.flush()) return Internal("--port-file: cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Internal("--port-file: cannot rename " + tmp + " to " + path + ": " + ec.message());
  return OkStatus();
}

// Sends one tiny request through the whole path (prefill, decode, sampling) so the
// first client does not pay for cold caches and lazy initialisation.
Status WarmUp(Engine& engine, const Tokenizer& tok) {
  Request r;
  r.id = "tide-warmup";
  r.prompt = {tok.bos_id().value_or(0)};
  r.sampling.max_tokens = 2;
  r.sampling.ignore_eos = true;
  ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine.Submit(std::move(r)));
  while (std::optional<RequestOutput> o = stream->Next()) {
    if (o->finished()) RETURN_IF_ERROR(o->status);
  }
  return OkStatus();
}

Status Run(const ServeArgs& a, const sigset_t& signals) {
  ThreadPool::SetGlobalThreads(a.threads);
  // A bad placement fails before anything listens: no GPU is an error, not a CPU fallback.
  if (a.device != "cpu" && a.device != "cuda") return InvalidArgument("--device must be cpu or cuda, got '" + a.device + "'");
  if (a.device == "cuda") {
    std::string why;
    if (!CudaAvailable(&why)) return Unimplemented("--device cuda: " + why);
  }
  if (!(a.gpu_memory_utilization > 0 && a.gpu_memory_utilization <= 1))
    return InvalidArgument("--gpu-memory-utilization must be in (0, 1], got " + std::to_string(a.gpu_memory_utilization));
  server::ServerOptions so;
  so.http.host = a.host;
  so.http.port = a.port;
  so.http.io_threads = a.io_threads;
  ASSIGN_OR_RETURN(so.http.max_body_bytes, ParseByteSize(a.max_body));
  so.http.read_timeout = Ms(a.read_timeout_s);
  so.http.idle_timeout = Ms(a.idle_timeout_s);
  so.http.write_timeout = Ms(a.write_timeout_s);
  so.request_timeout = Ms(a.request_timeout_s);
  so.max_waiting = a.max_waiting;
  so.max_queue_time_s = a.max_queue_time_s;
  for (size_t i = 0; i < a.api_keys.size(); ++i) so.api_keys.push_back({a.api_keys[i], "key-" + std::to_string(i), {}});
  if (!a.api_keys_file.empty()) {
    ASSIGN_OR_RETURN(std::vector<server::ApiKey> keys, server::LoadApiKeysFile(a.api_keys_file));
    for (server::ApiKey& k : keys) so.api_keys.push_back(std::move(k));
  }
  ASSIGN_OR_RETURN(so.chat_template, ReadChatTemplate(a.chat_template));
  if (!a.tool_call_parser.empty()) {
    std::optional<server::ToolParser> p = server::ToolParserFromName(a.tool_call_parser);
    if (!p) return InvalidArgument("--tool-call-parser must be hermes or llama3_json, got '" + a.tool_call_parser + "'");
    so.tool_parser = *p;
  }
  if (a.enable_auto_tool_choice && a.tool_call_parser.empty())
    return InvalidArgument("--enable-auto-tool-choice requires --tool-call-parser");
  so.auto_tool_choice = a.enable_auto_tool_choice;
  ASSIGN_OR_RETURN(std::string path, ResolveModelPath(a.model));
  so.served_model_name = !a.served_model_name.empty() ? a.served_model_name : a.model.empty() ? "tide-builtin" : a.model;

  server::Server server(so);
  RETURN_IF_ERROR(server.Start());
  const std::string url = "http://" + (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
                          std::to_string(server.port());
  std::fprintf(stderr, "[tide] listening on %s (loading; /health 200, /ready 503)\n", url.c_str());

  const auto t0 = Clock::now();
  std::fprintf(stderr, "[tide] loading %s ...\n", path.c_str());
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizerFor(path, *model));
  ExecContext ctx;
  ctx.pool = &ThreadPool::Global();
  if (a.device == "cuda") ctx.device = DeviceKind::kCuda;
  ASSIGN_OR_RETURN(const int64_t gpu_kv_budget, PlaceWeights(*model, ctx, a.gpu_memory_utilization));
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::fprintf(stderr, "[tide] loaded in %.2f s\n", load_s);

  EngineOptions eo;
  eo.kv_cache_bytes = gpu_kv_budget > 0 ? gpu_kv_budget : int64_t{1} << 30;
  RETURN_IF_ERROR(ApplyEngineFlags(a.engine, &eo));
  // The runner puts the KV cache on ctx.device.
  std::unique_ptr<ModelRunner> runner = MakeModelRunner(*model, ctx);
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(*runner, tok.get(), eo));
  const int64_t max_model_len = a.engine.max_model_len > 0 ? a.engine.max_model_len : model->config().max_position_embeddings;
  RETURN_IF_ERROR(server.Attach({engine.get(), tok.get(), max_model_len, path}));
  if (a.warmup) {
    const auto w0 = Clock::now();
    RETURN_IF_ERROR(WarmUp(*engine, *tok).WithContext("warm-up"));
    std::fprintf(stderr, "[tide] warm-up forward: %.0f ms\n",
                 std::chrono::duration<double, std::milli>(Clock::now() - w0).count());
  }
  server.SetReady();
  // Only now: whoever waits for the file finds /ready already 200.
  if (!a.port_file.empty()) RETURN_IF_ERROR(WritePortFile(a.port_file, server.port()));
  std::fprintf(stderr,
               "[tide] ready: %s  model '%s'  device %s  max_model_len %lld  KV cache %s\n"
               "[tide] try: curl %s/v1/chat/completions -H 'Content-Type: application/json' "
               "-d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 32}'\n",
               url.c_str(), so.served_model_name.c_str(), a.device.c_str(), static_cast<long long>(max_model_len),
               engine->KvSummary().c_str(), url.c_str());

  // Signals are blocked in every thread; this thread takes them one by one.
  Clock::time_point drain_deadline{};
  for (;;) {
    timespec tick{0, 100'000'000};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGINT && server.draining()) {
      std::fprintf(stderr, "[tide] second SIGINT: exiting now\n");
      std::fflush(stderr);
      std::_Exit(130);
    }
    if ((sig == SIGTERM || sig == SIGINT) && !server.draining()) {
      std::fprintf(stderr, "[tide] %s: draining (up to %.0f s for running requests)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                   a.drain_timeout_s);
      server.BeginDrain();
      drain_deadline = Clock::now() + Ms(a.drain_timeout_s);
    }
    if (!server.draining()) continue;
    if (server.WaitIdle(std::chrono::milliseconds(0))) break;
    if (Clock::now() >= drain_deadline) {
      std::fprintf(stderr, "[tide] drain timeout: aborting what still runs\n");
      break;
    }
  }
  // Aborted streams end with finish_reason "abort"; give their responses a moment to go out.
  engine->Shutdown();
  (void)server.WaitIdle(std::chrono::milliseconds(2000));
  server.Stop();
  std::fprintf(stderr, "[tide] stopped\n");
  return OkStatus();
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* sub = app.add_subcommand("serve", "Serve the OpenAI-compatible HTTP API (see docs/api.md)");
  sub->add_option("--model,-m", a->model, "HF model folder or .gguf file (default: the built-in model)");
  sub->add_option("--served-model-name", a->served_model_name, "Model name in the API (default: --model, or tide-builtin)");
  sub->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", a->port, "Port to listen on; 0 = any free port")->capture_default_str()->check(CLI::Range(0, 65535));
  sub->add_option("--port-file", a->port_file,
                  "Write the bound port to this file once ready (model loaded and warm; /ready 200), for tests and supervisors");
  sub->add_option("--io-threads", a->io_threads, "HTTP io threads")->capture_default_str()->check(CLI::Range(1, 64));
  sub->add_option("--threads", a->threads, "CPU compute threads; 0 = all cores")->capture_default_str();
  sub->add_option("--device", a->device, "Where the model runs: cpu or cuda (no GPU -> error, exit 1)")->capture_default_str();
  sub->add_option("--gpu-memory-utilization", a->gpu_memory_utilization,
                  "With --device cuda: fraction of GPU memory for weights + KV cache; the KV cache gets what is left "
                  "after the weights and 1 GiB of workspace (--kv-cache-memory, when given, wins)")
      ->capture_default_str();
  AddEngineFlags(sub, &a->engine, "1G, or with --device cuda the --gpu-memory-utilization share");
  sub->add_option("--max-request-body", a->max_body, "Largest request body (e.g. 8M); larger -> 413")->capture_default_str();
  sub->add_option("--read-timeout", a->read_timeout_s, "Seconds to receive a whole request")->capture_default_str();
  sub->add_option("--idle-timeout", a->idle_timeout_s, "Seconds a keep-alive connection may idle")->capture_default_str();
  sub->add_option("--write-timeout", a->write_timeout_s, "Seconds a client may take to accept one write")->capture_default_str();
  sub->add_option("--request-timeout", a->request_timeout_s, "Seconds a non-streaming request may run (then 504); 0 = none")
      ->capture_default_str();
  sub->add_option("--max-waiting", a->max_waiting, "Admitted requests with no output yet; beyond -> 503")->capture_default_str();
  sub->add_option("--max-queue-time", a->max_queue_time_s, "Predicted queue seconds above which requests get 503; 0 = off")
      ->capture_default_str();
  sub->add_option("--drain-timeout", a->drain_timeout_s, "Seconds running requests may take to finish after SIGTERM")
      ->capture_default_str();
  sub->add_option("--api-key", a->api_keys, "Accepted bearer token (repeatable); none = no authentication");
  sub->add_option("--api-keys-file", a->api_keys_file, "JSON array of {key, name, requests_per_minute, tokens_per_minute, max_concurrent}");
  sub->add_option("--chat-template", a->chat_template, "File with a Jinja chat template overriding the model's");
  sub->add_option("--tool-call-parser", a->tool_call_parser,
                  "Parse chat replies to requests with tools for tool calls: hermes (Qwen2.5/3) or llama3_json (Llama 3.1)");
  sub->add_flag("--enable-auto-tool-choice", a->enable_auto_tool_choice,
                "Also parse when tool_choice is 'auto' (the default); needs --tool-call-parser");
  sub->add_flag("!--no-warmup", a->warmup, "Skip the warm-up forward before /ready");
  sub->callback([a] {
    // Block the signals before any thread starts so every thread inherits the mask and
    // only Run's loop receives them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    Status s = Run(*a, signals);
    if (!s.ok()) {
      std::fprintf(stderr, "tide serve: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tide::cli
