// HttpServer: HTTP/1.1 on Boost.Beast/Asio, knowing nothing of LLMs. A few io threads
// serve every connection (keep-alive, one strand per connection); a handler turns each
// request into either a complete response or an AsyncResponse that produces its head and
// body later (generation, SSE streaming) and wakes the connection when it has more.
// Nothing here blocks: the io threads never wait on the engine.
//
// Limits: request bodies over max_body_bytes get 413, headers over max_header_bytes 431,
// a request not fully read within read_timeout (a slow or half-sent request) closes the
// connection, as does an idle keep-alive connection after idle_timeout or a client that
// does not take a write within write_timeout.
//
// Thread-safety: Start/Stop/StopAccepting from one controlling thread; num_connections
// from any thread. Handlers run on io threads, concurrently for distinct connections.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"

namespace tide::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                 // 0 = an ephemeral port (see HttpServer::port())
  int io_threads = 2;
  int64_t max_body_bytes = 8 << 20;
  int64_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds read_timeout{30'000};   // from a request's first byte to its last
  std::chrono::milliseconds idle_timeout{60'000};   // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{60'000};  // one write to a slow reader
};

struct HttpRequest {
  std::string method;   // "GET", "POST", ...
  std::string target;   // path and query, as sent
  std::string path;     // target without the query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The value of the first header named `name` (lower-case), or "" if absent.
  [[nodiscard]] std::string Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
};

// A response produced over time. The connection calls Start once, then Poll on its
// strand whenever `wake` was called (and once right after Start); Abort when the client
// has gone or the connection is closing. Implementations must make `wake` safe to call
// from any thread, any number of times, even after the connection is gone.
class AsyncResponse {
 public:
  virtual ~AsyncResponse() = default;
  struct Part {
    // The head: set exactly once, on the first Part that has anything. When `streaming`,
    // head->body is ignored and the body follows as chunks (chunked transfer encoding).
    std::unique_ptr<HttpResponse> head;
    bool streaming = false;
    std::string data;  // the next body bytes (streaming only)
    bool done = false;  // nothing follows
  };
  virtual void Start(std::function<void()> wake) = 0;
  // Moves what is ready into *out (which arrives empty); leave it empty when nothing is.
  virtual void Poll(Part* out) = 0;
  // Idempotent; no Poll follows.
  virtual void Abort() = 0;
};

using HandlerResult = std::variant<HttpResponse, std::unique_ptr<AsyncResponse>>;
using HttpHandler = std::function<HandlerResult(HttpRequest&& request)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the io threads. kInvalidArgument for a bad host, kUnavailable when
  // the address cannot be bound (in use, no permission). Called once.
  [[nodiscard]] Status Start();
  // The bound port (after Start).
  [[nodiscard]] int port() const { return port_; }
  // Closes the listening socket; open connections carry on.
  void StopAccepting();
  // Closes every connection (their AsyncResponses are aborted) and joins the io threads.
  // Idempotent.
  void Stop();
  [[nodiscard]] int64_t num_connections() const;
  // Requests read whose response has not been fully written yet (drain waits for 0).
  [[nodiscard]] int64_t num_active_requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// "Bad Request", "Not Found", ... for a status code ("" for unknown codes).
const char* HttpReasonPhrase(int status);

}  // namespace tide::server
