// Server: the OpenAI-compatible API over one Engine (docs/api.md). It owns the HTTP
// front end, the routes, authentication and quotas, admission control, metrics and the
// serving state machine:
//
//   kLoading --Attach + SetReady--> kReady --BeginDrain--> kDraining
//
// /health answers 200 in every state (the process is alive); /ready answers 200 only in
// kReady; generation requests are refused with 503 + Retry-After outside kReady.
//
// Thread-safety: Start, Attach, SetReady, BeginDrain, WaitIdle and Stop are called by
// one controlling thread (tide serve's main thread); requests run on the io threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "server/api_keys.h"
#include "server/http_server.h"
#include "server/protocol.h"
#include "server/tool_calls.h"

namespace tide {
class Engine;
class Tokenizer;
}  // namespace tide

namespace tide::server {

struct ServerOptions {
  HttpServerOptions http;
  std::string served_model_name = "tide";  // what /v1/models lists and requests name
  // ---- requests
  RequestLimits limits;
  std::chrono::milliseconds request_timeout{600'000};  // non-streaming; 0 = none
  std::string chat_template;  // template text overriding the model's ("" = the model's)
  // ---- tool calls (vLLM's --tool-call-parser / --enable-auto-tool-choice): chat replies
  // to requests with tools are parsed for calls when tool_choice is "required" or a named
  // function, and also for "auto" (the default) when auto_tool_choice is on.
  ToolParser tool_parser = ToolParser::kNone;
  bool auto_tool_choice = false;
  // ---- admission
  int64_t max_waiting = 1024;     // admitted requests with no output yet; beyond -> 503
  double max_queue_time_s = 0;    // predicted queue wait above this -> 503; 0 = off
  std::vector<ApiKey> api_keys;   // empty = no authentication
};

// The model as the server sees it. REQUIRES: engine and tokenizer outlive the Server's
// Stop().
struct ServedModel {
  Engine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;  // required: the API speaks text
  int64_t max_model_len = 0;
  std::string path;                      // /v1/models "root"
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts HTTP in kLoading (health 200, ready 503). Errors as HttpServer::Start.
  [[nodiscard]] Status Start();
  [[nodiscard]] int port() const;
  // Serves `model` from now on (still not ready). kInvalidArgument when the chat
  // template does not parse.
  [[nodiscard]] Status Attach(const ServedModel& model);
  // kReady once the caller has warmed the engine up.
  void SetReady();
  // kDraining: /ready 503, new generation requests 503; running ones carry on.
  void BeginDrain();
  [[nodiscard]] bool draining() const;
  // Waits until no request is in flight (responses fully written) or `timeout` passes;
  // true when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // Closes every connection (aborting what runs) and joins the io threads. Idempotent.
  void Stop();

  struct Context;  // shared with in-flight responses (server_context.h)

 private:
  std::shared_ptr<Context> ctx_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace tide::server
