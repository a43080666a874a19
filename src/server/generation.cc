#include "server/generation.h"

#include <algorithm>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace tide::server {
namespace {

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string Sse(const Json& j) { return "data: " + Dump(j) + "\n\n"; }

// The state the deadline watcher may touch after the response object is gone.
struct Cancelable {
  Engine* engine = nullptr;
  std::vector<std::string> ids;
  std::atomic<bool> timed_out{false};
  void CancelAll() {
    for (const std::string& id : ids) engine->Cancel(id);
  }
};

class GenerationResponse final : public AsyncResponse {
 public:
  GenerationResponse(std::shared_ptr<Server::Context> ctx, GenerationSpec spec)
      : ctx_(std::move(ctx)), spec_(std::move(spec)), n_(spec_.params.sampling.n) {
    cancel_ = std::make_shared<Cancelable>();
    cancel_->engine = ctx_->model.engine;
    choices_.resize(spec_.prompts.size() * static_cast<size_t>(n_));
  }

  ~GenerationResponse() override {
    if (ticket_) ctx_->deadlines.Remove(ticket_);
    if (!finished_) Abort();
  }

  // Submits every prompt; on a refusal cancels what was submitted.
  std::optional<ApiError> Submit() {
    Engine& engine = *ctx_->model.engine;
    for (size_t p = 0; p < spec_.prompts.size(); ++p) {
      Request r;
      r.id = spec_.prompts.size() == 1 ? spec_.id : spec_.id + "-" + std::to_string(p);
      r.prompt = spec_.prompts[p];
      r.sampling = spec_.params.sampling;
      r.priority = spec_.params.priority;
      const int64_t prompt_tokens = static_cast<int64_t>(r.prompt.size());
      Result<std::shared_ptr<RequestStream>> stream = engine.Submit(std::move(r));
      if (!stream.ok()) {
        const Status& s = stream.status();
        ApiError e = ApiError::FromStatus(s, s.code() == StatusCode::kInvalidArgument ? (spec_.chat ? "messages" : "prompt") : "");
        if (s.code() == StatusCode::kResourceExhausted) {
          e = ApiError::Unavailable("the engine is full: " + s.message(), 1, "engine_full");
          ctx_->metrics.CountRejection("engine_full");
        }
        finished_ = true;
        if (spec_.lease) spec_.lease->set_used_tokens(0);  // refused: refund the whole charge
        ReleaseUnseen();
        cancel_->CancelAll();
        return e;
      }
      cancel_->ids.push_back(spec_.prompts.size() == 1 ? spec_.id : spec_.id + "-" + std::to_string(p));
      subs_.push_back({std::move(*stream), prompt_tokens});
      ctx_->queued += 1;
      ctx_->queued_prompt_tokens += prompt_tokens;
    }
    return std::nullopt;
  }

  void Start(std::function<void()> wake) override {
    if (!spec_.params.stream && ctx_->opt.request_timeout.count() > 0) {
      std::weak_ptr<Cancelable> weak = cancel_;
      ticket_ = ctx_->deadlines.Add(std::chrono::steady_clock::now() + ctx_->opt.request_timeout, [weak] {
        if (auto c = weak.lock()) {
          c->timed_out = true;
          c->CancelAll();
        }
      });
    }
    for (Sub& s : subs_) s.stream->SetNotify(wake);
  }

  void Poll(Part* out) override {
    if (finished_) return;
    if (spec_.params.stream && !head_sent_) {
      head_sent_ = true;
      out->head = std::make_unique<HttpResponse>();
      out->head->content_type = "text/event-stream";
      out->head->headers.emplace_back("Cache-Control", "no-cache");
      out->streaming = true;
      ctx_->metrics.CountHttp(spec_.endpoint, 200);
    }
    for (size_t i = 0; i < subs_.size(); ++i) {
      Sub& s = subs_[i];
      while (!s.done) {
        std::optional<RequestOutput> o = s.stream->TryNext();
        if (!o) break;
        OnOutput(i, std::move(*o), out);
      }
    }
    if (std::all_of(subs_.begin(), subs_.end(), [](const Sub& s) { return s.done; })) Finish(out);
  }

  void Abort() override {
    if (finished_) return;
    finished_ = true;
    cancel_->CancelAll();
    ReleaseUnseen();
    int64_t unfinished = 0;
    for (const Choice& c : choices_) unfinished += c.finish == FinishReason::kNone ? 1 : 0;
    ctx_->metrics.CountAborted(unfinished);
    // nginx's "client closed request": the client never saw a status.
    ctx_->metrics.CountHttp(spec_.endpoint, 499);
  }

 private:
  struct Sub {
    std::shared_ptr<RequestStream> stream;
    int64_t prompt_tokens = 0;
    bool seen_output = false;
    bool done = false;
    int finished_choices = 0;
    int64_t cached_tokens = 0;
    // echo + logprobs: entry i is prompt token i + 1 (the engine's prompt logprobs).
    std::vector<SampleResult> prompt_logprobs = {};
  };
  struct Choice {
    std::string text;
    std::vector<SampleResult> logprobs;
    std::vector<double> times;
    FinishReason finish = FinishReason::kNone;
    int64_t completion_tokens = 0;
    bool started = false;   // streaming: the role / echo chunk went out
    int64_t text_offset = 0;  // completions logprobs: offset of the next token
    bool prompt_logprobs_sent = false;  // echo + logprobs: the prompt's entries went out
    size_t streamed = 0;      // streaming with a tool parser: bytes of text sent as content
    bool streamed_tool_calls = false;  // the tool_calls delta went out: finish_reason "tool_calls"
  };

  // OpenAI's message.tool_calls / delta.tool_calls entries ("index" only in deltas).
  Json ToolCalls(const std::vector<ToolCall>& calls, bool with_index) const {
    return ToolCallsJson(calls, with_index, [this] { return ctx_->NewId("call_"); });
  }

  static bool Blank(const std::string& s) {
    return s.find_first_not_of(" \t\r\n") == std::string::npos;
  }

  void ReleaseUnseen() {
    for (Sub& s : subs_) {
      if (s.seen_output) continue;
      s.seen_output = true;
      ctx_->queued -= 1;
      ctx_->queued_prompt_tokens -= s.prompt_tokens;
    }
  }

  void OnOutput(size_t sub_index, RequestOutput o, Part* out) {
    Sub& s = subs_[sub_index];
    if (!s.seen_output) {
      s.seen_output = true;
      ctx_->queued -= 1;
      ctx_->queued_prompt_tokens -= s.prompt_tokens;
    }
    if (!o.prompt_logprobs.empty()) s.prompt_logprobs = std::move(o.prompt_logprobs);
    const size_t ci = sub_index * static_cast<size_t>(n_) + static_cast<size_t>(o.index);
    Choice& c = choices_[ci];
    std::string delta_text = o.text;
    if (spec_.params.echo && !c.started && !spec_.chat) delta_text = spec_.echo_texts[sub_index] + delta_text;
    c.text += delta_text;
    c.times.insert(c.times.end(), o.token_times.begin(), o.token_times.end());
    const size_t first_lp = c.logprobs.size();
    if (spec_.params.sampling.logprobs)
      for (SampleResult& r : o.logprobs) c.logprobs.push_back(std::move(r));
    if (o.finished()) {
      c.finish = o.finish_reason;
      c.completion_tokens = o.usage.completion_tokens;
      if (o.index == 0) s.cached_tokens = o.usage.cached_prompt_tokens;
      if (!o.status.ok() && error_.message.empty()) error_ = ApiError::FromStatus(o.status);
      ctx_->metrics.ObserveCompletion(o, c.times);
      if (++s.finished_choices == n_) s.done = true;
    }
    if (!spec_.params.stream || !o.status.ok()) return;
    // With a tool parser, text that may be a call is held back; at the end the held text
    // is parsed and goes out as content and/or one tool_calls delta.
    Json tool_calls = nullptr;
    if (spec_.chat && spec_.tool_parser != ToolParser::kNone) {
      if (!o.finished()) {
        const size_t safe = std::max(c.streamed, StreamableContent(spec_.tool_parser, c.text));
        delta_text = c.text.substr(c.streamed, safe - c.streamed);
        c.streamed = safe;
      } else {
        ToolCallParse parse = ParseToolCalls(spec_.tool_parser, c.text);
        delta_text = parse.content.size() > c.streamed ? parse.content.substr(c.streamed) : std::string();
        if (!parse.calls.empty() && Blank(delta_text)) delta_text.clear();
        c.streamed = c.text.size();
        c.streamed_tool_calls = !parse.calls.empty();
        if (!parse.calls.empty()) tool_calls = ToolCalls(parse.calls, /*with_index=*/true);
      }
    }
    // One chunk per delta, skipping deltas that carry nothing a client can see.
    const bool has_lp = spec_.params.sampling.logprobs && first_lp < c.logprobs.size();
    if (spec_.chat && !c.started) {
      out->data += Sse(ChunkHead({{"index", ci}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr},
                                  {"finish_reason", nullptr}}));
    }
    c.started = true;
    if (!tool_calls.is_null()) {
      if (!delta_text.empty())
        out->data += Sse(ChunkHead({{"index", ci}, {"delta", {{"content", delta_text}}}, {"logprobs", nullptr},
                                    {"finish_reason", nullptr}}));
      delta_text.clear();
      out->data += Sse(ChunkHead({{"index", ci}, {"delta", {{"tool_calls", std::move(tool_calls)}}}, {"logprobs", nullptr},
                                  {"finish_reason", nullptr}}));
    }
    if (delta_text.empty() && !has_lp && !o.finished()) return;
    Json choice;
    choice["index"] = ci;
    if (spec_.chat) {
      choice["delta"] = delta_text.empty() ? Json::object() : Json{{"content", delta_text}};
      choice["logprobs"] = has_lp ? ChatLogprobs(c, first_lp) : Json(nullptr);
    } else {
      choice["text"] = delta_text;
      choice["logprobs"] = has_lp ? CompletionLogprobs(ci, first_lp) : Json(nullptr);
    }
    choice["finish_reason"] = !o.finished()           ? Json(nullptr)
                              : c.streamed_tool_calls ? Json("tool_calls")
                                                      : Json(FinishReasonName(o.finish_reason));
    if (!spec_.chat) choice["stop_reason"] = nullptr;
    out->data += Sse(ChunkHead(std::move(choice)));
  }

  Json ChunkHead(Json choice) const {
    Json j;
    j["id"] = spec_.id;
    j["object"] = spec_.chat ? "chat.completion.chunk" : "text_completion";
    j["created"] = spec_.created;
    j["model"] = ctx_->opt.served_model_name;
    j["choices"] = Json::array({std::move(choice)});
    if (spec_.params.include_usage) j["usage"] = nullptr;
    return j;
  }

  std::string TokenString(int32_t id) const {
    Result<std::string> s = ctx_->model.tokenizer->Decode({id}, /*skip_special_tokens=*/false);
    return s.ok() ? *s : "";
  }

  static Json Bytes(const std::string& s) {
    Json b = Json::array();
    for (unsigned char ch : s) b.push_back(static_cast<int>(ch));
    return b;
  }

  // OpenAI chat shape: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
  Json ChatLogprobs(const Choice& c, size_t from) const {
    Json content = Json::array();
    for (size_t i = from; i < c.logprobs.size(); ++i) {
      const SampleResult& r = c.logprobs[i];
      const std::string tok = TokenString(r.token);
      Json top = Json::array();
      for (const TokenLogprob& t : r.top) {
        const std::string ts = TokenString(t.id);
        top.push_back({{"token", ts}, {"logprob", t.logprob}, {"bytes", Bytes(ts)}});
      }
      content.push_back({{"token", tok}, {"logprob", r.logprob}, {"bytes", Bytes(tok)}, {"top_logprobs", std::move(top)}});
    }
    return Json{{"content", std::move(content)}};
  }

  // OpenAI legacy shape: parallel arrays; top_logprobs holds the sampled token too. With
  // echo, the prompt's tokens come first (once per choice): the first with null logprob
  // and null top_logprobs, as OpenAI and vLLM answer.
  Json CompletionLogprobs(size_t ci, size_t from) {
    Choice& c = choices_[ci];
    Json tokens = Json::array(), lps = Json::array(), tops = Json::array(), offsets = Json::array();
    if (spec_.params.echo && !c.prompt_logprobs_sent) {
      c.prompt_logprobs_sent = true;
      const size_t p = ci / static_cast<size_t>(n_);
      const std::vector<int32_t>& prompt = spec_.prompts[p];
      const std::vector<SampleResult>& plp = subs_[p].prompt_logprobs;
      for (size_t i = 0; i < prompt.size(); ++i) {
        const std::string tok = TokenString(prompt[i]);
        tokens.push_back(tok);
        if (i == 0 || i - 1 >= plp.size()) {
          lps.push_back(nullptr);
          tops.push_back(nullptr);
        } else {
          const SampleResult& r = plp[i - 1];
          lps.push_back(r.logprob);
          Json top = Json::object();
          top[tok] = r.logprob;
          for (const TokenLogprob& t : r.top) top[TokenString(t.id)] = t.logprob;
          tops.push_back(std::move(top));
        }
        offsets.push_back(c.text_offset);
        c.text_offset += static_cast<int64_t>(tok.size());
      }
    }
    for (size_t i = from; i < c.logprobs.size(); ++i) {
      const SampleResult& r = c.logprobs[i];
      const std::string tok = TokenString(r.token);
      tokens.push_back(tok);
      lps.push_back(r.logprob);
      Json top = Json::object();
      top[tok] = r.logprob;
      for (const TokenLogprob& t : r.top) top[TokenString(t.id)] = t.logprob;
      tops.push_back(std::move(top));
      offsets.push_back(c.text_offset);
      c.text_offset += static_cast<int64_t>(tok.size());
    }
    return Json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }

  Json UsageJson() const {
    int64_t prompt = 0, completion = 0, cached = 0;
    for (const Sub& s : subs_) {
      prompt += s.prompt_tokens;
      cached += s.cached_tokens;
    }
    for (const Choice& c : choices_) completion += c.completion_tokens;
    if (spec_.lease) spec_.lease->set_used_tokens(prompt + completion);
    return Json{{"prompt_tokens", prompt},
                {"total_tokens", prompt + completion},
                {"completion_tokens", completion},
                {"prompt_tokens_details", {{"cached_tokens", cached}}}};
  }

  void Finish(Part* out) {
    finished_ = true;
    out->done = true;
    if (cancel_->timed_out && !spec_.params.stream) {
      ApiError e;
      e.status = 504;
      e.type = "timeout_error";
      e.code = "request_timeout";
      e.message = "the request did not finish within --request-timeout (" +
                  std::to_string(ctx_->opt.request_timeout.count()) + " ms)";
      ctx_->metrics.CountHttp(spec_.endpoint, e.status);
      out->head = std::make_unique<HttpResponse>(ErrorResponse(e));
      return;
    }
    if (spec_.params.stream) {
      if (!error_.message.empty()) {
        out->data += "data: " + ErrorJson(error_) + "\n\n";
      } else if (spec_.params.include_usage) {
        Json j = ChunkHead(nullptr);
        j["choices"] = Json::array();
        j["usage"] = UsageJson();
        out->data += Sse(j);
      }
      out->data += "data: [DONE]\n\n";
      return;
    }
    if (!error_.message.empty()) {
      ctx_->metrics.CountHttp(spec_.endpoint, error_.status);
      out->head = std::make_unique<HttpResponse>(ErrorResponse(error_));
      return;
    }
    Json j;
    j["id"] = spec_.id;
    j["object"] = spec_.chat ? "chat.completion" : "text_completion";
    j["created"] = spec_.created;
    j["model"] = ctx_->opt.served_model_name;
    Json choices = Json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& c = choices_[i];
      const bool lp = spec_.params.sampling.logprobs;
      Json choice;
      choice["index"] = i;
      const char* finish = FinishReasonName(c.finish);
      if (spec_.chat) {
        choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
        if (spec_.tool_parser != ToolParser::kNone) {
          ToolCallParse parse = ParseToolCalls(spec_.tool_parser, c.text);
          if (!parse.calls.empty()) {
            choice["message"]["content"] = Blank(parse.content) ? Json(nullptr) : Json(parse.content);
            choice["message"]["tool_calls"] = ToolCalls(parse.calls, /*with_index=*/false);
            finish = "tool_calls";
          }
        }
        choice["logprobs"] = lp ? ChatLogprobs(c, 0) : Json(nullptr);
      } else {
        choice["text"] = c.text;
        choice["logprobs"] = lp ? CompletionLogprobs(i, 0) : Json(nullptr);
      }
      choice["finish_reason"] = finish;
      if (!spec_.chat) choice["stop_reason"] = nullptr;
      choices.push_back(std::move(choice));
    }
    j["choices"] = std::move(choices);
    j["usage"] = UsageJson();
    ctx_->metrics.CountHttp(spec_.endpoint, 200);
    out->head = std::make_unique<HttpResponse>();
    out->head->body = Dump(j);
  }

  std::shared_ptr<Server::Context> ctx_;
  GenerationSpec spec_;
  const int n_;
  std::shared_ptr<Cancelable> cancel_;
  std::vector<Sub> subs_;
  std::vector<Choice> choices_;
  ApiError error_;  // message non-empty once an engine error ended a completion
  uint64_t ticket_ = 0;
  bool head_sent_ = false;
  bool finished_ = false;
};

}  // namespace

std::variant<std::unique_ptr<AsyncResponse>, ApiError> StartGeneration(std::shared_ptr<Server::Context> ctx,
                                                                        GenerationSpec spec) {
  auto g = std::make_unique<GenerationResponse>(std::move(ctx), std::move(spec));
  if (std::optional<ApiError> e = g->Submit()) return *e;
  return std::unique_ptr<AsyncResponse>(std::move(g));
}

}  // namespace tide::server
