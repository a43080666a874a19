// KernelTracer on the GPU: kernels of known duration with host sleeps between them,
// eagerly and replayed from a CUDA graph recorded before tracing started (as decode
// graphs are), plus a copy. Skips, saying why, without a GPU or without libcupti.
#include "backend/cuda/kernel_trace.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "backend/cuda_test_util.h"
#include "backend/device_graph.h"

namespace tide::testing {
bool LaunchSpinKernel(void* stream, uint64_t ns);  // kernel_trace_test_kernel.cu
}  // namespace tide::testing

namespace tide {
namespace {

using cuda::KernelTracer;
using testing::LaunchSpinKernel;

constexpr uint64_t kMs = 1000000;

size_t Count(const std::vector<GpuActivity>& acts, TimeWindow w, GpuActivity::Kind kind) {
  size_t n = 0;
  for (const GpuActivity& a : acts) n += a.kind == kind && a.start_ns >= w.start_ns && a.end_ns <= w.end_ns;
  return n;
}

TEST(KernelTraceCudaTest, MeasuresBusyTimeAndGaps) {
  TIDE_REQUIRE_CUDA();
  Result<std::unique_ptr<KernelTracer>> made = KernelTracer::Create();
  if (!made.ok()) {
    std::printf("skipping: %s\n", made.status().ToString().c_str());
    GTEST_SKIP() << made.status().ToString();
  }
  KernelTracer& tracer = **made;
  std::printf("CUPTI: %s\n", tracer.library().c_str());
  Result<DeviceStream> stream = DeviceStream::Create(DeviceKind::kCuda);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ExecContext ctx = testing::CudaCtx();
  ctx.stream = stream->get();

  // Recorded before tracing starts: three 0.5 ms kernels back to back.
  Result<DeviceGraph> graph = DeviceGraph::Capture(ctx, [&]() -> Status {
    for (int i = 0; i < 3; ++i)
      if (!LaunchSpinKernel(ctx.stream, kMs / 2)) return Internal("spin kernel launch");
    return OkStatus();
  });
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_TRUE(LaunchSpinKernel(ctx.stream, 1000));  // load the module before timing
  ASSERT_TRUE(Synchronize(ctx).ok());

  ASSERT_TRUE(tracer.Start().ok());

  // Eager: 2 ms kernel, 1 ms of host sleep, 1 ms kernel.
  const TimeWindow eager_w{tracer.NowNs(), 0};
  ASSERT_TRUE(LaunchSpinKernel(ctx.stream, 2 * kMs));
  ASSERT_TRUE(Synchronize(ctx).ok());
  // A sleep overshoots by a scheduler tick on a busy VM: time what was actually slept.
  const uint64_t s0 = tracer.NowNs();
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double slept_s = 1e-9 * static_cast<double>(tracer.NowNs() - s0);
  ASSERT_TRUE(LaunchSpinKernel(ctx.stream, 1 * kMs));
  ASSERT_TRUE(Synchronize(ctx).ok());
  const TimeWindow eager{eager_w.start_ns, tracer.NowNs()};

  // Replayed graph.
  const uint64_t g0 = tracer.NowNs();
  ASSERT_TRUE(graph->Launch(ctx).ok());
  ASSERT_TRUE(Synchronize(ctx).ok());
  const TimeWindow replay{g0, tracer.NowNs()};

  // A 16 MiB upload.
  std::vector<float> host(4 << 20, 1.5f);
  DeviceBuffer buf = testing::Upload(host);
  const uint64_t c0 = tracer.NowNs();
  ASSERT_TRUE(CopyToDevice(ctx, buf.data(), host.data(), static_cast<int64_t>(host.size() * sizeof(float))).ok());
  ASSERT_TRUE(Synchronize(ctx).ok());
  const TimeWindow copy{c0, tracer.NowNs()};

  Result<std::vector<GpuActivity>> acts = tracer.Collect();
  ASSERT_TRUE(acts.ok()) << acts.status().ToString();
  ASSERT_TRUE(tracer.Stop().ok());

  const StepOverhead e = MeasureStepOverhead(*acts, eager);
  std::printf("eager: wall %.3f ms, busy %.3f ms, gaps %.3f ms, host %.3f + %.3f ms, %lld activities\n", 1e3 * e.wall_s,
              1e3 * e.busy_s, 1e3 * e.gaps_s, 1e3 * e.host_before_s, 1e3 * e.host_after_s,
              static_cast<long long>(e.num_activities));
  EXPECT_EQ(Count(*acts, eager, GpuActivity::Kind::kKernel), 2u);
  EXPECT_NEAR(e.busy_s, 3e-3, 0.05e-3);
  // The sleep, plus a synchronize's return and a launch (tens of microseconds).
  EXPECT_GE(e.gaps_s, slept_s);
  EXPECT_LE(e.gaps_s, slept_s + 0.5e-3);
  EXPECT_LE(e.host_before_s + e.host_after_s, 0.5e-3);
  EXPECT_NEAR(e.wall_s, e.busy_s + e.gaps_s + e.host_before_s + e.host_after_s, 1e-9);

  const StepOverhead g = MeasureStepOverhead(*acts, replay);
  std::printf("graph: wall %.3f ms, busy %.3f ms, gaps %.3f ms, host %.3f + %.3f ms, %lld activities\n", 1e3 * g.wall_s,
              1e3 * g.busy_s, 1e3 * g.gaps_s, 1e3 * g.host_before_s, 1e3 * g.host_after_s,
              static_cast<long long>(g.num_activities));
  EXPECT_EQ(Count(*acts, replay, GpuActivity::Kind::kKernel), 3u);
  EXPECT_NEAR(g.busy_s, 1.5e-3, 0.05e-3);
  EXPECT_LE(g.gaps_s, 0.05e-3);  // kernels of one graph follow each other within microseconds
  EXPECT_GT(g.busy_fraction(), 0.8);

  EXPECT_EQ(Count(*acts, copy, GpuActivity::Kind::kMemcpy), 1u);
  EXPECT_GT(MeasureStepOverhead(*acts, copy).busy_s, 0);
}

TEST(KernelTraceCudaTest, CollectBeforeStartIsAnError) {
  TIDE_REQUIRE_CUDA();
  Result<std::unique_ptr<KernelTracer>> made = KernelTracer::Create();
  if (!made.ok()) {
    std::printf("skipping: %s\n", made.status().ToString().c_str());
    GTEST_SKIP() << made.status().ToString();
  }
  EXPECT_EQ((*made)->Collect().status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tide
