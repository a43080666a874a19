#include "tensor/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "base/rng.h"

namespace tide {
namespace {

TEST(DTypeTest, F16RoundTripsEveryHalf) {
  // Every finite f16 converts to f32 and back unchanged.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00u) == 0x7c00u) continue;  // inf/nan
    float f = F16ToF32(static_cast<uint16_t>(h));
    ASSERT_EQ(F32ToF16(f), static_cast<uint16_t>(h)) << h;
  }
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F32ToF16(65520.f), 0x7c00);  // rounds to inf
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
}

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(F32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToF32(0x3f80), 1.0f);
  float f = 1.0f + std::ldexp(1.0f, -8);  // exactly half-way
  EXPECT_EQ(F32ToBf16(f), 0x3f80);
}

TEST(DTypeTest, QuantisedRowsRoundTripWithinStep) {
  Rng rng(3);
  std::vector<float> x(256), y(256);
  for (auto& v : x) v = rng.Normal();
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    std::vector<uint8_t> q(DTypeBytes(t, 256));
    QuantizeRow(t, x.data(), q.data(), 256);
    DequantizeRow(t, q.data(), y.data(), 256);
    for (int b = 0; b < 8; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const float step = amax / (t == DType::kQ8_0 ? 127.f : 8.f);
      // Q4_0 spans [-8d, 7d]: a value opposite the largest one can be a full step off.
      const float tol = (t == DType::kQ8_0 ? 0.51f : 1.01f) * step + 1e-3f;
      for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), tol);
    }
  }
}

TEST(DTypeTest, Q4_0NibbleLayout) {
  // Hand-made block: d = 1, byte j = (low = j, high = 15 - j) -> values j-8 and 7-j.
  BlockQ4_0 b{};
  b.d = F32ToF16(1.f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  DequantizeRow(DType::kQ4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], static_cast<float>(j - 8));
    EXPECT_EQ(out[j + 16], static_cast<float>(7 - j));
  }
}

}  // namespace
}  // namespace tide
