#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/matmul/matmul.h"
#include "tensor/dtype.h"

namespace tide {
namespace {

// Tolerance. The GEMV path (m <= 8) multiplies exact weights by exact f32 activations
// with f32 accumulation: error ~ sqrt(k)·2^-24·Σ|w·x| (random signs), far under 1e-6 of
// Σ|w·x|. The cuBLASLt path (m > 8) splits x into two bf16/f16 halves whose sum keeps
// ~16 mantissa bits (relative error ≤ 2^-17 per element, so ≤ 2^-17·Σ|w·x| ≈ 7.6e-6
// in the worst case of equal signs) and accumulates in f32 on the tensor cores. 2e-5 of
// Σ|w·x| bounds both with margin; a missed element or a wrong row is O(1) of it.
constexpr double kRelTol = 2e-5;

TEST(MatmulCudaTest, MatchesRefForEveryDeviceWeightType) {
  TIDE_REQUIRE_CUDA();
  Rng rng(9);
  struct Case { int64_t m, n, k; };
  const Case cases[] = {{1, 1, 1},     {1, 7, 13},     {1, 64, 96},    {2, 33, 40},   {3, 17, 31},
                        {8, 50, 264},  {1, 4096, 512}, {4, 1000, 2048}, {9, 64, 128}, {13, 49, 129},
                        {32, 97, 256}, {65, 101, 1030}, {300, 512, 768}, {130, 20, 520}};
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const Case& c : cases) {
      for (bool with_bias : {false, true}) {
        std::vector<float> wf(static_cast<size_t>(c.n * c.k)), x(static_cast<size_t>(c.m * c.k)), bias(static_cast<size_t>(c.n));
        for (float& f : wf) f = rng.Uniform(-1.f, 1.f);
        for (float& f : x) f = rng.Uniform(-2.f, 2.f);
        for (float& f : bias) f = rng.Uniform(-1.f, 1.f);
        const uint64_t row_bytes = DTypeBytes(dt, static_cast<uint64_t>(c.k));
        std::vector<uint8_t> w(row_bytes * static_cast<uint64_t>(c.n));
        for (int64_t j = 0; j < c.n; ++j) QuantizeRow(dt, wf.data() + j * c.k, w.data() + static_cast<uint64_t>(j) * row_bytes, c.k);
        std::vector<float> want(static_cast<size_t>(c.m * c.n), std::numeric_limits<float>::quiet_NaN());
        MatmulParams p;
        p.x = x.data();
        p.w = Tensor{dt, Shape{c.n, c.k}, w.data()};
        p.bias = with_bias ? bias.data() : nullptr;
        p.y = want.data();
        p.m = c.m;
        p.n = c.n;
        p.k = c.k;
        ASSERT_TRUE(p.check().ok());
        MatmulRef(p);
        // Σ|w·x| per output, from the dequantised weights the kernels see.
        std::vector<float> wq(static_cast<size_t>(c.n * c.k));
        for (int64_t j = 0; j < c.n; ++j) DequantizeRow(dt, w.data() + static_cast<uint64_t>(j) * row_bytes, wq.data() + j * c.k, c.k);
        DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w), db = testing::Upload(bias);
        DeviceBuffer dy = testing::Upload(std::vector<float>(want.size(), std::numeric_limits<float>::quiet_NaN()));
        MatmulParams d = p;
        d.x = dx.as<float>();
        d.w.data = dw.data();
        d.bias = with_bias ? db.as<float>() : nullptr;
        d.y = dy.as<float>();
        Matmul(testing::CudaCtx(), d);
        const std::vector<float> got = testing::Download<float>(dy, want.size());
        for (int64_t i = 0; i < c.m; ++i) {
          for (int64_t j = 0; j < c.n; ++j) {
            double mag = with_bias ? std::fabs(bias[static_cast<size_t>(j)]) : 0.0;
            for (int64_t t = 0; t < c.k; ++t) mag += std::fabs(static_cast<double>(wq[static_cast<size_t>(j * c.k + t)]) * x[static_cast<size_t>(i * c.k + t)]);
            const size_t at = static_cast<size_t>(i * c.n + j);
            ASSERT_NEAR(got[at], want[at], kRelTol * mag + 1e-30)
                << DTypeName(dt) << " m=" << c.m << " n=" << c.n << " k=" << c.k << " bias=" << with_bias << " at (" << i
                << ", " << j << ")";
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace tide
