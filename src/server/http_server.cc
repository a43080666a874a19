// The only translation unit that includes Beast/Asio (they are template-heavy; keeping
// them here keeps the build fast). Requests are parsed with Beast's parser; responses
// are serialized by hand (a status line, a few headers, Content-Length or chunked
// encoding), which keeps the write path one code path for full and streamed bodies.
#include "server/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "base/log.h"

namespace tide::server {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// Beast's string_view is boost::string_view or std::string_view depending on a macro
// that every Beast user in the binary must agree on (ODR); take data()/size() only.
template <typename View>
std::string Str(const View& v) {
  return std::string(v.data(), v.size());
}

std::string Lower(const std::string& s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string SerializeHead(const HttpResponse& r, bool chunked, bool keep_alive) {
  std::string out;
  out.reserve(256 + r.body.size());
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + HttpReasonPhrase(r.status) + "\r\n";
  out += "Server: tide\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else {
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out;
}

HttpResponse PlainError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  // The same shape as the API's errors, so clients parse one format whatever layer
  // refused them.
  std::string type = status == 413 ? "request_too_large" : "invalid_request_error";
  r.body = "{\"error\":{\"message\":\"" + message + "\",\"type\":\"" + type + "\",\"param\":null,\"code\":" +
           std::to_string(status) + "}}";
  return r;
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions opt;
  HttpHandler handler;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;

  class Session;
  std::mutex mu;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // GUARDED_BY(mu)
  bool stopped = false;                                            // GUARDED_BY(mu)
  std::atomic<int64_t> active{0};  // requests read whose response is not fully written

  void DoAccept();
};

// One connection. Everything runs on its strand. At most one read and one write are in
// flight; while an AsyncResponse is being produced, a "monitor" read stays posted so a
// client that disconnects is noticed at once (and its generation aborted), not at the
// next write.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Impl& server) : stream_(std::move(socket)), server_(server) {}

  void Begin() { net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->WaitForRequest(); }); }

  void Close() {
    if (closed_) return;
    closed_ = true;
    EndActive();
    if (pending_) {
      pending_->Abort();
      pending_.reset();
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    std::lock_guard<std::mutex> lock(server_.mu);
    server_.sessions.erase(this);
  }
  void PostClose() { net::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); }); }

 private:
  // Step A: wait up to idle_timeout for the first byte of the next request.
  void WaitForRequest() {
    if (closed_) return;
    if (buffer_.size() > 0) return ReadHeader();
    stream_.expires_after(server_.opt.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->Close();
      self->buffer_.commit(n);
      self->ReadHeader();
    });
  }

  // Step B: the whole request must arrive within read_timeout of its first byte.
  void ReadHeader() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(std::min<int64_t>(server_.opt.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(static_cast<uint64_t>(server_.opt.max_body_bytes));
    stream_.expires_after(server_.opt.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      const auto& req = self->parser_->get();
      auto expect = req[http::field::expect];
      if (!self->parser_->is_done() && beast::iequals(expect, "100-continue")) {
        // curl sends this for bodies over 1 KiB and waits a second for the answer.
        self->continue_ = "HTTP/1.1 100 Continue\r\n\r\n";
        net::async_write(self->stream_, net::buffer(self->continue_), [self](beast::error_code wec, size_t) {
          if (wec) return self->Close();
          self->ReadBody();
        });
        return;
      }
      self->ReadBody();
    });
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      self->OnRequest();
    });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof) {
      return Close();
    }
    keep_alive_ = false;
    if (ec == http::error::body_limit) {
      return SendFull(PlainError(413, "request body exceeds the limit of " +
                                          std::to_string(server_.opt.max_body_bytes) + " bytes"));
    }
    if (ec == http::error::header_limit) return SendFull(PlainError(431, "request headers too large"));
    SendFull(PlainError(400, "malformed HTTP request: " + ec.message()));
  }

  void EndActive() {
    if (!active_) return;
    active_ = false;
    --server_.active;
  }

  void OnRequest() {
    active_ = true;
    ++server_.active;
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive();
    http10_ = msg.version() < 11;
    HttpRequest req;
    req.method = Str(msg.method_string());
    req.target = Str(msg.target());
    req.path = req.target.substr(0, req.target.find('?'));
    for (const auto& f : msg) req.headers.emplace_back(Lower(Str(f.name_string())), Str(f.value()));
    req.body = std::move(msg.body());
    HandlerResult result = HttpResponse{};
    try {
      result = server_.handler(std::move(req));
    } catch (const std::exception& e) {
      // Handlers return errors as responses; an escaping exception is our bug.
      TIDE_LOG_ERROR("http handler threw: %s", e.what());
      result = PlainError(500, "internal error");
    }
    if (auto* full = std::get_if<HttpResponse>(&result)) return SendFull(*full);
    pending_ = std::move(std::get<std::unique_ptr<AsyncResponse>>(result));
    // No read or write is in flight here: the monitor read starts with no deadline, and
    // later expires_after calls for writes touch only the write timer.
    stream_.expires_never();
    Monitor();
    std::weak_ptr<Session> weak = weak_from_this();
    auto exec = stream_.get_executor();
    pending_->Start([weak, exec] {
      net::post(exec, [weak] {
        if (auto s = weak.lock()) s->Pump();
      });
    });
    Pump();
  }

  // Waits for the client to close (or to pipeline its next request) while a response is
  // produced.
  void Monitor() {
    if (monitoring_ || closed_) return;
    // Never buffer without bound for a client that pipelines huge amounts.
    if (static_cast<int64_t>(buffer_.size()) > server_.opt.max_header_bytes + server_.opt.max_body_bytes) return;
    monitoring_ = true;
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->monitoring_ = false;
      if (self->closed_) return;
      if (self->lingering_) {
        if (ec) return self->Close();
        self->buffer_.clear();
        self->stream_.expires_after(std::chrono::seconds(1));
        return self->Linger();
      }
      if (ec == net::error::operation_aborted && self->resume_after_monitor_) {
        self->resume_after_monitor_ = false;
        return self->WaitForRequest();
      }
      if (ec) return self->Close();  // client gone: Close aborts the generation
      self->buffer_.commit(n);
      if (self->pending_) return self->Monitor();
      self->WaitForRequest();
    });
  }

  void SendFull(const HttpResponse& r) {
    out_ += SerializeHead(r, /*chunked=*/false, keep_alive_);
    out_ += r.body;
    response_done_ = true;
    Flush();
  }

  // Pulls what the AsyncResponse has ready into the output buffer.
  void Pump() {
    if (closed_ || !pending_) return;
    for (;;) {
      AsyncResponse::Part part;
      pending_->Poll(&part);
      if (part.head) {
        streaming_ = part.streaming;
        if (!streaming_) {
          pending_.reset();
          SendFull(*part.head);
          return;
        }
        if (http10_) keep_alive_ = false;  // no chunked encoding in HTTP/1.0: close ends the body
        out_ += SerializeHead(*part.head, /*chunked=*/!http10_, keep_alive_);
      }
      if (!part.data.empty()) {
        if (http10_) {
          out_ += part.data;
        } else {
          char len[24];
          std::snprintf(len, sizeof(len), "%zx\r\n", part.data.size());
          out_ += len;
          out_ += part.data;
          out_ += "\r\n";
        }
      }
      if (part.done) {
        if (streaming_ && !http10_) out_ += "0\r\n\r\n";
        pending_.reset();
        response_done_ = true;
        break;
      }
      if (!part.head && part.data.empty()) break;
    }
    Flush();
  }

  void Flush() {
    if (writing_ || closed_) return;
    if (out_.empty()) {
      if (response_done_) FinishResponse();
      return;
    }
    writing_ = true;
    inflight_.swap(out_);
    out_.clear();
    stream_.expires_after(server_.opt.write_timeout);
    net::async_write(stream_, net::buffer(inflight_), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->inflight_.clear();
      if (ec) return self->Close();
      self->Flush();
    });
  }

  // After the last response of a connection: half-close, then discard what the client
  // still sends (e.g. the rest of an oversized body) for a moment. Closing with unread
  // bytes would send a RST that can destroy the response before the client reads it.
  void Linger() {
    if (closed_) return;
    if (!lingering_) {
      lingering_ = true;
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      if (monitoring_) return;  // the monitor read's completion comes back here
      stream_.expires_after(std::chrono::seconds(1));
    }
    stream_.async_read_some(buffer_.prepare(16384), [self = shared_from_this()](beast::error_code rec, size_t) {
      self->buffer_.clear();
      if (rec) return self->Close();
      self->Linger();
    });
  }

  void FinishResponse() {
    EndActive();
    response_done_ = false;
    streaming_ = false;
    if (!keep_alive_) return Linger();
    if (monitoring_) {
      // The monitor read has no deadline; cancel it so the idle timeout applies again.
      resume_after_monitor_ = true;
      beast::error_code ec;
      stream_.socket().cancel(ec);
      return;
    }
    WaitForRequest();
  }

  beast::tcp_stream stream_;
  Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<AsyncResponse> pending_;
  std::string out_, inflight_, continue_;
  bool keep_alive_ = true, http10_ = false, streaming_ = false;
  bool writing_ = false, monitoring_ = false, resume_after_monitor_ = false;
  bool response_done_ = false, closed_ = false, lingering_ = false, active_ = false;
};

void HttpServer::Impl::DoAccept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      // EMFILE and friends: keep accepting; the next try may succeed once fds free up.
      TIDE_LOG_WARN("accept failed: %s", ec.message().c_str());
      return DoAccept();
    }
    beast::error_code nd;
    socket.set_option(tcp::no_delay(true), nd);  // SSE tokens must not wait for Nagle
    auto session = std::make_shared<Session>(std::move(socket), *this);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopped) return;
      sessions.emplace(session.get(), session);
    }
    session->Begin();
    DoAccept();
  });
}

std::string HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  Impl& m = *impl_;
  beast::error_code ec;
  const auto address = net::ip::make_address(m.opt.host, ec);
  if (ec) return InvalidArgument("--host: '" + m.opt.host + "' is not an IP address");
  if (m.opt.port < 0 || m.opt.port > 65535) return InvalidArgument("--port must be in [0, 65535]");
  const tcp::endpoint ep(address, static_cast<uint16_t>(m.opt.port));
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + m.opt.host + ":" + std::to_string(m.opt.port) + ": " + ec.message());
  port_ = m.acceptor.local_endpoint().port();
  m.work.emplace(m.ioc.get_executor());
  m.DoAccept();
  const int n = std::max(1, m.opt.io_threads);
  for (int i = 0; i < n; ++i) m.threads.emplace_back([&m] { m.ioc.run(); });
  return OkStatus();
}

void HttpServer::StopAccepting() {
  net::post(impl_->ioc, [m = impl_.get()] {
    beast::error_code ec;
    m->acceptor.close(ec);
  });
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  std::vector<std::shared_ptr<Impl::Session>> open;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.stopped) return;
    m.stopped = true;
    for (auto& [p, w] : m.sessions)
      if (auto s = w.lock()) open.push_back(std::move(s));
  }
  if (m.threads.empty()) return;
  StopAccepting();
  for (auto& s : open) s->PostClose();
  open.clear();
  m.work.reset();
  // Closed sockets complete their pending operations with errors; once none is left,
  // run() returns. A bounded wait guards against an operation that never completes.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!m.ioc.stopped() && Clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(m.mu);
      if (m.sessions.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  m.ioc.stop();
  for (std::thread& t : m.threads) t.join();
  m.threads.clear();
}

int64_t HttpServer::num_active_requests() const { return impl_->active.load(); }

int64_t HttpServer::num_connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int64_t>(impl_->sessions.size());
}

const char* HttpReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

}  // namespace tide::server
