#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/embedding/embedding.h"
#include "tensor/dtype.h"

namespace tide {
namespace {

TEST(EmbeddingCudaTest, MatchesRefExactlyForEveryFloatType) {
  TIDE_REQUIRE_CUDA();
  Rng rng(7);
  const int64_t vocab = 301, dim = 72, n = 40;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::vector<float> values(static_cast<size_t>(vocab * dim));
    for (float& f : values) f = rng.Normal();
    std::vector<uint8_t> bytes(DTypeBytes(dt, values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      if (dt == DType::kF32) std::memcpy(bytes.data() + 4 * i, &values[i], 4);
      const uint16_t h = dt == DType::kF16 ? F32ToF16(values[i]) : F32ToBf16(values[i]);
      if (dt != DType::kF32) std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng.NextU64() % vocab);
    tokens[0] = 0;
    tokens[1] = static_cast<int32_t>(vocab - 1);
    std::vector<float> want(static_cast<size_t>(n * dim), std::numeric_limits<float>::quiet_NaN());
    EmbeddingParams p{tokens.data(), Tensor{dt, Shape{vocab, dim}, bytes.data()}, want.data(), n};
    ASSERT_TRUE(p.check().ok());
    EmbeddingRef(p);
    DeviceBuffer dtab = testing::Upload(bytes), dtok = testing::Upload(tokens);
    DeviceBuffer dout = testing::Upload(std::vector<float>(want.size(), std::numeric_limits<float>::quiet_NaN()));
    Embedding(testing::CudaCtx(),
              EmbeddingParams{dtok.as<int32_t>(), Tensor{dt, Shape{vocab, dim}, dtab.data()}, dout.as<float>(), n});
    const std::vector<float> got = testing::Download<float>(dout, want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << DTypeName(dt);  // widening is exact
  }
}

}  // namespace
}  // namespace tide
