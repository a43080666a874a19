// A fake OpenAI-compatible server for `tide bench serve` tests: /v1/completions and
// /v1/chat/completions with streaming, and deterministic token timing (token k of a
// request is sent at t_request + ttft + k * itl, absolute, so jitter never accumulates).
// Fault modes answer HTTP 500 or drop the connection mid-stream on every k-th request.
// Listens on 127.0.0.1 only, on an ephemeral port. Plain POSIX sockets, a thread per
// connection (tests open at most a few hundred).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/status.h"

namespace tide::bench {

struct FakeServerOptions {
  double ttft_ms = 50;
  double itl_ms = 10;
  int fail_every = 0;  // request n (1-based) answers 500 when n % fail_every == 0
  int drop_every = 0;  // request n closes the connection after half its tokens
  bool usage = true;   // honour stream_options.include_usage
  bool stream = true;  // false: ignore "stream" and answer one JSON body
  int port = 0;        // 0 = ephemeral
  // Not deterministic, for examples only: each gap grows by this much per stream open at
  // the time, as a batching engine slows down under load.
  double itl_ms_per_stream = 0;
};

class FakeOpenAiServer {
 public:
  // Errors: kUnavailable when the socket cannot be bound.
  static Result<std::unique_ptr<FakeOpenAiServer>> Start(const FakeServerOptions& opts);
  ~FakeOpenAiServer();  // stops accepting, cuts open connections, joins every thread
  FakeOpenAiServer(const FakeOpenAiServer&) = delete;
  FakeOpenAiServer& operator=(const FakeOpenAiServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int64_t num_requests() const { return num_requests_.load(); }
  // Largest prompt seen, in bytes (completions prompt or the sum of chat contents).
  [[nodiscard]] int64_t max_prompt_bytes() const { return max_prompt_bytes_.load(); }

 private:
  explicit FakeOpenAiServer(const FakeServerOptions& o) : opts_(o) {}
  void AcceptLoop();
  void Serve(int fd);

  FakeServerOptions opts_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> num_requests_{0};
  std::atomic<int64_t> max_prompt_bytes_{0};
  std::atomic<int> num_streams_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;  // guarded by mu_
};

}  // namespace tide::bench
