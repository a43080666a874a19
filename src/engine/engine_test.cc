// The threaded Engine: streams, cancellation from another thread, duplicate ids, the
// pending-request cap, shutdown, and many submitting threads at once.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "engine/fake_model_runner.h"

namespace tide {
namespace {

EngineOptions Options() {
  EngineOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 4;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 32;
  o.max_model_len = 200;
  return o;
}

Request Req(const std::string& id, int max_tokens) {
  Request r;
  r.id = id;
  r.prompt = {1, 2, 3, 4, 5};
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

std::vector<RequestOutput> Drain(RequestStream& s) {
  std::vector<RequestOutput> v;
  while (auto o = s.Next()) v.push_back(std::move(*o));
  return v;
}

TEST(EngineTest, SubmitStreamsTokensThenAFinalOutput) {
  FakeModelRunner fake;
  auto engine = Engine::Create(fake, nullptr, Options());
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  auto stream = (*engine)->Submit(Req("a", 10));
  ASSERT_TRUE(stream.ok());
  std::vector<RequestOutput> outs = Drain(**stream);
  ASSERT_EQ(outs.size(), 10u);
  for (size_t i = 0; i + 1 < outs.size(); ++i) EXPECT_FALSE(outs[i].finished());
  EXPECT_EQ(outs.back().finish_reason, FinishReason::kLength);
  EXPECT_EQ(outs.back().usage.completion_tokens, 10);
  // The id is free again once finished.
  auto again = (*engine)->Submit(Req("a", 2));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Drain(**again).size(), 2u);
}

// A 2 ms step keeps a 150-token request alive long enough to act on it mid-way.
FakeModelOptions Slow() {
  FakeModelOptions f;
  f.step_delay_us = 2000;
  return f;
}

TEST(EngineTest, DuplicateLiveIdIsRejectedAndCancelEndsTheRequest) {
  FakeModelRunner fake(Slow());
  auto engine = Engine::Create(fake, nullptr, Options());
  ASSERT_TRUE(engine.ok());
  auto a = (*engine)->Submit(Req("a", 150));
  ASSERT_TRUE(a.ok());
  auto dup = (*engine)->Submit(Req("a", 5));
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE((**a).Next().has_value());  // it is running
  (*engine)->Cancel("a");
  (*engine)->Cancel("no-such-id");  // ignored
  std::vector<RequestOutput> rest = Drain(**a);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().finish_reason, FinishReason::kAbort);
  EXPECT_LT(rest.back().usage.completion_tokens, 150);
  // Blocks are back by the time the stats after that step are published.
  for (int i = 0; i < 1000 && (*engine)->stats().num_free_blocks != 64; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ((*engine)->stats().num_free_blocks, 64);
}

TEST(EngineTest, PendingCapAndShutdown) {
  FakeModelRunner fake(Slow());
  EngineOptions o = Options();
  o.max_pending_requests = 2;
  auto engine = Engine::Create(fake, nullptr, o);
  ASSERT_TRUE(engine.ok());
  auto a = (*engine)->Submit(Req("a", 190));
  auto b = (*engine)->Submit(Req("b", 190));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*engine)->Submit(Req("c", 1)).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ((*engine)->Submit(Req("", 1)).status().code(), StatusCode::kInvalidArgument);
  (*engine)->Shutdown();
  EXPECT_EQ((*engine)->Submit(Req("d", 1)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Drain(**a).back().finish_reason, FinishReason::kAbort);
  EXPECT_EQ(Drain(**b).back().finish_reason, FinishReason::kAbort);
}

TEST(EngineTest, ManyThreadsSubmitAndCancelConcurrently) {
  FakeModelRunner fake;
  auto engine = Engine::Create(fake, nullptr, Options());
  ASSERT_TRUE(engine.ok());
  std::vector<std::thread> threads;
  std::atomic<int> finished{0}, aborted{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        auto s = (*engine)->Submit(Req(id, 1 + i % 7));
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        if (i % 5 == 0) (*engine)->Cancel(id);
        std::vector<RequestOutput> outs = Drain(**s);
        ASSERT_FALSE(outs.empty());
        (outs.back().finish_reason == FinishReason::kAbort ? aborted : finished)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(finished + aborted, 200);
  for (int i = 0; i < 1000 && (*engine)->stats().num_requests != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ((*engine)->stats().num_free_blocks, 64);
}

}  // namespace
}  // namespace tide
