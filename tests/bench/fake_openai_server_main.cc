// fake_openai_server: the tests' fake OpenAI server as a program, for docs/bench.md's
// example and the CLI test. Prints "listening on 127.0.0.1:PORT" and serves until
// SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "fake_openai_server.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  tide::bench::FakeServerOptions o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--port") o.port = std::atoi(v);
    else if (k == "--ttft-ms") o.ttft_ms = std::atof(v);
    else if (k == "--itl-ms") o.itl_ms = std::atof(v);
    else if (k == "--fail-every") o.fail_every = std::atoi(v);
    else if (k == "--drop-every") o.drop_every = std::atoi(v);
    else if (k == "--itl-ms-per-stream") o.itl_ms_per_stream = std::atof(v);
    else {
      std::fprintf(stderr, "usage: %s [--port P] [--ttft-ms MS] [--itl-ms MS] [--fail-every K] [--drop-every K] [--itl-ms-per-stream MS]\n", argv[0]);
      return 2;
    }
  }
  auto s = tide::bench::FakeOpenAiServer::Start(o);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
    return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::printf("listening on 127.0.0.1:%d\n", (*s)->port());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return 0;
}
