#include "bench/machine_limits.h"

#include <gtest/gtest.h>

namespace tide {
namespace {

// Only plausibility: timings are never asserted tightly in tests (DESIGN.md, Testing).
// The bounds are wide enough for a loaded CI box and a large server alike.
TEST(MachineLimitsTest, ReturnsPlausiblePositiveFigures) {
  ThreadPool pool(2);
  MachineLimitsOptions options;
  options.buffer_bytes = size_t{64} << 20;
  options.bandwidth_runs = 2;
  options.fma_iterations = 1'000'000;
  options.fma_runs = 2;
  Result<MachineLimits> limits = MeasureMachineLimits(pool, options);
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  EXPECT_EQ(limits->num_threads, 2);
  EXPECT_GT(limits->mem_read_bytes_per_s, 1e8);   // > 100 MB/s
  EXPECT_LT(limits->mem_read_bytes_per_s, 1e13);  // < 10 TB/s
  EXPECT_GT(limits->fma_f32_flops_per_s, 1e8);    // > 0.1 GFLOP/s
  EXPECT_LT(limits->fma_f32_flops_per_s, 1e14);   // < 100 TFLOP/s
}

}  // namespace
}  // namespace tide
