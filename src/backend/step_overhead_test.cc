#include "backend/step_overhead.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "base/rng.h"

namespace tide {
namespace {

constexpr double kNs = 1e-9;

GpuActivity K(uint64_t s, uint64_t e) { return {GpuActivity::Kind::kKernel, s, e}; }

TEST(StepOverheadTest, NoActivityIsAllHostTime) {
  const StepOverhead r = MeasureStepOverhead({}, {1000, 4000});
  EXPECT_EQ(r.num_steps, 1);
  EXPECT_EQ(r.num_activities, 0);
  EXPECT_DOUBLE_EQ(r.wall_s, 3000 * kNs);
  EXPECT_DOUBLE_EQ(r.busy_s, 0);
  EXPECT_DOUBLE_EQ(r.host_before_s, 3000 * kNs);
  EXPECT_DOUBLE_EQ(r.overhead_fraction(), 1.0);
}

TEST(StepOverheadTest, EmptyWindowCountsNothing) {
  const std::vector<GpuActivity> acts = {K(0, 5000)};
  for (TimeWindow w : {TimeWindow{2000, 2000}, TimeWindow{3000, 1000}}) {
    const StepOverhead r = MeasureStepOverhead(acts, w);
    EXPECT_EQ(r.num_activities, 0);
    EXPECT_DOUBLE_EQ(r.wall_s, 0);
    EXPECT_DOUBLE_EQ(r.busy_s, 0);
    EXPECT_DOUBLE_EQ(r.overhead_fraction(), 0);
  }
}

TEST(StepOverheadTest, DisjointActivitiesSplitGapsAndHostTime) {
  const std::vector<GpuActivity> acts = {K(5000, 9000), {GpuActivity::Kind::kMemcpy, 2000, 4000}};
  const StepOverhead r = MeasureStepOverhead(acts, {1000, 11000});
  EXPECT_EQ(r.num_activities, 2);
  EXPECT_DOUBLE_EQ(r.wall_s, 10000 * kNs);
  EXPECT_DOUBLE_EQ(r.busy_s, 6000 * kNs);
  EXPECT_DOUBLE_EQ(r.gaps_s, 1000 * kNs);
  EXPECT_DOUBLE_EQ(r.host_before_s, 1000 * kNs);
  EXPECT_DOUBLE_EQ(r.host_after_s, 2000 * kNs);
  EXPECT_NEAR(r.overhead_fraction(), 0.4, 1e-12);
  EXPECT_NEAR(r.busy_fraction(), 0.6, 1e-12);
}

TEST(StepOverheadTest, OverlappingActivitiesCountOnce) {
  // Out of order; one nested inside another, one overlapping the tail, one touching.
  const std::vector<GpuActivity> acts = {K(4500, 7000), K(2000, 5000), K(3000, 4000), K(7000, 7500)};
  const StepOverhead r = MeasureStepOverhead(acts, {0, 10000});
  EXPECT_EQ(r.num_activities, 4);
  EXPECT_DOUBLE_EQ(r.busy_s, 5500 * kNs);
  EXPECT_DOUBLE_EQ(r.gaps_s, 0);
  EXPECT_DOUBLE_EQ(r.host_before_s, 2000 * kNs);
  EXPECT_DOUBLE_EQ(r.host_after_s, 2500 * kNs);
}

TEST(StepOverheadTest, ActivitiesStraddlingTheWindowAreClipped) {
  const std::vector<GpuActivity> acts = {K(500, 1500), K(1800, 2500), K(0, 1000), K(2000, 3000), K(100, 900)};
  const StepOverhead r = MeasureStepOverhead(acts, {1000, 2000});
  EXPECT_EQ(r.num_activities, 2);  // those ending at or starting at the edge have nothing inside
  EXPECT_DOUBLE_EQ(r.busy_s, 700 * kNs);
  EXPECT_DOUBLE_EQ(r.gaps_s, 300 * kNs);
  EXPECT_DOUBLE_EQ(r.host_before_s, 0);
  EXPECT_DOUBLE_EQ(r.host_after_s, 0);
  // One activity covering the whole window: fully busy.
  const StepOverhead all = MeasureStepOverhead(std::vector<GpuActivity>{K(0, 9000)}, {1000, 2000});
  EXPECT_DOUBLE_EQ(all.busy_s, 1000 * kNs);
  EXPECT_DOUBLE_EQ(all.overhead_fraction(), 0);
}

// Random activities against a nanosecond-by-nanosecond occupancy map.
TEST(StepOverheadTest, MatchesBruteForceOnRandomRecords) {
  Rng rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const uint64_t ws = rng.NextU64() % 200, we = ws + 1 + rng.NextU64() % 400;
    std::vector<GpuActivity> acts;
    const int n = static_cast<int>(rng.NextU64() % 12);
    for (int i = 0; i < n; ++i) {
      const uint64_t s = rng.NextU64() % 700;
      acts.push_back(K(s, s + rng.NextU64() % 80));
    }
    std::vector<bool> busy(700 + 80, false);
    for (const GpuActivity& a : acts)
      for (uint64_t t = a.start_ns; t < a.end_ns; ++t) busy[t] = true;
    uint64_t nbusy = 0, first = we, last = ws;
    for (uint64_t t = ws; t < we; ++t)
      if (busy[t]) {
        ++nbusy;
        first = std::min(first, t);
        last = t + 1;
      }
    const StepOverhead r = MeasureStepOverhead(acts, {ws, we});
    ASSERT_NEAR(r.busy_s, static_cast<double>(nbusy) * kNs, 1e-15) << "trial " << trial;
    if (nbusy == 0) {
      EXPECT_DOUBLE_EQ(r.host_before_s, r.wall_s);
      continue;
    }
    EXPECT_NEAR(r.host_before_s, static_cast<double>(first - ws) * kNs, 1e-15) << "trial " << trial;
    EXPECT_NEAR(r.host_after_s, static_cast<double>(we - last) * kNs, 1e-15) << "trial " << trial;
    EXPECT_NEAR(r.gaps_s, static_cast<double>(last - first - nbusy) * kNs, 1e-15) << "trial " << trial;
    EXPECT_NEAR(r.wall_s, r.busy_s + r.gaps_s + r.host_before_s + r.host_after_s, 1e-15);
  }
}

TEST(StepOverheadTest, SumsOverSteps) {
  const std::vector<GpuActivity> acts = {K(100, 900), K(1100, 1500)};
  StepOverhead sum;
  sum += MeasureStepOverhead(acts, {0, 1000});
  sum += MeasureStepOverhead(acts, {1000, 2000});
  EXPECT_EQ(sum.num_steps, 2);
  EXPECT_EQ(sum.num_activities, 2);
  EXPECT_DOUBLE_EQ(sum.wall_s, 2000 * kNs);
  EXPECT_DOUBLE_EQ(sum.busy_s, 1200 * kNs);
  EXPECT_DOUBLE_EQ(sum.host_before_s, 200 * kNs);
  EXPECT_DOUBLE_EQ(sum.host_after_s, 600 * kNs);
  EXPECT_NEAR(sum.overhead_fraction(), 0.4, 1e-12);
}

}  // namespace
}  // namespace tide
