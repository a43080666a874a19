#include "fake_openai_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

namespace tide::bench {
namespace {

using Clock = std::chrono::steady_clock;

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Sleeps until t, waking every 20 ms to see `stop` (the last wait still ends at t).
void SleepUntil(Clock::time_point t, const std::atomic<bool>& stop) {
  while (!stop.load() && Clock::now() < t) std::this_thread::sleep_until(std::min(t, Clock::now() + std::chrono::milliseconds(20)));
}

std::string Chunk(const std::string& payload) {
  char len[16];
  std::snprintf(len, sizeof len, "%zx\r\n", payload.size());
  return len + payload + "\r\n";
}

}  // namespace

Result<std::unique_ptr<FakeOpenAiServer>> FakeOpenAiServer::Start(const FakeServerOptions& opts) {
  std::unique_ptr<FakeOpenAiServer> s(new FakeOpenAiServer(opts));
  s->listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s->listen_fd_ < 0) return Unavailable("socket: " + std::string(std::strerror(errno)));
  const int one = 1;
  ::setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(opts.port));
  if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(s->listen_fd_, 512) != 0) {
    const std::string err = std::strerror(errno);
    ::close(s->listen_fd_);
    s->listen_fd_ = -1;
    return Unavailable("bind/listen on 127.0.0.1: " + err);
  }
  socklen_t len = sizeof addr;
  ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  s->port_ = ntohs(addr.sin_port);
  s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

FakeOpenAiServer::~FakeOpenAiServer() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> w;
  {
    std::lock_guard<std::mutex> l(mu_);
    w.swap(workers_);
  }
  for (auto& t : w) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void FakeOpenAiServer::AcceptLoop() {
  // Polls so that stop_ is seen within 20 ms.
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> l(mu_);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FakeOpenAiServer::Serve(int fd) {
  std::string in;
  char buf[8192];
  // Keep-alive: requests one after another on this connection, until the peer closes,
  // an error, a drop, or stop_.
  while (!stop_.load()) {
    size_t header_end = std::string::npos;
    size_t content_length = 0;
    bool have_request = false;
    while (!stop_.load() && in.size() < (size_t{8} << 20)) {
      header_end = in.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string head = in.substr(0, header_end);
        for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const size_t cl = head.find("content-length:");
        content_length = cl == std::string::npos ? 0 : std::strtoul(head.c_str() + cl + 15, nullptr, 10);
        if (in.size() >= header_end + 4 + content_length) {
          have_request = true;
          break;
        }
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    if (!have_request) break;
    const Clock::time_point t0 = Clock::now();
    const std::string request_line = in.substr(0, in.find("\r\n"));
    const std::string body = in.substr(header_end + 4, content_length);
    in.erase(0, header_end + 4 + content_length);
    const int64_t n_req = ++num_requests_;

    const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    const bool chat = request_line.find("/chat/completions") != std::string::npos;
    if (opts_.fail_every > 0 && n_req % opts_.fail_every == 0) {
      const std::string err = R"({"error":{"message":"fake failure","type":"server_error","code":500}})";
      if (!SendAll(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(err.size()) + "\r\n\r\n" + err))
        break;
      continue;
    }
    if (!j.is_object() || request_line.rfind("POST ", 0) != 0) {
      const std::string err = R"({"error":{"message":"bad request"}})";
      SendAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(err.size()) + "\r\n\r\n" + err);
      continue;
    }
    int64_t prompt_bytes = 0;
    if (j.contains("prompt") && j["prompt"].is_string()) prompt_bytes = static_cast<int64_t>(j["prompt"].get<std::string>().size());
    if (j.contains("messages") && j["messages"].is_array())
      for (const auto& m : j["messages"])
        if (m.is_object() && m.contains("content") && m["content"].is_string())
          prompt_bytes += static_cast<int64_t>(m["content"].get<std::string>().size());
    for (int64_t seen = max_prompt_bytes_.load(); prompt_bytes > seen && !max_prompt_bytes_.compare_exchange_weak(seen, prompt_bytes);) {
    }
    const int max_tokens = j.contains("max_tokens") && j["max_tokens"].is_number_integer() ? j["max_tokens"].get<int>() : 16;
    const bool usage = opts_.usage && j.contains("stream_options") && j["stream_options"].is_object() &&
                       j["stream_options"].value("include_usage", false);
    const bool drop = opts_.drop_every > 0 && n_req % opts_.drop_every == 0;
    auto at = [&](int k) {
      return t0 + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double, std::milli>(opts_.ttft_ms + k * opts_.itl_ms));
    };
    const std::string usage_json = R"({"prompt_tokens":)" + std::to_string((prompt_bytes + 3) / 4) +
                                   R"(,"completion_tokens":)" + std::to_string(max_tokens) + "}";
    if (!opts_.stream) {
      SleepUntil(at(max_tokens - 1), stop_);
      std::string text;
      for (int k = 0; k < max_tokens; ++k) text += " tok";
      const std::string reply =
          chat ? R"({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":")" + text +
                     R"("},"finish_reason":"length"}],"usage":)" + usage_json + "}"
               : R"({"object":"text_completion","choices":[{"index":0,"text":")" + text +
                     R"(","finish_reason":"length"}],"usage":)" + usage_json + "}";
      if (!SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(reply.size()) + "\r\n\r\n" + reply))
        break;
      continue;
    }
    if (!SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")) break;
    bool ok = true;
    ++num_streams_;
    Clock::time_point next = at(0);
    for (int k = 0; k < max_tokens && ok && !stop_.load(); ++k) {
      if (drop && k == max_tokens / 2) {
        ok = false;
        break;
      }
      if (opts_.itl_ms_per_stream > 0 && k > 0) {
        next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(
            opts_.itl_ms + opts_.itl_ms_per_stream * num_streams_.load()));
      } else if (k > 0) {
        next = at(k);
      }
      SleepUntil(next, stop_);
      const std::string ev =
          chat ? R"({"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]})"
               : R"({"object":"text_completion","choices":[{"index":0,"text":" tok","finish_reason":null}]})";
      ok = SendAll(fd, Chunk("data: " + ev + "\n\n"));
    }
    --num_streams_;
    if (!ok || stop_.load()) break;
    if (usage && !SendAll(fd, Chunk("data: {\"choices\":[],\"usage\":" + usage_json + "}\n\n"))) break;
    if (!SendAll(fd, Chunk("data: [DONE]\n\n") + "0\r\n\r\n")) break;
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

}  // namespace tide::bench
