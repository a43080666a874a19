// `tide bench serve` against the fake server of tests/bench/: the reported figures
// match the server's known timing, faults are counted without stopping the run, and a
// sweep's JSON and SVG are well-formed.
#include "bench/serve_client.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <thread>

#include "base/file.h"
#include "bench/serve_bench.h"
#include "fake_openai_server.h"

namespace tide::bench {
namespace {

std::unique_ptr<FakeOpenAiServer> StartServer(FakeServerOptions o) {
  auto s = FakeOpenAiServer::Start(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::vector<WorkloadItem> Items(int n, int max_tokens) {
  std::vector<WorkloadItem> w(static_cast<size_t>(n));
  for (auto& it : w) {
    it.prompt = "hello world";
    it.prompt_tokens = 3;
    it.max_tokens = max_tokens;
  }
  return w;
}

Target Local(int port, const char* path = "/v1/completions") {
  Target t;
  t.port = std::to_string(port);
  t.path = path;
  return t;
}

TEST(SseParser, SplitsEventsAcrossReads) {
  const std::string stream = "data: {\"a\":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\nevent: e\ndata: [DONE]\n\n";
  // Every split point of the stream gives the same events.
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    std::vector<std::string> ev;
    ASSERT_TRUE(p.Feed(stream.substr(0, cut), &ev).ok());
    ASSERT_TRUE(p.Feed(stream.substr(cut), &ev).ok());
    ASSERT_EQ(ev.size(), 3u) << cut;
    EXPECT_EQ(ev[0], "{\"a\":1}");
    EXPECT_EQ(ev[1], "x\ny");
    EXPECT_EQ(ev[2], "[DONE]");
  }
  // Byte by byte.
  SseParser p;
  std::vector<std::string> ev;
  for (char c : stream) ASSERT_TRUE(p.Feed(std::string_view(&c, 1), &ev).ok());
  EXPECT_EQ(ev.size(), 3u);
}

TEST(ServeClient, TargetsAndArrivals) {
  auto t = ParseTarget("http://localhost:8080", "/v1/completions");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "localhost");
  EXPECT_EQ(t->port, "8080");
  EXPECT_EQ(t->path, "/v1/completions");
  t = ParseTarget("127.0.0.1:9/v1/chat/completions", "/v1/completions");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->chat());
  t = ParseTarget("http://[::1]:81/", "/x");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->port, "81");
  for (const char* bad : {"https://a:1", "http://:80", "http://a:99999", "http://a:x"})
    EXPECT_FALSE(ParseTarget(bad, "/").ok()) << bad;

  const auto a = ArrivalTimes(4000, 50, 1.0, 3);
  EXPECT_EQ(a, ArrivalTimes(4000, 50, 1.0, 3));
  EXPECT_NEAR(a.back() / 3999, 1 / 50.0, 0.1 / 50);  // mean gap = 1/rate
  const auto g = ArrivalTimes(4000, 50, 0.25, 3);    // bursty: same mean
  EXPECT_NEAR(g.back() / 3999, 1 / 50.0, 0.15 / 50);
  for (double x : ArrivalTimes(5, std::numeric_limits<double>::infinity(), 1, 0)) EXPECT_EQ(x, 0);
}

// TTFT 200 ms, then 20 ms per token: every figure within 5% of the schedule. The times
// are long enough that a busy 2-core CI machine (a few ms of wake-up delay) stays inside.
TEST(ServeClient, TimingMatchesFakeServer) {
  FakeServerOptions fo;
  fo.ttft_ms = 200;
  fo.itl_ms = 20;
  auto server = StartServer(fo);
  ASSERT_TRUE(server);
  TokenCounter counter(nullptr);
  LoadOptions lo;
  lo.max_concurrency = 4;
  const int kTokens = 10, kRequests = 8;
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    auto r = RunLoad(Local(server->port(), path), Items(kRequests, kTokens), lo, counter);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->samples.size(), static_cast<size_t>(kRequests));
    EXPECT_TRUE(r->server_usage);
    EXPECT_EQ(r->max_in_flight, 4);
    PointSummary s = Summarize(r->samples, r->duration_s, Slo{});
    EXPECT_EQ(s.completed, kRequests) << path;
    EXPECT_EQ(s.failed, 0);
    EXPECT_EQ(s.total_output_tokens, kRequests * kTokens);
    EXPECT_NEAR(s.ttft_ms.p50, fo.ttft_ms, 0.05 * fo.ttft_ms) << path;
    EXPECT_NEAR(s.tpot_ms.p50, fo.itl_ms, 0.05 * fo.itl_ms) << path;
    EXPECT_NEAR(s.itl_ms.p50, fo.itl_ms, 0.05 * fo.itl_ms) << path;
    const double e2e = fo.ttft_ms + (kTokens - 1) * fo.itl_ms;  // ms
    EXPECT_NEAR(s.e2e_ms.p50, e2e, 0.05 * e2e);
    // Two waves of four requests back to back.
    const double duration = 2 * e2e / 1e3;
    EXPECT_NEAR(s.request_throughput, kRequests / duration, 0.05 * kRequests / duration) << path;
    EXPECT_NEAR(s.output_throughput, kRequests * kTokens / duration, 0.05 * kRequests * kTokens / duration);
  }
}

TEST(ServeClient, ErrorsAndDropsAreCountedNotFatal) {
  FakeServerOptions fo;
  fo.ttft_ms = 5;
  fo.itl_ms = 2;
  fo.fail_every = 4;
  fo.drop_every = 5;
  auto server = StartServer(fo);
  ASSERT_TRUE(server);
  TokenCounter counter(nullptr);
  LoadOptions lo;
  lo.max_concurrency = 1;  // requests numbered in send order: failures are exact
  auto r = RunLoad(Local(server->port()), Items(20, 6), lo, counter);
  ASSERT_TRUE(r.ok());
  PointSummary s = Summarize(r->samples, r->duration_s, Slo{});
  // 20 requests: 500 on 4, 8, 12, 16, 20; dropped 5, 10, 15 (not 20: it already failed).
  EXPECT_EQ(s.failed, 8);
  EXPECT_EQ(s.completed, 12);
  int http500 = 0, dropped = 0;
  for (const auto& [err, n] : s.errors) {
    if (err.rfind("HTTP 500: fake failure", 0) == 0) http500 += static_cast<int>(n);
    if (err.rfind("read body", 0) == 0) dropped += static_cast<int>(n);
  }
  EXPECT_EQ(http500, 5);
  EXPECT_EQ(dropped, 3);
}

TEST(ServeClient, RefusedAndTimedOutRequestsFail) {
  int port = 0;
  {
    auto server = StartServer(FakeServerOptions{});
    ASSERT_TRUE(server);
    port = server->port();
  }  // closed: connections are refused now
  TokenCounter counter(nullptr);
  LoadOptions lo;
  auto r = RunLoad(Local(port), Items(5, 4), lo, counter);
  ASSERT_TRUE(r.ok());
  for (const Sample& s : r->samples) {
    EXPECT_FALSE(s.ok);
    EXPECT_EQ(s.error.rfind("connect:", 0), 0u) << s.error;
  }
  FakeServerOptions slow;
  slow.ttft_ms = 3000;
  auto server = StartServer(slow);
  ASSERT_TRUE(server);
  lo.request_timeout_s = 0.3;
  const auto t0 = std::chrono::steady_clock::now();
  r = RunLoad(Local(server->port()), Items(3, 4), lo, counter);
  ASSERT_TRUE(r.ok());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  for (const Sample& s : r->samples) EXPECT_NE(s.error.find("timed out"), std::string::npos) << s.error;
}

TEST(ServeClient, InterruptReportsWhatFinished) {
  FakeServerOptions fo;
  fo.ttft_ms = 5;
  fo.itl_ms = 20;
  auto server = StartServer(fo);
  ASSERT_TRUE(server);
  std::atomic<bool> stop{false};
  TokenCounter counter(nullptr);
  LoadOptions lo;
  lo.max_concurrency = 2;
  lo.interrupt = &stop;
  // Each request takes ~105 ms; stop after ~300 ms of a ~5 s run.
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.store(true);
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto r = RunLoad(Local(server->port()), Items(100, 6), lo, counter);
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.5);
  EXPECT_TRUE(r->interrupted);
  PointSummary s = Summarize(r->samples, r->duration_s, Slo{});
  EXPECT_GE(s.completed, 2);
  EXPECT_LT(s.completed, 100);
  EXPECT_EQ(s.failed, 0);
  EXPECT_GE(s.interrupted, 1);
}

TEST(ServeClient, MultiTurnSendsHistoryAndNonStreamedReplies) {
  FakeServerOptions fo;
  fo.ttft_ms = 2;
  fo.itl_ms = 1;
  auto server = StartServer(fo);
  ASSERT_TRUE(server);
  TokenCounter counter(nullptr);
  WorkloadOptions wo;
  wo.kind = DatasetKind::kMultiTurn;
  wo.num_prompts = 6;
  wo.multi_turn_turns = 3;
  wo.input_len = {8, 8};
  wo.output_len = {5, 5};
  auto w = BuildWorkload(wo, counter);
  ASSERT_TRUE(w.ok());
  auto r = RunLoad(Local(server->port(), "/v1/chat/completions"), *w, LoadOptions{}, counter);
  ASSERT_TRUE(r.ok());
  for (const Sample& s : r->samples) EXPECT_TRUE(s.ok) << s.error;
  // Third turn: three user messages and two replies of " tok" x 5.
  EXPECT_GE(server->max_prompt_bytes(), static_cast<int64_t>((*w)[0].prompt.size() * 3 + 2 * 20 - 40));
  EXPECT_GT(r->samples[4].prompt_tokens, r->samples[0].prompt_tokens);

  FakeServerOptions plain = fo;
  plain.stream = false;
  auto server2 = StartServer(plain);
  ASSERT_TRUE(server2);
  r = RunLoad(Local(server2->port()), Items(3, 4), LoadOptions{}, counter);
  ASSERT_TRUE(r.ok());
  for (const Sample& s : r->samples) {
    EXPECT_TRUE(s.ok) << s.error;
    EXPECT_EQ(s.output_tokens, 4);
  }
}

// The whole command: a sweep over two rates with --json and --plot.
TEST(ServeBench, SweepWritesJsonAndSvg) {
  FakeServerOptions fo;
  fo.ttft_ms = 5;
  fo.itl_ms = 2;
  auto server = StartServer(fo);
  ASSERT_TRUE(server);
  ServeBenchOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(server->port());
  o.num_prompts = 12;
  o.random_input_len = "16:32";
  o.random_output_len = "4:8";
  o.request_rate = "40,inf";
  o.max_concurrency = "0";
  o.slo = "ttft=1000,tpot=1000";
  o.json_path = ::testing::TempDir() + "/serve_bench_test.json";
  o.plot_path = ::testing::TempDir() + "/serve_bench_test.svg";
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(RunServeBench(o, nullptr, out).ok());
  std::fclose(out);
  auto text = ReadFileToString(o.json_path);
  ASSERT_TRUE(text.ok());
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  ASSERT_EQ(j["points"].size(), 2u);
  EXPECT_EQ(j["points"][0]["summary"]["request_rate"], 40.0);
  EXPECT_EQ(j["points"][1]["summary"]["request_rate"], "inf");
  for (const auto& p : j["points"]) {
    EXPECT_EQ(p["summary"]["completed"], 12);
    EXPECT_EQ(p["summary"]["goodput"].get<double>(), p["summary"]["request_throughput"].get<double>());
    ASSERT_EQ(p["samples"].size(), 12u);
    for (const auto& s : p["samples"]) {
      EXPECT_TRUE(s["ok"].get<bool>());
      EXPECT_GE(s["output_tokens"].get<int>(), 4);
      EXPECT_LE(s["output_tokens"].get<int>(), 8);
      EXPECT_EQ(s["itl_ms"].size(), s["output_tokens"].get<size_t>() - 1);
    }
  }
  // Rate 40/s spreads 12 requests over ~0.3 s: the run is longer than all-at-once.
  EXPECT_GT(j["points"][0]["summary"]["duration_s"].get<double>(), j["points"][1]["summary"]["duration_s"].get<double>());
  // The SVG parses as XML (python3 is part of the build image; skip without it).
  if (std::system("python3 -c 'import xml.etree.ElementTree' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  const std::string check = "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
                            "assert r.tag.endswith('svg'); assert len(list(r.iter('{http://www.w3.org/2000/svg}polyline'))) >= 4\" " +
                            o.plot_path;
  EXPECT_EQ(std::system(check.c_str()), 0);
}

}  // namespace
}  // namespace tide::bench
