#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/matmul/matmul.h"
#include "tensor/dtype.h"

namespace tide {
namespace {

// Tolerance. The GEMV paths (m <= 8) multiply exact weights by exact f32 activations
// with f32 accumulation: error ~ sqrt(k)·2^-24·Σ|w·x| (random signs), far under 1e-6 of
// Σ|w·x|. The cuBLASLt paths (m > 8) split x into three bf16/f16 terms that carry all
// of its bits and accumulate in f32 on the tensor cores (at worst 2^-17·Σ|w·x| ≈ 7.6e-6
// if the last term were lost). 2e-5 of Σ|w·x| bounds both with margin; a missed element
// or a wrong row is O(1) of it.
constexpr double kRelTol = 2e-5;

ExecContext CudaCtx(Precision precision) {
  ExecContext ctx = testing::CudaCtx();
  ctx.precision = precision;
  return ctx;
}

// The exact paths (Precision::kExact) for every shape and weight type.
TEST(MatmulCudaTest, MatchesRefForEveryDeviceWeightType) {
  TIDE_REQUIRE_CUDA();
  Rng rng(9);
  struct Case { int64_t m, n, k; };
  const Case cases[] = {{1, 1, 1},     {1, 7, 13},     {1, 64, 96},    {2, 33, 40},   {3, 17, 31},
                        {8, 50, 264},  {1, 4096, 512}, {4, 1000, 2048}, {9, 64, 128}, {13, 49, 129},
                        {32, 97, 256}, {65, 101, 1030}, {300, 512, 768}, {130, 20, 520},
                        // tiled GEMV: k past one shared-memory tile (m = 5..8 tiles at 2048),
                        // four rows per warp with a partial last warp (n >= 8 * 4 * SMs)
                        {6, 40, 4104},  {1, 4300, 256}, {8, 4300, 128}, {5, 4301, 72},
                        // stacked-term GEMM (8 < m <= 64)
                        {64, 300, 512}, {17, 130, 64}};
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
        Matmul(CudaCtx(Precision::kExact), d);
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

// The decode fusions (RMSNorm prologue, silu_mul prologue, residual epilogue) on the
// tiled GEMV (aligned shapes, one and several k tiles, one and four rows per warp) and
// on the plain GEMV (odd k: the prologue is written out first). The product is the
// exact path's, and the prologue adds a few f32 roundings per element (the 1/rms
// scale, silu's expf): within the same 2e-5 of Σ|w·x'| plus |y0| for the accumulated
// start value, where x' is the row the product reads.
TEST(MatmulCudaTest, FusionsMatchRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(13);
  struct Case { int64_t m, n, k; };
  const Case cases[] = {{1, 64, 4096}, {1, 300, 14336}, {3, 4300, 256}, {8, 40, 4104}, {6, 40, 4104},
                        {2, 33, 40},   {1, 7, 13},      {5, 17, 31},    {8, 50, 264}};
  enum Mode { kNorm, kSilu, kAcc, kNormAcc, kSiluAcc };
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const Case& c : cases) {
      for (Mode mode : {kNorm, kSilu, kAcc, kNormAcc, kSiluAcc}) {
        const bool silu = mode == kSilu || mode == kSiluAcc;
        const bool norm = mode == kNorm || mode == kNormAcc;
        const bool acc = mode == kAcc || mode == kNormAcc || mode == kSiluAcc;
        const int64_t xk = silu ? 2 * c.k : c.k;
        std::vector<float> wf(static_cast<size_t>(c.n * c.k)), x(static_cast<size_t>(c.m * xk)), bias(static_cast<size_t>(c.n)),
            g(static_cast<size_t>(c.k)), y0(static_cast<size_t>(c.m * c.n));
        for (float& f : wf) f = rng.Uniform(-1.f, 1.f);
        for (float& f : x) f = rng.Uniform(-3.f, 3.f);
        for (float& f : bias) f = rng.Uniform(-1.f, 1.f);
        for (float& f : g) f = rng.Uniform(0.2f, 2.f);
        for (float& f : y0) f = rng.Uniform(-4.f, 4.f);
        const uint64_t row_bytes = DTypeBytes(dt, static_cast<uint64_t>(c.k));
        std::vector<uint8_t> w(row_bytes * static_cast<uint64_t>(c.n));
        for (int64_t j = 0; j < c.n; ++j) QuantizeRow(dt, wf.data() + j * c.k, w.data() + static_cast<uint64_t>(j) * row_bytes, c.k);
        std::vector<float> want = acc ? y0 : std::vector<float>(y0.size(), std::numeric_limits<float>::quiet_NaN());
        MatmulParams p;
        p.x = x.data();
        p.w = Tensor{dt, Shape{c.n, c.k}, w.data()};
        p.bias = bias.data();
        p.y = want.data();
        p.m = c.m;
        p.n = c.n;
        p.k = c.k;
        p.norm_weight = norm ? g.data() : nullptr;
        p.norm_eps = 1e-5f;
        p.silu_mul = silu;
        p.accumulate = acc;
        ASSERT_TRUE(p.check().ok());
        MatmulRef(p);
        // x' (the row the product reads) in f64, for Σ|w·x'|.
        std::vector<double> xe(static_cast<size_t>(c.m * c.k));
        for (int64_t i = 0; i < c.m; ++i) {
          double ss = 0;
          for (int64_t t = 0; t < c.k; ++t) ss += static_cast<double>(x[static_cast<size_t>(i * xk + t)]) * x[static_cast<size_t>(i * xk + t)];
          const double inv = norm ? 1.0 / std::sqrt(ss / static_cast<double>(c.k) + 1e-5) : 1.0;
          for (int64_t t = 0; t < c.k; ++t) {
            const double v = x[static_cast<size_t>(i * xk + t)];
            xe[static_cast<size_t>(i * c.k + t)] = silu   ? v / (1 + std::exp(-v)) * x[static_cast<size_t>(i * xk + c.k + t)]
                                                   : norm ? v * inv * g[static_cast<size_t>(t)]
                                                          : v;
          }
        }
        std::vector<float> wq(static_cast<size_t>(c.n * c.k));
        for (int64_t j = 0; j < c.n; ++j) DequantizeRow(dt, w.data() + static_cast<uint64_t>(j) * row_bytes, wq.data() + j * c.k, c.k);
        DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w), db = testing::Upload(bias), dg = testing::Upload(g);
        DeviceBuffer dy = testing::Upload(acc ? y0 : std::vector<float>(y0.size(), std::numeric_limits<float>::quiet_NaN()));
        MatmulParams d = p;
        d.x = dx.as<float>();
        d.w.data = dw.data();
        d.bias = db.as<float>();
        d.y = dy.as<float>();
        d.norm_weight = norm ? dg.as<float>() : nullptr;
        Matmul(CudaCtx(Precision::kExact), d);
        const std::vector<float> got = testing::Download<float>(dy, want.size());
        for (int64_t i = 0; i < c.m; ++i) {
          for (int64_t j = 0; j < c.n; ++j) {
            const size_t at = static_cast<size_t>(i * c.n + j);
            double mag = std::fabs(bias[static_cast<size_t>(j)]) + (acc ? std::fabs(y0[at]) : 0.0);
            for (int64_t t = 0; t < c.k; ++t) mag += std::fabs(wq[static_cast<size_t>(j * c.k + t)] * xe[static_cast<size_t>(i * c.k + t)]);
            ASSERT_NEAR(got[at], want[at], kRelTol * mag)
                << DTypeName(dt) << " m=" << c.m << " n=" << c.n << " k=" << c.k << " mode=" << mode << " at (" << i << ", " << j << ")";
          }
        }
      }
    }
  }
}

// The bf16-activation GEMM (bf16 weights, Precision::kFast at m >= kMatmulBf16MinRows,
// kBf16 from m > 8). x is rounded to bf16 (relative error <= 2^-9) and everything else
// is f32, so |y - ref| <= 2^-9·Σ|w·x| + f32 rounding: 2.5e-3·Σ|w·x| bounds it, while a
// wrong or missed element is off by ~|y| ~ Σ|w·x|/sqrt(k) (>= 1.5e-2 of it at the k used
// here) or NaN. The relative norm error of random data sits near 2^-9/sqrt(3) ≈ 1e-3;
// it must also be above 1e-5, or the f32-exact path ran instead of the bf16 one.
TEST(MatmulCudaTest, Bf16ActivationsWithinBf16Error) {
  TIDE_REQUIRE_CUDA();
  Rng rng(11);
  struct Case { int64_t m, n, k; Precision precision; };
  const Case cases[] = {{65, 101, 1024, Precision::kFast},   {300, 512, 768, Precision::kFast},
                        {130, 20, 520, Precision::kFast},    {1000, 384, 4096, Precision::kFast},
                        {9, 64, 128, Precision::kBf16},      {40, 300, 2048, Precision::kBf16}};
  for (const Case& c : cases) {
    for (bool with_bias : {false, true}) {
      std::vector<float> wf(static_cast<size_t>(c.n * c.k)), x(static_cast<size_t>(c.m * c.k)), bias(static_cast<size_t>(c.n));
      for (float& f : wf) f = rng.Uniform(-1.f, 1.f);
      for (float& f : x) f = rng.Normal();
      for (float& f : bias) f = rng.Uniform(-1.f, 1.f);
      std::vector<uint8_t> w(static_cast<size_t>(c.n * c.k * 2));
      QuantizeRow(DType::kBF16, wf.data(), w.data(), c.n * c.k);
      std::vector<float> wq(wf.size());
      DequantizeRow(DType::kBF16, w.data(), wq.data(), c.n * c.k);
      std::vector<float> want(static_cast<size_t>(c.m * c.n), std::numeric_limits<float>::quiet_NaN());
      MatmulParams p;
      p.x = x.data();
      p.w = Tensor{DType::kBF16, Shape{c.n, c.k}, w.data()};
      p.bias = with_bias ? bias.data() : nullptr;
      p.y = want.data();
      p.m = c.m;
      p.n = c.n;
      p.k = c.k;
      ASSERT_TRUE(p.check().ok());
      MatmulRef(p);
      DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w), db = testing::Upload(bias);
      DeviceBuffer dy = testing::Upload(std::vector<float>(want.size(), std::numeric_limits<float>::quiet_NaN()));
      MatmulParams d = p;
      d.x = dx.as<float>();
      d.w.data = dw.data();
      d.bias = with_bias ? db.as<float>() : nullptr;
      d.y = dy.as<float>();
      Matmul(CudaCtx(c.precision), d);
      const std::vector<float> got = testing::Download<float>(dy, want.size());
      double err2 = 0, ref2 = 0;
      for (int64_t i = 0; i < c.m; ++i) {
        for (int64_t j = 0; j < c.n; ++j) {
          double mag = with_bias ? std::fabs(bias[static_cast<size_t>(j)]) : 0.0;
          for (int64_t t = 0; t < c.k; ++t) mag += std::fabs(static_cast<double>(wq[static_cast<size_t>(j * c.k + t)]) * x[static_cast<size_t>(i * c.k + t)]);
          const size_t at = static_cast<size_t>(i * c.n + j);
          ASSERT_NEAR(got[at], want[at], 2.5e-3 * mag) << "m=" << c.m << " n=" << c.n << " k=" << c.k << " at (" << i << ", " << j << ")";
          err2 += (static_cast<double>(got[at]) - want[at]) * (static_cast<double>(got[at]) - want[at]);
          ref2 += static_cast<double>(want[at]) * want[at];
        }
      }
      const double rel = std::sqrt(err2 / ref2);
      EXPECT_LT(rel, 4e-3) << "m=" << c.m << " n=" << c.n << " k=" << c.k;
      EXPECT_GT(rel, 1e-5) << "m=" << c.m << " n=" << c.n << " k=" << c.k << ": the bf16 path did not run";
    }
  }
}

// Not a check: times the exact and the bf16-activation GEMM over m at Llama-3-8B
// shapes, to place kMatmulBf16MinRows. Run with --gtest_also_run_disabled_tests.
TEST(MatmulCudaTest, DISABLED_PrefillTiming) {
  TIDE_REQUIRE_CUDA();
  Rng rng(12);
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{4096, 4096}, {28672, 4096}, {4096, 14336}}) {
    std::vector<uint8_t> w(static_cast<size_t>(n * k * 2));
    {
      std::vector<float> wf(static_cast<size_t>(n * k));
      for (float& f : wf) f = rng.Uniform(-1.f, 1.f);
      QuantizeRow(DType::kBF16, wf.data(), w.data(), n * k);
    }
    const int64_t max_m = 4096;
    std::vector<float> x(static_cast<size_t>(max_m * k));
    for (float& f : x) f = rng.Normal();
    DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w);
    DeviceBuffer dy = testing::Upload(std::vector<float>(static_cast<size_t>(max_m * n), 0.5f));
    for (const int64_t m : {16, 32, 64, 65, 96, 128, 256, 512, 1024, 4096}) {
      double us[2] = {0, 0};
      for (int e = 0; e < 2; ++e) {
        const ExecContext ctx = CudaCtx(e == 0 ? Precision::kExact : Precision::kBf16);
        MatmulParams d;
        d.x = dx.as<float>();
        d.w = Tensor{DType::kBF16, Shape{n, k}, dw.data()};
        d.y = dy.as<float>();
        d.m = m;
        d.n = n;
        d.k = k;
        for (int r = 0; r < 3; ++r) Matmul(ctx, d);
        ASSERT_TRUE(Synchronize(ctx).ok());
        constexpr int kReps = 20;
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < kReps; ++r) Matmul(ctx, d);
        ASSERT_TRUE(Synchronize(ctx).ok());
        us[e] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kReps;
      }
      std::printf("matmul n=%lld k=%lld m=%lld: exact %.1f us, bf16 x %.1f us (%.0f TFLOP/s)\n", static_cast<long long>(n),
                  static_cast<long long>(k), static_cast<long long>(m), us[0], us[1], 2.0 * m * n * k / us[1] * 1e-6);
    }
  }
}

// The GEMV is batch-invariant: row i of y is bit-identical whether x has 1 row or 8
// (the kernel's accumulator count, tile size and rows per warp change with m and n),
// with and without the RMSNorm prologue (whose sum of squares follows the staging).
TEST(MatmulCudaTest, GemvBatchInvariant) {
  TIDE_REQUIRE_CUDA();
  Rng rng(10);
  for (const int64_t n : {int64_t{96}, int64_t{4300}}) {
    const int64_t m = 8, k = 14336;
    std::vector<float> wf(static_cast<size_t>(n * k)), x(static_cast<size_t>(m * k));
    for (float& f : wf) f = rng.Uniform(-1.f, 1.f);
    for (float& f : x) f = rng.Uniform(-2.f, 2.f);
    std::vector<uint8_t> w(static_cast<size_t>(n * k * 2));
    QuantizeRow(DType::kBF16, wf.data(), w.data(), n * k);
    DeviceBuffer dx = testing::Upload(x), dw = testing::Upload(w);
    std::vector<float> g(static_cast<size_t>(k));
    for (float& f : g) f = rng.Uniform(0.2f, 2.f);
    DeviceBuffer dg = testing::Upload(g);
    for (const bool norm : {false, true}) {
    auto run = [&](int64_t rows, int64_t first) {
      DeviceBuffer dy = testing::Upload(std::vector<float>(static_cast<size_t>(rows * n), std::numeric_limits<float>::quiet_NaN()));
      MatmulParams d;
      d.x = dx.as<float>() + first * k;
      d.w = Tensor{DType::kBF16, Shape{n, k}, dw.data()};
      d.y = dy.as<float>();
      d.m = rows;
      d.n = n;
      d.k = k;
      d.norm_weight = norm ? dg.as<float>() : nullptr;
      Matmul(testing::CudaCtx(), d);
      return testing::Download<float>(dy, static_cast<size_t>(rows * n));
    };
    const std::vector<float> all = run(m, 0);
    for (int64_t i = 0; i < m; ++i) {
      const std::vector<float> one = run(1, i);
      for (int64_t j = 0; j < n; ++j)
        ASSERT_EQ(one[static_cast<size_t>(j)], all[static_cast<size_t>(i * n + j)])
            << "n=" << n << " norm=" << norm << " row " << i << " col " << j;
    }
    }
  }
}

}  // namespace
}  // namespace tide
