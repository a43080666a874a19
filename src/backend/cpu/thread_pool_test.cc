#include "backend/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tide {
namespace {

TEST(ThreadPoolTest, ParallelForCoversRangeOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    for (int rep = 0; rep < 50; ++rep) {
      pool.ParallelFor(n, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
    }
    for (auto& h : hits) ASSERT_EQ(h.load(), 50);
  }
}

TEST(ThreadPoolTest, RunReachesEveryThread) {
  ThreadPool pool(4);
  std::atomic<int> mask{0};
  pool.Run([&](int t, int nt) {
    EXPECT_EQ(nt, 4);
    mask |= 1 << t;
  });
  EXPECT_EQ(mask.load(), 0xf);
}

// More threads than cores, so some workers are descheduled when a job arrives and the
// caller runs their index instead: every index must still run exactly once per Run, and
// never concurrently with itself.
TEST(ThreadPoolTest, EveryIndexRunsOncePerRunWhenOversubscribed) {
  const int nt = static_cast<int>(std::thread::hardware_concurrency()) * 2 + 2;
  ThreadPool pool(nt);
  std::vector<std::atomic<int>> runs(static_cast<size_t>(nt));
  std::vector<std::atomic<int>> inside(static_cast<size_t>(nt));
  std::atomic<int> overlaps{0};
  constexpr int kRuns = 2000;
  for (int r = 0; r < kRuns; ++r) {
    pool.Run([&](int t, int n) {
      EXPECT_EQ(n, nt);
      if (inside[static_cast<size_t>(t)].fetch_add(1) != 0) overlaps++;
      runs[static_cast<size_t>(t)]++;
      inside[static_cast<size_t>(t)].fetch_sub(1);
    });
  }
  for (auto& c : runs) EXPECT_EQ(c.load(), kRuns);
  EXPECT_EQ(overlaps.load(), 0);
}

}  // namespace
}  // namespace tide
