// Engine: the serving engine. One loop thread owns an EngineCore and everything in it;
// other threads talk to it only through the request queue (Submit, Cancel) and read
// results from per-request RequestStreams. See docs/engine_contract.md.
//
// Thread-safety: every public method may be called from any thread, concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "engine/engine_core.h"
#include "engine/request.h"

namespace tide {

class Tokenizer;

// The outputs of one request, in order. Filled by the engine thread, read by one
// consumer thread.
class RequestStream {
 public:
  explicit RequestStream(std::string id, int num_completions) : id_(std::move(id)), unfinished_(num_completions) {}
  [[nodiscard]] const std::string& id() const { return id_; }
  // Blocks until the next output; std::nullopt once every completion has finished and
  // every output was read.
  std::optional<RequestOutput> Next();
  // Next without blocking: std::nullopt when nothing is ready now.
  std::optional<RequestOutput> TryNext();

  // For the engine thread: appends one output (a final one ends its completion), then
  // calls the notify hook, if any, outside the lock.
  void Push(RequestOutput out);
  // Optional wake-up for consumers that never block in Next() (the HTTP server's event
  // loop): `notify` runs on the engine thread after every Push, so it must be cheap and
  // thread-safe (post a task, set a flag). If outputs are already queued when it is set,
  // it is also called once at once, so none is missed.
  void SetNotify(std::function<void()> notify);
  [[nodiscard]] bool Done() const;
  [[nodiscard]] int unfinished() const;  // completions not yet finished

 private:
  const std::string id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;  // GUARDED_BY(mu_)
  int unfinished_;                   // GUARDED_BY(mu_)
  std::function<void()> notify_;     // GUARDED_BY(mu_)
};

class Engine {
 public:
  // Builds the EngineCore (same errors as EngineCore::Create) and starts the loop thread.
  static Result<std::unique_ptr<Engine>> Create(ModelRunner& runner, const Tokenizer* tokenizer,
                                                const EngineOptions& options);
  // Shutdown(), then joins the loop thread.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; never blocks on the engine thread's work. Errors (nothing is
  // queued then): kInvalidArgument (EngineCore::ValidateRequest), kAlreadyExists (the id
  // is live), kResourceExhausted (max_pending_requests live requests: retry later),
  // kUnavailable (shutting down).
  Result<std::shared_ptr<RequestStream>> Submit(Request request);
  // Ends the request with FinishReason::kAbort; its blocks are freed before the next
  // step runs. Returns at once; unknown or finished ids are ignored.
  void Cancel(const std::string& id);
  // A snapshot published by the engine thread after each step.
  [[nodiscard]] EngineStats stats() const;
  [[nodiscard]] std::string KvSummary() const { return kv_summary_; }
  // Stops accepting requests, aborts every live one (their streams end with kAbort) and
  // stops the loop. Idempotent.
  void Shutdown();

 private:
  explicit Engine(std::unique_ptr<EngineCore> core, int64_t max_pending);
  void Loop();

  std::unique_ptr<EngineCore> core_;  // engine thread only (ValidateRequest: any thread)
  const int64_t max_pending_;
  const std::string kv_summary_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Request, std::shared_ptr<RequestStream>>> inbox_;  // GUARDED_BY(mu_)
  std::vector<std::string> cancels_;                                      // GUARDED_BY(mu_)
  std::set<std::string> live_ids_;                                        // GUARDED_BY(mu_)
  bool stopping_ = false;                                                 // GUARDED_BY(mu_)
  EngineStats stats_;                                                     // GUARDED_BY(mu_)

  std::unordered_map<std::string, std::shared_ptr<RequestStream>> streams_;  // engine thread only
  std::thread thread_;
};

}  // namespace tide
