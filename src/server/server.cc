#include "server/server.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <thread>

#include "base/log.h"
#include "engine/engine.h"
#include "server/generation.h"
#include "server/server_context.h"
#include "tokenizer/tokenizer.h"

namespace tide::server {
namespace {

// For models that ship no chat template (the built-in model, many base models): a
// plain role-tagged transcript, so /v1/chat/completions still works. --chat-template
// replaces it.
constexpr const char* kFallbackChatTemplate =
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + (message['content'] if message['content'] is string else '') + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

HttpResponse JsonResponse(int status, const Json& j) {
  HttpResponse r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

int64_t UnixNow() { return static_cast<int64_t>(std::time(nullptr)); }

// The label a request is counted under: known routes by name, anything else "other"
// (clients must not be able to create unbounded label sets).
std::string EndpointLabel(const std::string& path) {
  for (const char* known : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize", "/detokenize", "/health",
                            "/ready", "/metrics"})
    if (path == known) return known;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";
  return "other";
}

class Router {
 public:
  explicit Router(std::shared_ptr<Server::Context> ctx) : ctx_(std::move(ctx)) {}

  HandlerResult Handle(HttpRequest&& req) {
    const std::string endpoint = EndpointLabel(req.path);
    HandlerResult r = Dispatch(std::move(req), endpoint);
    if (auto* full = std::get_if<HttpResponse>(&r)) ctx_->metrics.CountHttp(endpoint, full->status);
    return r;
  }

 private:
  HandlerResult Dispatch(HttpRequest&& req, const std::string& endpoint) {
    const std::string& p = req.path;
    const bool get = req.method == "GET", post = req.method == "POST";
    auto only = [&](bool ok, const char* allow) -> std::optional<HttpResponse> {
      if (ok) return std::nullopt;
      ApiError e;
      e.status = 405;
      e.message = "method " + req.method + " is not allowed on " + p + " (use " + allow + ")";
      HttpResponse r = ErrorResponse(e);
      r.headers.emplace_back("Allow", allow);
      return r;
    };
    if (p == "/health") return only(get, "GET").value_or(JsonResponse(200, {{"status", "ok"}}));
    if (p == "/ready") {
      if (auto r = only(get, "GET")) return *r;
      return Ready();
    }
    if (p == "/metrics") {
      if (auto r = only(get, "GET")) return *r;
      return MetricsResponse();
    }
    const bool generation = p == "/v1/completions" || p == "/v1/chat/completions";
    const bool known = generation || p == "/v1/models" || p.rfind("/v1/models/", 0) == 0 || p == "/tokenize" ||
                       p == "/detokenize";
    if (!known) return ErrorResponse(ApiError::NotFound("no route for " + req.method + " " + p, "unknown_route"));
    const bool post_route = generation || p == "/tokenize" || p == "/detokenize";
    if (auto r = only(post_route ? post : get, post_route ? "POST" : "GET"))
      return *r;
    const std::string auth = req.Header("authorization");
    if (auto a = ctx_->keys.Authenticate(auth); std::holds_alternative<ApiError>(a)) {
      ctx_->metrics.CountRejection("auth");
      return ErrorResponse(std::get<ApiError>(a));
    }
    if (!ctx_->attached.load(std::memory_order_acquire)) {
      ctx_->metrics.CountRejection("not_ready");
      return ErrorResponse(ApiError::Unavailable("the model is still loading", 5, "model_loading"));
    }
    if (p == "/v1/models") return Models("");
    if (p.rfind("/v1/models/", 0) == 0) return Models(p.substr(11));
    auto parsed = ParseJsonBody(req.body);
    if (auto* e = std::get_if<ApiError>(&parsed)) return ErrorResponse(*e);
    const Json& body = std::get<Json>(parsed);
    if (p == "/tokenize") return Tokenize(body);
    if (p == "/detokenize") return Detokenize(body);
    if (ctx_->State() != ServerState::kReady) {
      const bool draining = ctx_->State() == ServerState::kDraining;
      ctx_->metrics.CountRejection(draining ? "draining" : "not_ready");
      return ErrorResponse(draining ? ApiError::Unavailable("the server is draining (shutting down)", 10, "draining")
                                    : ApiError::Unavailable("the model is warming up", 2, "model_loading"));
    }
    return p == "/v1/completions" ? Completions(body, auth, endpoint) : Chat(body, auth, endpoint);
  }

  HttpResponse Ready() {
    const ServerState s = ctx_->State();
    if (s == ServerState::kReady) return JsonResponse(200, {{"status", "ready"}});
    HttpResponse r = JsonResponse(503, {{"status", s == ServerState::kDraining ? "draining" : "loading"}});
    r.headers.emplace_back("Retry-After", s == ServerState::kDraining ? "10" : "2");
    return r;
  }

  HttpResponse MetricsResponse() {
    EngineStats es;
    if (ctx_->attached.load(std::memory_order_acquire)) es = ctx_->model.engine->stats();
    ServerGauges g;
    g.http_connections = ctx_->http ? ctx_->http->num_connections() : 0;
    g.requests_queued = ctx_->queued.load();
    g.ready = ctx_->State() == ServerState::kReady;
    g.draining = ctx_->State() == ServerState::kDraining;
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = ctx_->metrics.Render(es, g);
    return r;
  }

  std::optional<ApiError> CheckModel(const std::string& model) {
    if (model.empty() || model == ctx_->opt.served_model_name) return std::nullopt;
    ApiError e = ApiError::NotFound("the model '" + model + "' does not exist (this server serves '" +
                                        ctx_->opt.served_model_name + "')",
                                    "model_not_found");
    e.param = "model";
    return e;
  }

  Json ModelCard() const {
    return {{"id", ctx_->opt.served_model_name}, {"object", "model"}, {"created", created_},
            {"owned_by", "tide"}, {"root", ctx_->model.path}, {"parent", nullptr},
            {"max_model_len", ctx_->model.max_model_len}};
  }

  HttpResponse Models(const std::string& id) {
    if (id.empty()) return JsonResponse(200, {{"object", "list"}, {"data", Json::array({ModelCard()})}});
    if (auto e = CheckModel(id)) return ErrorResponse(*e);
    return JsonResponse(200, ModelCard());
  }

  // Renders messages with the chat template and tokenizes the text.
  std::variant<std::vector<int32_t>, ApiError> RenderChat(const Json& messages, const Json& tools, const Json& kwargs,
                                                          bool add_generation_prompt, bool continue_final,
                                                          bool add_special_tokens) {
    const Tokenizer& tok = *ctx_->model.tokenizer;
    Json ctx = jinja::MakeChatContext(messages, tools, add_generation_prompt, tok.bos_token(), tok.eos_token(), kwargs);
    tide::Result<std::string> text = ctx_->chat_template->Render(ctx);
    if (!text.ok()) return ApiError::BadRequest("cannot apply the chat template: " + text.status().message(), "messages");
    std::string prompt = std::move(*text);
    if (continue_final) {
      // Cut what the template wrote after the last message (its end-of-turn), so the
      // model continues that message.
      const Json& last = messages.back();
      if (last.contains("content") && last["content"].is_string()) {
        const std::string content = last["content"].get<std::string>();
        const size_t at = content.empty() ? std::string::npos : prompt.rfind(content);
        if (at != std::string::npos) prompt.resize(at + content.size());
      }
    }
    tide::Result<std::vector<int32_t>> ids = tok.Encode(prompt, add_special_tokens);
    if (!ids.ok()) return ApiError::BadRequest(ids.status().message(), "messages");
    return std::move(*ids);
  }

  HttpResponse Tokenize(const Json& body) {
    auto parsed = ParseTokenizeRequest(body, ctx_->opt.limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return ErrorResponse(*e);
    const TokenizeRequest& r = std::get<TokenizeRequest>(parsed);
    if (auto e = CheckModel(r.model)) return ErrorResponse(*e);
    std::vector<int32_t> ids;
    if (r.prompt) {
      tide::Result<std::vector<int32_t>> enc = ctx_->model.tokenizer->Encode(*r.prompt, r.add_special_tokens);
      if (!enc.ok()) return ErrorResponse(ApiError::BadRequest(enc.status().message(), "prompt"));
      ids = std::move(*enc);
    } else {
      auto rendered = RenderChat(r.messages, r.tools, r.chat_template_kwargs, r.add_generation_prompt,
                                 /*continue_final=*/false, r.add_special_tokens);
      if (auto* e = std::get_if<ApiError>(&rendered)) return ErrorResponse(*e);
      ids = std::move(std::get<std::vector<int32_t>>(rendered));
    }
    Json strs = nullptr;
    if (r.return_token_strs) {
      strs = Json::array();
      for (int32_t id : ids) strs.push_back(ctx_->model.tokenizer->IdToToken(id));
    }
    return JsonResponse(200, {{"count", ids.size()}, {"max_model_len", ctx_->model.max_model_len}, {"tokens", ids},
                              {"token_strs", strs}});
  }

  HttpResponse Detokenize(const Json& body) {
    auto parsed = ParseDetokenizeRequest(body);
    if (auto* e = std::get_if<ApiError>(&parsed)) return ErrorResponse(*e);
    const DetokenizeRequest& r = std::get<DetokenizeRequest>(parsed);
    if (auto e = CheckModel(r.model)) return ErrorResponse(*e);
    tide::Result<std::string> text = ctx_->model.tokenizer->Decode(r.tokens, /*skip_special_tokens=*/false);
    if (!text.ok()) return ErrorResponse(ApiError::BadRequest(text.status().message(), "tokens"));
    return JsonResponse(200, {{"prompt", *text}});
  }

  // Context-length check and the default max_tokens. `chat` changes the default (the
  // whole remaining context, as vLLM) and the wording.
  std::optional<ApiError> FitContext(GenerationParams* p, const std::vector<std::vector<int32_t>>& prompts, bool chat) {
    const int64_t max_len = ctx_->model.max_model_len;
    const char* what = chat ? "messages" : "prompt";
    int64_t longest = 0;
    for (const auto& ids : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()));
    for (const auto& ids : prompts)
      if (ids.empty()) return ApiError::BadRequest(std::string("the ") + what + " is empty after tokenization", what);
    auto too_long = [&](int64_t requested, int64_t completion, const char* param) {
      ApiError e = ApiError::BadRequest(
          "This model's maximum context length is " + std::to_string(max_len) + " tokens. However, you requested " +
              std::to_string(requested) + " tokens (" + std::to_string(longest) + " in the " + what + ", " +
              std::to_string(completion) + " in the completion). Please reduce the length of the " + what +
              " or completion.",
          param);
      e.code = "context_length_exceeded";
      return e;
    };
    if (longest >= max_len) return too_long(longest + (p->max_tokens_set ? p->sampling.max_tokens : 1),
                                             p->max_tokens_set ? p->sampling.max_tokens : 1, what);
    if (p->max_tokens_set) {
      if (longest + p->sampling.max_tokens > max_len)
        return too_long(longest + p->sampling.max_tokens, p->sampling.max_tokens, chat ? "max_completion_tokens" : "max_tokens");
    } else {
      const int64_t room = max_len - longest;
      p->sampling.max_tokens = static_cast<int>(chat ? room : std::min<int64_t>(16, room));
    }
    if (p->sampling.min_tokens > p->sampling.max_tokens)
      return ApiError::BadRequest("'min_tokens' (" + std::to_string(p->sampling.min_tokens) + ") exceeds max_tokens (" +
                                      std::to_string(p->sampling.max_tokens) + ")",
                                  "min_tokens");
    if (Status s = p->sampling.Validate(); !s.ok()) return ApiError::BadRequest(s.message());
    return std::nullopt;
  }

  // Quotas (429) and admission control (503), then the engine.
  HandlerResult Admit(GenerationSpec spec, const std::string& auth) {
    int64_t prompt_tokens = 0;
    for (const auto& ids : spec.prompts) prompt_tokens += static_cast<int64_t>(ids.size());
    const int64_t charge = prompt_tokens + static_cast<int64_t>(spec.params.sampling.max_tokens) *
                                               spec.params.sampling.n * static_cast<int64_t>(spec.prompts.size());
    auto lease = ctx_->keys.Admit(auth, charge);
    if (auto* e = std::get_if<ApiError>(&lease)) {
      ctx_->metrics.CountRejection(e->status == 401 ? "auth" : e->code == "concurrency_limit_exceeded" ? "concurrency"
                                                                                                        : "rate_limit");
      return ErrorResponse(*e);
    }
    spec.lease = std::get<std::shared_ptr<KeyLease>>(std::move(lease));
    const int64_t queued = ctx_->queued.load();
    if (queued + static_cast<int64_t>(spec.prompts.size()) > ctx_->opt.max_waiting) {
      ctx_->metrics.CountRejection("max_waiting");
      return ErrorResponse(ApiError::Unavailable("the server is overloaded: " + std::to_string(queued) +
                                                     " requests are waiting (--max-waiting " +
                                                     std::to_string(ctx_->opt.max_waiting) + ")",
                                                 1, "server_overloaded"));
    }
    if (ctx_->opt.max_queue_time_s > 0) {
      // Predicted wait: the prompt tokens queued ahead (and ours) at the prefill rate
      // measured so far. No prediction before the first measured prefill.
      const EngineStats es = ctx_->model.engine->stats();
      if (es.prefill_step_seconds > 0.01 && es.num_prompt_tokens_computed > 0) {
        const double rate = static_cast<double>(es.num_prompt_tokens_computed) / es.prefill_step_seconds;
        const double wait = static_cast<double>(ctx_->queued_prompt_tokens.load() + prompt_tokens) / rate;
        if (wait > ctx_->opt.max_queue_time_s) {
          ctx_->metrics.CountRejection("queue_time");
          char msg[160];
          std::snprintf(msg, sizeof(msg), "the server is overloaded: predicted queue time %.1f s exceeds --max-queue-time %.1f s",
                        wait, ctx_->opt.max_queue_time_s);
          return ErrorResponse(ApiError::Unavailable(msg, std::max(1, static_cast<int>(std::ceil(wait - ctx_->opt.max_queue_time_s))),
                                                     "server_overloaded"));
        }
      }
    }
    auto started = StartGeneration(ctx_, std::move(spec));
    if (auto* e = std::get_if<ApiError>(&started)) return ErrorResponse(*e);
    return std::move(std::get<std::unique_ptr<AsyncResponse>>(started));
  }

  HandlerResult Completions(const Json& body, const std::string& auth, const std::string& endpoint) {
    auto parsed = ParseCompletionRequest(body, ctx_->opt.limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return ErrorResponse(*e);
    CompletionRequest& r = std::get<CompletionRequest>(parsed);
    if (auto e = CheckModel(r.params.model)) return ErrorResponse(*e);
    GenerationSpec spec;
    spec.id = ctx_->NewId("cmpl-");
    spec.created = UnixNow();
    spec.endpoint = endpoint;
    const Tokenizer& tok = *ctx_->model.tokenizer;
    for (Prompt& pr : r.prompts) {
      std::vector<int32_t> ids;
      if (pr.text) {
        tide::Result<std::vector<int32_t>> enc = tok.Encode(*pr.text, r.params.add_special_tokens);
        if (!enc.ok()) return ErrorResponse(ApiError::BadRequest(enc.status().message(), "prompt"));
        ids = std::move(*enc);
      } else {
        ids = std::move(pr.ids);
      }
      if (r.params.echo) {
        if (pr.text) {
          spec.echo_texts.push_back(*pr.text);
        } else {
          tide::Result<std::string> t = tok.Decode(ids, /*skip_special_tokens=*/false);
          if (!t.ok()) return ErrorResponse(ApiError::BadRequest(t.status().message(), "prompt"));
          spec.echo_texts.push_back(*t);
        }
      }
      spec.prompts.push_back(std::move(ids));
    }
    if (auto e = FitContext(&r.params, spec.prompts, /*chat=*/false)) return ErrorResponse(*e);
    spec.params = std::move(r.params);
    return Admit(std::move(spec), auth);
  }

  // Which parser reads this request's reply for tool calls: none without tools or with
  // tool_choice "none"; "auto" (also when absent) only with --enable-auto-tool-choice.
  ToolParser ToolParserFor(const ChatRequest& r) const {
    if (r.tools.is_null() || ctx_->opt.tool_parser == ToolParser::kNone) return ToolParser::kNone;
    const bool is_auto = r.tool_choice.is_null() || r.tool_choice == "auto";
    if (r.tool_choice == "none" || (is_auto && !ctx_->opt.auto_tool_choice)) return ToolParser::kNone;
    return ctx_->opt.tool_parser;
  }

  HandlerResult Chat(const Json& body, const std::string& auth, const std::string& endpoint) {
    auto parsed = ParseChatRequest(body, ctx_->opt.limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return ErrorResponse(*e);
    ChatRequest& r = std::get<ChatRequest>(parsed);
    if (auto e = CheckModel(r.params.model)) return ErrorResponse(*e);
    auto rendered = RenderChat(r.messages, r.tools, r.chat_template_kwargs, r.add_generation_prompt,
                               r.continue_final_message, r.params.add_special_tokens);
    if (auto* e = std::get_if<ApiError>(&rendered)) return ErrorResponse(*e);
    GenerationSpec spec;
    spec.chat = true;
    spec.id = ctx_->NewId("chatcmpl-");
    spec.created = UnixNow();
    spec.endpoint = endpoint;
    spec.tool_parser = ToolParserFor(r);
    spec.prompts.push_back(std::move(std::get<std::vector<int32_t>>(rendered)));
    if (auto e = FitContext(&r.params, spec.prompts, /*chat=*/true)) return ErrorResponse(*e);
    spec.params = std::move(r.params);
    return Admit(std::move(spec), auth);
  }

  std::shared_ptr<Server::Context> ctx_;
  const int64_t created_ = UnixNow();
};

}  // namespace

// ---- DeadlineWatcher -------------------------------------------------------------------

DeadlineWatcher::DeadlineWatcher() : thread_([this] { Loop(); }) {}

DeadlineWatcher::~DeadlineWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t DeadlineWatcher::Add(std::chrono::steady_clock::time_point when, std::function<void()> fn) {
  uint64_t ticket = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ticket = next_++;
    due_.emplace(std::make_pair(when, ticket), std::move(fn));
  }
  cv_.notify_all();
  return ticket;
}

void DeadlineWatcher::Remove(uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = due_.begin(); it != due_.end(); ++it) {
    if (it->first.second == ticket) {
      due_.erase(it);
      return;
    }
  }
}

void DeadlineWatcher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (due_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto when = due_.begin()->first.first;
    if (std::chrono::steady_clock::now() < when) {
      cv_.wait_until(lock, when);
      continue;
    }
    std::function<void()> fn = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    lock.unlock();
    fn();
    lock.lock();
  }
}

// ---- Server ----------------------------------------------------------------------------

std::string Server::Context::NewId(const char* prefix) {
  static const uint64_t salt = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  std::mt19937_64 mix(salt ^ (next_id.fetch_add(1) * 0x9E3779B97F4A7C15ull));
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%08llx", static_cast<unsigned long long>(mix()),
                static_cast<unsigned long long>(mix() & 0xffffffffu));
  return prefix + std::string(buf);
}

Server::Server(ServerOptions options) : ctx_(std::make_shared<Context>(std::move(options))) {
  auto router = std::make_shared<Router>(ctx_);
  http_ = std::make_unique<HttpServer>(ctx_->opt.http, [router](HttpRequest&& req) { return router->Handle(std::move(req)); });
  ctx_->http = http_.get();
}

Server::~Server() { Stop(); }

Status Server::Start() { return http_->Start(); }

int Server::port() const { return http_->port(); }

Status Server::Attach(const ServedModel& model) {
  if (!model.engine || !model.tokenizer) return InvalidArgument("the server needs an engine and a tokenizer");
  const std::string& source = !ctx_->opt.chat_template.empty()      ? ctx_->opt.chat_template
                              : !model.tokenizer->chat_template().empty() ? model.tokenizer->chat_template()
                                                                          : std::string(kFallbackChatTemplate);
  tide::Result<std::unique_ptr<jinja::Template>> t = jinja::Template::Parse(source);
  if (!t.ok()) return t.status().WithContext("chat template");
  ctx_->chat_template = std::move(*t);
  ctx_->model = model;
  ctx_->attached.store(true, std::memory_order_release);
  return OkStatus();
}

void Server::SetReady() {
  int loading = static_cast<int>(ServerState::kLoading);
  ctx_->state.compare_exchange_strong(loading, static_cast<int>(ServerState::kReady));
}

void Server::BeginDrain() { ctx_->state.store(static_cast<int>(ServerState::kDraining)); }

bool Server::draining() const { return ctx_->State() == ServerState::kDraining; }

bool Server::WaitIdle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (http_->num_active_requests() == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Server::Stop() {
  if (http_) http_->Stop();
}

}  // namespace tide::server
