#include "ops/logits_process/logits_process.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "ops/logits_process/logits_process_test_util.h"

namespace tide {
namespace {

// The same float operations per logit in the same order: bit-identical.
TEST(LogitsProcessTest, CpuMatchesRef) {
  Rng rng(41);
  ThreadPool pool3(3);
  for (const auto& [rows, vocab, hist] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {16, 5000, 300}, {3, 128256, 4000}, {9, 40, 50}, {1, 1, 3}}) {
    const testing::ProcessCase c = testing::MakeProcessCase(rows, vocab, hist, rng);
    std::vector<float> want = c.logits;
    ASSERT_TRUE(c.Params(want.data()).check().ok()) << c.Params(want.data()).check().ToString();
    LogitsProcessRef(c.Params(want.data()));
    size_t changed = 0;
    for (size_t i = 0; i < want.size(); ++i) changed += std::memcmp(&want[i], &c.logits[i], 4) != 0;
    if (vocab > 1) {
      EXPECT_GT(changed, static_cast<size_t>(rows)) << "the case must exercise the steps";
    }
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
      std::vector<float> got = c.logits;
      LogitsProcess(ExecContext{.pool = pool}, c.Params(got.data()));
      ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0) << "vocab " << vocab;
    }
  }
}

// Null lists and penalties: nothing to do, nothing changes.
TEST(LogitsProcessTest, NullListsChangeNothing) {
  Rng rng(42);
  std::vector<float> x(3 * 100);
  for (float& f : x) f = rng.Uniform(-3.f, 3.f);
  std::vector<float> y = x;
  LogitsProcessParams p;
  p.logits = y.data();
  p.rows = 3;
  p.vocab = 100;
  ASSERT_TRUE(p.check().ok());
  LogitsProcess(ExecContext{}, p);
  EXPECT_EQ(y, x);
}

TEST(LogitsProcessTest, CheckRejectsBadShapes) {
  float x[4] = {1, 2, 3, 4};
  LogitsProcessParams p;
  p.logits = x;
  p.rows = 1;
  p.vocab = 4;
  EXPECT_TRUE(p.check().ok());
  p.vocab = 0;
  EXPECT_FALSE(p.check().ok());
  p.vocab = 4;
  p.logits = nullptr;
  EXPECT_FALSE(p.check().ok());
  p.rows = -1;
  EXPECT_FALSE(p.check().ok());
}

}  // namespace
}  // namespace tide
