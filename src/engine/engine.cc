#include "engine/engine.h"

#include "base/check.h"

namespace tide {

std::optional<RequestOutput> RequestStream::Next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || unfinished_ == 0; });
  if (queue_.empty()) return std::nullopt;
  RequestOutput o = std::move(queue_.front());
  queue_.pop_front();
  return o;
}

std::optional<RequestOutput> RequestStream::TryNext() {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty()) return std::nullopt;
  RequestOutput o = std::move(queue_.front());
  queue_.pop_front();
  return o;
}

void RequestStream::Push(RequestOutput out) {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (out.finished()) --unfinished_;
    queue_.push_back(std::move(out));
    notify = notify_;
  }
  cv_.notify_all();
  if (notify) notify();
}

void RequestStream::SetNotify(std::function<void()> notify) {
  bool pending = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify_ = notify;
    pending = !queue_.empty();
  }
  if (pending && notify) notify();
}

int RequestStream::unfinished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unfinished_;
}

bool RequestStream::Done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unfinished_ == 0;
}

Result<std::unique_ptr<Engine>> Engine::Create(ModelRunner& runner, const Tokenizer* tokenizer,
                                               const EngineOptions& options) {
  if (options.max_pending_requests <= 0) return InvalidArgument("max_pending_requests must be > 0");
  ASSIGN_OR_RETURN(std::unique_ptr<EngineCore> core, EngineCore::Create(runner, tokenizer, options));
  return std::unique_ptr<Engine>(new Engine(std::move(core), options.max_pending_requests));
}

Engine::Engine(std::unique_ptr<EngineCore> core, int64_t max_pending)
    : core_(std::move(core)), max_pending_(max_pending), kv_summary_(core_->KvSummary()) {
  stats_ = core_->stats();
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  Shutdown();
  if (thread_.joinable()) thread_.join();
}

void Engine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

Result<std::shared_ptr<RequestStream>> Engine::Submit(Request request) {
  RETURN_IF_ERROR(core_->ValidateRequest(request));  // const, thread-safe
  auto stream = std::make_shared<RequestStream>(request.id, request.sampling.n);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Unavailable("the engine is shutting down");
    if (live_ids_.count(request.id)) return AlreadyExists("request id '" + request.id + "' is already live");
    if (static_cast<int64_t>(live_ids_.size()) >= max_pending_)
      return ResourceExhausted("the engine holds " + std::to_string(max_pending_) + " requests; retry later");
    live_ids_.insert(request.id);
    inbox_.emplace_back(std::move(request), stream);
  }
  cv_.notify_all();
  return stream;
}

void Engine::Cancel(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!live_ids_.count(id)) return;
    cancels_.push_back(id);
  }
  cv_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Engine::Loop() {
  std::vector<RequestOutput> outs;
  for (;;) {
    std::deque<std::pair<Request, std::shared_ptr<RequestStream>>> inbox;
    std::vector<std::string> cancels;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || core_->HasUnfinished(); });
      inbox.swap(inbox_);
      cancels.swap(cancels_);
      stopping = stopping_;
    }
    outs.clear();
    for (auto& [req, stream] : inbox) {
      const std::string id = req.id;
      const int n = req.sampling.n;
      if (Status s = core_->AddRequest(std::move(req), EngineClock()); !s.ok()) {
        // Validated in Submit, and ids are unique among live ones: not expected, but the
        // stream still ends, with the reason.
        for (int i = 0; i < n; ++i) {
          RequestOutput o;
          o.request_id = id;
          o.index = i;
          o.finish_reason = FinishReason::kAbort;
          o.status = s;
          stream->Push(std::move(o));
        }
        std::lock_guard<std::mutex> lock(mu_);
        live_ids_.erase(id);
        continue;
      }
      streams_[id] = stream;
    }
    for (const std::string& id : cancels) core_->Abort(id, &outs);
    if (stopping) {
      std::vector<std::string> ids;
      for (const auto& [id, s] : streams_) ids.push_back(id);
      for (const std::string& id : ids) core_->Abort(id, &outs);
    } else {
      core_->Step(&outs);
    }
    // Streams that end with this step's outputs give their ids back before the consumer
    // can see the end, so a caller may reuse an id as soon as its stream is done.
    std::unordered_map<std::string, int> finals;
    for (const RequestOutput& o : outs)
      if (o.finished()) ++finals[o.request_id];
    std::vector<std::string> ended;
    for (const auto& [id, k] : finals)
      if (streams_.at(id)->unfinished() == k) ended.push_back(id);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::string& id : ended) live_ids_.erase(id);
      stats_ = core_->stats();
    }
    for (RequestOutput& o : outs) {
      auto it = streams_.find(o.request_id);
      TIDE_CHECK(it != streams_.end());
      it->second->Push(std::move(o));
    }
    for (const std::string& id : ended) streams_.erase(id);
    if (stopping) {
      std::lock_guard<std::mutex> lock(mu_);
      // Requests submitted before stopping_ was seen are already in streams_; anything
      // still in the inbox arrived in the same instant and is aborted next round.
      if (inbox_.empty() && cancels_.empty()) return;
    }
  }
}

}  // namespace tide
