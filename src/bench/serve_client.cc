// The only translation unit that includes Boost.Beast (compile time): one io_context on
// the calling thread, a Session per request, a pool of idle keep-alive connections.
#include "bench/serve_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>

namespace tide::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxResponseBytes = uint64_t{64} << 20;
constexpr size_t kMaxErrorBodyBytes = size_t{1} << 20;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// An open connection, kept between requests when the server allows keep-alive.
struct Conn {
  explicit Conn(asio::io_context& io) : stream(io) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

// The text of one streamed event, or what the event says about usage / errors.
struct EventInfo {
  std::string text;
  bool done = false;
  bool has_usage = false;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::string error;
};

std::string Clip(std::string s, size_t n = 160) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Parses one event payload (a completions or chat.completions chunk, or a whole
// non-streamed response). Content is choices[0].text or choices[0].delta.content /
// message.content (reasoning_content counts: it is generated tokens too).
EventInfo ParseEvent(std::string_view data) {
  EventInfo e;
  if (data == "[DONE]") {
    e.done = true;
    return e;
  }
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    e.error = "malformed event: " + Clip(std::string(data), 80);
    return e;
  }
  if (const auto err = j.find("error"); err != j.end() && !err->is_null()) {
    e.error = "error event: " + Clip(err->is_object() && err->contains("message") && (*err)["message"].is_string()
                                         ? (*err)["message"].get<std::string>()
                                         : err->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return e;
  }
  if (const auto ch = j.find("choices"); ch != j.end() && ch->is_array() && !ch->empty() && (*ch)[0].is_object()) {
    const nlohmann::json& c = (*ch)[0];
    auto take = [&](const nlohmann::json& obj, const char* key) {
      const auto it = obj.find(key);
      if (it != obj.end() && it->is_string()) e.text += it->get<std::string>();
    };
    take(c, "text");
    for (const char* holder : {"delta", "message"}) {
      const auto d = c.find(holder);
      if (d != c.end() && d->is_object()) {
        take(*d, "reasoning_content");
        take(*d, "content");
      }
    }
  }
  if (const auto u = j.find("usage"); u != j.end() && u->is_object()) {
    const auto pt = u->find("prompt_tokens");
    const auto ct = u->find("completion_tokens");
    if (ct != u->end() && ct->is_number_integer()) {
      e.has_usage = true;
      e.completion_tokens = ct->get<int64_t>();
      if (pt != u->end() && pt->is_number_integer()) e.prompt_tokens = pt->get<int64_t>();
    }
  }
  return e;
}

class Runner;

// One request: connect (or reuse), send, read the event stream, record the Sample.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Runner& r, int64_t index, std::string body, int64_t prompt_tokens)
      : r_(r), index_(index), body_(std::move(body)), prompt_tokens_(prompt_tokens) {}
  void Start();
  void Abort();  // Ctrl-C: cut the stream; the sample is marked interrupted

 private:
  void Connect();
  void Send();
  void OnHeader(beast::error_code ec);
  void ReadSome();
  void OnRead(beast::error_code ec);
  void OnBytes(std::string_view bytes);
  void Fail(const char* phase, beast::error_code ec);
  void Finish(std::string error);

  Runner& r_;
  int64_t index_;
  std::string body_;
  int64_t prompt_tokens_;
  std::unique_ptr<Conn> conn_;
  bool reused_ = false;  // conn_ came from the idle pool (may have been closed by the server)
  bool retried_ = false;
  bool finished_ = false;
  bool aborted_ = false;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  std::array<char, 16384> chunk_{};
  Clock::time_point start_, deadline_, last_token_;
  SseParser sse_;
  std::vector<std::string> events_;
  std::string raw_;  // body kept for error messages and non-streamed replies (bounded)
  Sample sample_;
  std::string output_;
  int64_t num_events_ = 0;
  bool has_usage_ = false;
  std::string event_error_;
};

class Runner {
 public:
  Runner(const Target& t, const std::vector<WorkloadItem>& w, const LoadOptions& o, const TokenCounter& c)
      : target_(t), work_(w), opts_(o), counter_(c), arrival_timer_(io_), tick_timer_(io_) {}

  Result<LoadResult> Run();

  // ---- for Session ----
  asio::io_context& io() { return io_; }
  const tcp::resolver::results_type& endpoints() const { return endpoints_; }
  const Target& target() const { return target_; }
  double timeout_s() const { return opts_.request_timeout_s; }
  const std::string& api_key() const { return api_key_; }
  Clock::time_point t0() const { return t0_; }
  const TokenCounter& counter() const { return counter_; }
  std::unique_ptr<Conn> TakeIdle() {
    if (idle_.empty()) return nullptr;
    std::unique_ptr<Conn> c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  void ReturnIdle(std::unique_ptr<Conn> c) {
    // Bounded: never more idle connections than the concurrency that produced them.
    if (idle_.size() < 4096) idle_.push_back(std::move(c));
  }
  void Done(int64_t index, Sample s, std::string output_text, bool had_usage);

 private:
  void Pump();
  void ArmArrival();
  void Tick();
  void Resolve(int64_t index);
  void Launch(int64_t index);
  void DrawProgress(bool final);
  std::string BuildBody(int64_t index, int64_t* prompt_tokens) const;

  const Target& target_;
  const std::vector<WorkloadItem>& work_;
  const LoadOptions& opts_;
  const TokenCounter& counter_;
  std::string api_key_;
  asio::io_context io_;
  tcp::resolver::results_type endpoints_;
  asio::steady_timer arrival_timer_, tick_timer_;
  Clock::time_point t0_;
  std::vector<double> arrivals_;
  size_t next_arrival_ = 0;
  std::deque<int64_t> ready_;
  std::unordered_multimap<int64_t, int64_t> waiting_on_;  // previous turn -> next turn
  std::vector<std::optional<Sample>> results_;
  std::vector<std::string> outputs_;  // generated text per request (multi-turn history)
  std::unordered_map<int64_t, std::weak_ptr<Session>> active_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int64_t num_done_ = 0, num_failed_ = 0, num_sent_ = 0;
  int in_flight_ = 0, max_in_flight_ = 0;
  bool all_usage_ = true;
  bool stopping_ = false;
  bool interrupted_ = false;
  int ticks_ = 0;
};

// ---- Session ----------------------------------------------------------------------------

void Session::Start() {
  start_ = Clock::now();
  deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(r_.timeout_s()));
  sample_.index = index_;
  sample_.start_s = Seconds(start_ - r_.t0());
  req_ = http::request<http::string_body>(http::verb::post, r_.target().path, 11);
  req_.set(http::field::host, r_.target().host + ":" + r_.target().port);
  req_.set(http::field::user_agent, "tide-bench");
  req_.set(http::field::content_type, "application/json");
  req_.set(http::field::accept, "text/event-stream");
  if (!r_.api_key().empty()) req_.set(http::field::authorization, "Bearer " + r_.api_key());
  req_.body() = body_;
  req_.prepare_payload();
  conn_ = r_.TakeIdle();
  reused_ = conn_ != nullptr;
  if (reused_) return Send();
  Connect();
}

void Session::Connect() {
  conn_ = std::make_unique<Conn>(r_.io());
  conn_->stream.expires_at(deadline_);
  conn_->stream.async_connect(r_.endpoints(),
                              [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                                if (ec) return self->Fail("connect", ec);
                                self->Send();
                              });
}

void Session::Send() {
  conn_->stream.expires_at(deadline_);
  http::async_write(conn_->stream, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) return self->Fail("send", ec);
    self->parser_.emplace();
    self->parser_->body_limit(kMaxResponseBytes);
    self->parser_->header_limit(64 * 1024);
    http::async_read_header(self->conn_->stream, self->conn_->buffer, *self->parser_,
                            [self](beast::error_code ec2, size_t) { self->OnHeader(ec2); });
  });
}

void Session::OnHeader(beast::error_code ec) {
  if (ec) return Fail("read header", ec);
  sample_.http_status = static_cast<int>(parser_->get().result_int());
  ReadSome();
}

void Session::ReadSome() {
  if (finished_) return;
  if (parser_->is_done()) {
    if (sample_.http_status != 200) {
      std::string msg = raw_;
      const nlohmann::json j = nlohmann::json::parse(raw_, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("error")) {
        const nlohmann::json& e = j["error"];
        msg = e.is_object() && e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>()
              : e.is_string()                                                    ? e.get<std::string>()
                                                                                 : raw_;
      }
      return Finish("HTTP " + std::to_string(sample_.http_status) + ": " + Clip(msg));
    }
    if (num_events_ == 0 && events_.empty() && !raw_.empty() && raw_.front() == '{') {
      // The server ignored "stream": one JSON reply; its first token time is its last.
      OnBytes({});
      EventInfo e = ParseEvent(raw_);
      if (!e.error.empty()) return Finish(e.error);
      if (!e.text.empty()) {
        sample_.ttft_s = Seconds(Clock::now() - start_);
        ++num_events_;
        output_ += e.text;
      }
      if (e.has_usage) {
        has_usage_ = true;
        sample_.output_tokens = e.completion_tokens;
        if (e.prompt_tokens > 0) prompt_tokens_ = e.prompt_tokens;
      }
    }
    if (!event_error_.empty()) return Finish(event_error_);
    if (num_events_ == 0) return Finish("no content in the response");
    if (parser_->keep_alive() && !aborted_) {
      r_.ReturnIdle(std::move(conn_));
    }
    return Finish("");
  }
  auto& body = parser_->get().body();
  body.data = chunk_.data();
  body.size = chunk_.size();
  conn_->stream.expires_at(deadline_);
  http::async_read_some(conn_->stream, conn_->buffer, *parser_,
                        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
}

void Session::OnRead(beast::error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return Fail("read body", ec);
  const size_t got = chunk_.size() - parser_->get().body().size;
  OnBytes(std::string_view(chunk_.data(), got));
  if (!event_error_.empty()) return Finish(event_error_);
  ReadSome();
}

void Session::OnBytes(std::string_view bytes) {
  if (raw_.size() < kMaxErrorBodyBytes) raw_.append(bytes.substr(0, kMaxErrorBodyBytes - raw_.size()));
  if (sample_.http_status != 200) return;
  events_.clear();
  if (Status s = sse_.Feed(bytes, &events_); !s.ok()) {
    event_error_ = s.message();
    return;
  }
  const Clock::time_point now = Clock::now();
  for (const std::string& data : events_) {
    EventInfo e = ParseEvent(data);
    if (!e.error.empty()) {
      event_error_ = e.error;
      return;
    }
    if (!e.text.empty()) {
      if (num_events_ == 0) {
        sample_.ttft_s = Seconds(now - start_);
      } else {
        sample_.itl_s.push_back(Seconds(now - last_token_));
      }
      last_token_ = now;
      ++num_events_;
      output_ += e.text;
    }
    if (e.has_usage) {
      has_usage_ = true;
      sample_.output_tokens = e.completion_tokens;
      if (e.prompt_tokens > 0) prompt_tokens_ = e.prompt_tokens;
    }
  }
  // A response is mostly events; keep raw_ for non-streamed replies and errors only.
  if (num_events_ > 0) raw_.clear();
}

void Session::Fail(const char* phase, beast::error_code ec) {
  if (finished_) return;
  // A kept-alive connection the server had closed meanwhile: try once on a fresh one,
  // unless part of the reply already arrived.
  if (reused_ && !retried_ && !aborted_ && sample_.http_status == 0 &&
      (ec == http::error::end_of_stream || ec == asio::error::connection_reset || ec == asio::error::eof ||
       ec == asio::error::broken_pipe)) {
    retried_ = true;
    reused_ = false;
    return Connect();
  }
  if (ec == beast::error::timeout) return Finish(std::string(phase) + ": timed out");
  Finish(std::string(phase) + ": " + ec.message());
}

void Session::Finish(std::string error) {
  if (finished_) return;
  finished_ = true;
  const Clock::time_point now = Clock::now();
  sample_.e2e_s = Seconds(now - start_);
  sample_.interrupted = aborted_;
  sample_.ok = error.empty() && !aborted_;
  sample_.error = aborted_ ? "interrupted" : std::move(error);
  sample_.prompt_tokens = prompt_tokens_;
  if (!has_usage_) {
    sample_.output_tokens = r_.counter().exact() ? r_.counter().Count(output_) : num_events_;
  }
  if (conn_) {
    beast::error_code ignored;
    conn_->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    conn_->stream.close();
  }
  r_.Done(index_, std::move(sample_), std::move(output_), has_usage_);
}

void Session::Abort() {
  if (finished_) return;
  aborted_ = true;
  if (conn_) conn_->stream.close();  // pending operations complete with operation_aborted
}

// ---- Runner -------------------------------------------------------------------------------

std::string Runner::BuildBody(int64_t index, int64_t* prompt_tokens) const {
  const WorkloadItem& it = work_[static_cast<size_t>(index)];
  // The conversation so far: earlier turns (user prompt, generated reply), oldest first.
  std::vector<int64_t> chain;
  for (int64_t d = it.depends_on; d >= 0 && chain.size() < work_.size(); d = work_[static_cast<size_t>(d)].depends_on)
    chain.push_back(d);
  nlohmann::json body;
  body["model"] = opts_.model_name;
  body["max_tokens"] = it.max_tokens;
  body["temperature"] = opts_.temperature;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  if (opts_.ignore_eos) body["ignore_eos"] = true;
  std::string all_text;
  if (target_.chat()) {
    nlohmann::json messages = nlohmann::json::array();
    for (auto d = chain.rbegin(); d != chain.rend(); ++d) {
      messages.push_back({{"role", "user"}, {"content", work_[static_cast<size_t>(*d)].prompt}});
      messages.push_back({{"role", "assistant"}, {"content", outputs_[static_cast<size_t>(*d)]}});
      all_text += work_[static_cast<size_t>(*d)].prompt + outputs_[static_cast<size_t>(*d)];
    }
    messages.push_back({{"role", "user"}, {"content", it.prompt}});
    body["messages"] = std::move(messages);
    all_text += it.prompt;
  } else {
    for (auto d = chain.rbegin(); d != chain.rend(); ++d)
      all_text += work_[static_cast<size_t>(*d)].prompt + outputs_[static_cast<size_t>(*d)] + "\n";
    all_text += it.prompt;
    body["prompt"] = all_text;
  }
  *prompt_tokens = chain.empty() ? it.prompt_tokens : counter_.Count(all_text);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Runner::Launch(int64_t index) {
  int64_t prompt_tokens = 0;
  std::string body = BuildBody(index, &prompt_tokens);
  auto s = std::make_shared<Session>(*this, index, std::move(body), prompt_tokens);
  active_[index] = s;
  ++in_flight_;
  ++num_sent_;
  max_in_flight_ = std::max(max_in_flight_, in_flight_);
  s->Start();
}

void Runner::Resolve(int64_t index) {
  const int dep = work_[static_cast<size_t>(index)].depends_on;
  if (dep < 0) {
    ready_.push_back(index);
  } else if (!results_[static_cast<size_t>(dep)].has_value()) {
    waiting_on_.emplace(dep, index);
  } else if (results_[static_cast<size_t>(dep)]->ok) {
    ready_.push_back(index);
  } else {
    // The conversation broke: its later turns are failures too, never sent.
    Sample s;
    s.index = index;
    s.start_s = Seconds(Clock::now() - t0_);
    s.error = "earlier turn of the conversation failed";
    Done(index, std::move(s), "", false);
  }
}

void Runner::Done(int64_t index, Sample s, std::string output_text, bool had_usage) {
  const bool sent = active_.erase(index) > 0;
  if (sent) --in_flight_;
  if (s.ok && !had_usage) all_usage_ = false;
  if (!s.ok && !s.interrupted) ++num_failed_;
  ++num_done_;
  outputs_[static_cast<size_t>(index)] = std::move(output_text);
  results_[static_cast<size_t>(index)] = std::move(s);
  auto [b, e] = waiting_on_.equal_range(index);
  std::vector<int64_t> next;
  for (auto it = b; it != e; ++it) next.push_back(it->second);
  waiting_on_.erase(index);
  if (!stopping_)
    for (int64_t n : next) Resolve(n);
  // Defer: Done may run inside Launch (a synchronous failure) or inside Resolve.
  asio::post(io_, [this] { Pump(); });
}

void Runner::Pump() {
  if (stopping_) return;
  const double now = Seconds(Clock::now() - t0_);
  while (next_arrival_ < arrivals_.size() && arrivals_[next_arrival_] <= now) Resolve(static_cast<int64_t>(next_arrival_++));
  while (!ready_.empty() && (opts_.max_concurrency <= 0 || in_flight_ < opts_.max_concurrency)) {
    const int64_t i = ready_.front();
    ready_.pop_front();
    Launch(i);
  }
  if (num_done_ == static_cast<int64_t>(work_.size())) {
    stopping_ = true;
    arrival_timer_.cancel();
    tick_timer_.cancel();
  }
}

void Runner::ArmArrival() {
  if (stopping_ || next_arrival_ >= arrivals_.size()) return;
  arrival_timer_.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(arrivals_[next_arrival_])));
  arrival_timer_.async_wait([this](beast::error_code ec) {
    if (ec) return;
    Pump();
    ArmArrival();
  });
}

void Runner::DrawProgress(bool final) {
  if (!opts_.progress) return;
  const int64_t n = static_cast<int64_t>(work_.size());
  constexpr int kWidth = 30;
  const int fill = n > 0 ? static_cast<int>(kWidth * num_done_ / n) : kWidth;
  std::fprintf(stderr, "\r[%s%s] %lld/%lld done, %lld failed, %d in flight, %.1f s ",
               std::string(static_cast<size_t>(fill), '#').c_str(), std::string(static_cast<size_t>(kWidth - fill), '.').c_str(),
               static_cast<long long>(num_done_), static_cast<long long>(n), static_cast<long long>(num_failed_),
               in_flight_, Seconds(Clock::now() - t0_));
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void Runner::Tick() {
  if (stopping_) return;
  if (opts_.interrupt != nullptr && opts_.interrupt->load(std::memory_order_relaxed)) {
    // Ctrl-C: nothing new goes out; streams in flight are cut and reported as such.
    stopping_ = true;
    interrupted_ = true;
    arrival_timer_.cancel();
    std::vector<std::shared_ptr<Session>> live;
    for (auto& [i, w] : active_)
      if (auto s = w.lock()) live.push_back(std::move(s));
    for (auto& s : live) s->Abort();
    return;
  }
  if (++ticks_ % 2 == 0) DrawProgress(false);
  tick_timer_.expires_after(std::chrono::milliseconds(50));
  tick_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) Tick();
  });
}

Result<LoadResult> Runner::Run() {
  if (opts_.max_concurrency < 0) return InvalidArgument("--max-concurrency must be >= 0");
  if (!(opts_.request_timeout_s > 0)) return InvalidArgument("--request-timeout must be positive");
  if (const char* key = std::getenv("OPENAI_API_KEY")) api_key_ = key;
  beast::error_code ec;
  tcp::resolver resolver(io_);
  endpoints_ = resolver.resolve(target_.host, target_.port, ec);
  if (ec) return Unavailable("cannot resolve " + target_.host + ":" + target_.port + ": " + ec.message());
  const int64_t n = static_cast<int64_t>(work_.size());
  arrivals_ = ArrivalTimes(n, opts_.request_rate, opts_.burstiness, opts_.seed);
  results_.assign(static_cast<size_t>(n), std::nullopt);
  outputs_.assign(static_cast<size_t>(n), std::string());
  t0_ = Clock::now();
  asio::post(io_, [this] {
    Pump();
    ArmArrival();
    Tick();
  });
  io_.run();
  DrawProgress(true);

  LoadResult out;
  out.interrupted = interrupted_;
  out.max_in_flight = max_in_flight_;
  double end = 0, first = std::numeric_limits<double>::infinity();
  for (auto& r : results_) {
    if (!r.has_value()) continue;  // never sent (Ctrl-C)
    if (r->ok) {
      end = std::max(end, r->start_s + r->e2e_s);
      first = std::min(first, r->start_s);
    }
    out.samples.push_back(std::move(*r));
  }
  // From the start of the point (time 0 of the arrivals) to the last reply.
  out.duration_s = std::isinf(first) ? 0 : end;
  out.server_usage = all_usage_ && num_done_ > num_failed_;
  return out;
}

}  // namespace

bool Target::chat() const {
  constexpr std::string_view kChat = "chat/completions";
  return path.size() >= kChat.size() && path.compare(path.size() - kChat.size(), kChat.size(), kChat) == 0;
}

Result<Target> ParseTarget(const std::string& url, const std::string& default_path) {
  std::string rest = url;
  const std::string scheme = "http://";
  if (rest.rfind("https://", 0) == 0) return InvalidArgument("--base-url: https is not supported; use http://");
  if (rest.rfind(scheme, 0) == 0) rest = rest.substr(scheme.size());
  Target t;
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  const std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  t.path = path.empty() || path == "/" ? default_path : path;
  if (!t.path.empty() && t.path.front() != '/') t.path = "/" + t.path;
  // host, host:port, [v6], [v6]:port.
  t.port = "80";
  const size_t bracket = hostport.rfind(']');
  const size_t colon = hostport.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    t.port = hostport.substr(colon + 1);
    hostport.resize(colon);
  }
  if (hostport.size() >= 2 && hostport.front() == '[' && hostport.back() == ']') hostport = hostport.substr(1, hostport.size() - 2);
  t.host = hostport;
  if (t.host.empty()) return InvalidArgument("--base-url: no host in '" + url + "'");
  if (t.port.empty() || t.port.find_first_not_of("0123456789") != std::string::npos || t.port.size() > 5 ||
      std::stoi(t.port) > 65535 || std::stoi(t.port) == 0)  // digits only: stoi cannot throw
    return InvalidArgument("--base-url: bad port in '" + url + "'");
  return t;
}

std::vector<double> ArrivalTimes(int64_t n, double rate, double burstiness, uint64_t seed) {
  std::vector<double> t(static_cast<size_t>(std::max<int64_t>(n, 0)), 0.0);
  if (std::isinf(rate) || !(rate > 0)) return t;
  // Gamma gaps with shape k and scale 1/(rate k): mean 1/rate whatever k; k = 1 is
  // Poisson, k < 1 burstier, k > 1 more regular.
  const double k = burstiness > 0 ? burstiness : 1.0;
  std::mt19937_64 gen(seed);
  std::gamma_distribution<double> gap(k, 1.0 / (rate * k));
  double now = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    t[i] = now;
    now += gap(gen);
  }
  return t;
}

Status SseParser::Feed(std::string_view bytes, std::vector<std::string>* out) {
  buf_.append(bytes);
  // Events end at a blank line; normalise CRLF by ignoring '\r' when splitting lines.
  size_t start = 0;
  for (;;) {
    size_t end = std::string::npos, next = 0;
    for (size_t i = std::max(scanned_, start); i + 1 < buf_.size(); ++i) {
      if (buf_[i] != '\n') continue;
      if (buf_[i + 1] == '\n') {
        end = i, next = i + 2;
        break;
      }
      if (buf_[i + 1] == '\r' && i + 2 < buf_.size() && buf_[i + 2] == '\n') {
        end = i, next = i + 3;
        break;
      }
    }
    if (end == std::string::npos) break;
    std::string data;
    bool any = false;
    size_t ls = start;
    while (ls <= end) {
      size_t le = buf_.find('\n', ls);
      if (le == std::string::npos || le > end) le = end;
      std::string_view line(buf_.data() + ls, le - ls);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.rfind("data:", 0) == 0) {
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (any) data += '\n';
        data.append(line);
        any = true;
      }
      ls = le + 1;
    }
    if (any) out->push_back(std::move(data));
    start = next;
    scanned_ = start;
  }
  buf_.erase(0, start);
  // Resume two bytes back: a separator ("\n\r\n") may straddle this read and the next.
  scanned_ = buf_.size() >= 2 ? buf_.size() - 2 : 0;
  if (buf_.size() > (size_t{16} << 20)) return ResourceExhausted("an event of the stream is over 16 MiB");
  return OkStatus();
}

Result<LoadResult> RunLoad(const Target& target, const std::vector<WorkloadItem>& workload, const LoadOptions& opts,
                           const TokenCounter& counter) {
  Runner r(target, workload, opts, counter);
  return r.Run();
}

}  // namespace tide::bench
