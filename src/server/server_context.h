// Internal to server/: the state every route and every in-flight generation shares.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "server/api_keys.h"
#include "server/metrics.h"
#include "server/server.h"
#include "tokenizer/jinja/jinja.h"

namespace tide::server {

enum class ServerState : int { kLoading = 0, kReady = 1, kDraining = 2 };

// Runs callbacks at deadlines on one background thread (non-streaming request timeouts).
// Callbacks must be cheap and must not call back into the watcher.
class DeadlineWatcher {
 public:
  DeadlineWatcher();
  ~DeadlineWatcher();
  DeadlineWatcher(const DeadlineWatcher&) = delete;
  DeadlineWatcher& operator=(const DeadlineWatcher&) = delete;
  // Returns a ticket for Remove.
  uint64_t Add(std::chrono::steady_clock::time_point when, std::function<void()> fn);
  void Remove(uint64_t ticket);

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<std::chrono::steady_clock::time_point, uint64_t>, std::function<void()>> due_;  // GUARDED_BY(mu_)
  uint64_t next_ = 1;                                                                               // GUARDED_BY(mu_)
  bool stop_ = false;                                                                               // GUARDED_BY(mu_)
  std::thread thread_;
};

struct Server::Context {
  explicit Context(ServerOptions o)
      : opt(std::move(o)), metrics(opt.served_model_name), keys(opt.api_keys) {}

  const ServerOptions opt;
  // Written once by Attach before `attached` is set (release); read after (acquire).
  ServedModel model;
  std::unique_ptr<jinja::Template> chat_template;
  std::atomic<bool> attached{false};
  std::atomic<int> state{static_cast<int>(ServerState::kLoading)};

  Metrics metrics;
  ApiKeys keys;
  DeadlineWatcher deadlines;
  HttpServer* http = nullptr;  // for the connection gauge

  // Admission queue: admitted engine requests that have produced no output yet.
  std::atomic<int64_t> queued{0};
  std::atomic<int64_t> queued_prompt_tokens{0};
  std::atomic<uint64_t> next_id{0};

  [[nodiscard]] ServerState State() const { return static_cast<ServerState>(state.load()); }
  // "cmpl-<24 hex>": unique per process run.
  std::string NewId(const char* prefix);
};

}  // namespace tide::server
