#include "backend/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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

}  // namespace
}  // namespace tide
