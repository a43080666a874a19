#include "backend/device_memory.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "backend/cuda_test_util.h"

namespace tide {
namespace {

TEST(DeviceMemoryTest, CpuBufferRoundTrip) {
  auto b = DeviceBuffer::Allocate(DeviceKind::kCpu, 1000);
  ASSERT_TRUE(b.ok());
  std::vector<uint8_t> in(1000), out(1000, 0);
  std::iota(in.begin(), in.end(), 0);
  const ExecContext ctx;
  ASSERT_TRUE(CopyToDevice(ctx, b->data(), in.data(), 1000).ok());
  ASSERT_TRUE(CopyToHost(ctx, out.data(), b->data(), 1000).ok());
  EXPECT_EQ(in, out);
  DeviceBuffer moved = std::move(*b);
  EXPECT_EQ(moved.size(), 1000);
  EXPECT_EQ(b->data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
}

TEST(DeviceMemoryTest, CudaRoundTripAndCopies) {
  TIDE_REQUIRE_CUDA();
  const ExecContext ctx = testing::CudaCtx();
  std::vector<float> in(4096);
  std::iota(in.begin(), in.end(), 1.f);
  DeviceBuffer a = testing::Upload(in);
  auto b = DeviceBuffer::Allocate(DeviceKind::kCuda, 4096 * 4);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(CopyOnDevice(ctx, b->data(), a.data(), 4096 * 4).ok());
  EXPECT_EQ(testing::Download<float>(*b, 4096), in);
  // 2-D: the first 3 floats of each 16-float row into rows of 4.
  ASSERT_TRUE(FillZero(ctx, b->data(), 4096 * 4).ok());
  ASSERT_TRUE(CopyOnDevice2D(ctx, b->data(), 16, a.data(), 64, 12, 10).ok());
  const std::vector<float> got = testing::Download<float>(*b, 40);
  for (int r = 0; r < 10; ++r) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(got[r * 4 + c], in[r * 16 + c]);
    EXPECT_EQ(got[r * 4 + 3], 0.f);
  }
  // Staged upload of more than one staging chunk.
  std::vector<uint8_t> big((size_t{80} << 20) + 123);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  auto d = DeviceBuffer::Allocate(DeviceKind::kCuda, static_cast<int64_t>(big.size()));
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(CopyToDeviceStaged(ctx, d->data(), big.data(), static_cast<int64_t>(big.size())).ok());
  EXPECT_EQ(testing::Download<uint8_t>(*d, big.size()), big);
}

TEST(DeviceMemoryTest, HugeCudaAllocationIsAnErrorNotAnAbort) {
  TIDE_REQUIRE_CUDA();
  auto b = DeviceBuffer::Allocate(DeviceKind::kCuda, int64_t{1} << 50);  // 1 PiB
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted) << b.status().ToString();
  // The device still works afterwards.
  auto small = DeviceBuffer::Allocate(DeviceKind::kCuda, 256);
  EXPECT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_TRUE(Synchronize(testing::CudaCtx()).ok());
}

TEST(DeviceMemoryTest, WithoutCudaSaysWhy) {
  std::string why;
  if (CudaAvailable(&why)) GTEST_SKIP() << "a GPU is present";
  EXPECT_FALSE(why.empty());
  auto b = DeviceBuffer::Allocate(DeviceKind::kCuda, 16);
  EXPECT_FALSE(b.ok());
}

}  // namespace
}  // namespace tide
