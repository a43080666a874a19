#include "ops/matmul/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

constexpr DType kWeightTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0};

// A weight matrix [n, k] in `dtype`, quantised from random values, plus random x and bias.
struct Problem {
  DType dtype;
  int64_t m, n, k;
  std::vector<uint8_t> w;
  std::vector<float> x, bias;

  Problem(DType t, int64_t m_in, int64_t n_in, int64_t k_in, uint64_t seed)
      : dtype(t), m(m_in), n(n_in), k(k_in) {
    Rng rng(seed);
    std::vector<float> row(static_cast<size_t>(k));
    const uint64_t row_bytes = DTypeBytes(t, static_cast<uint64_t>(k));
    w.resize(row_bytes * static_cast<uint64_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      for (auto& v : row) v = rng.Uniform(-1.f, 1.f);
      QuantizeRow(t, row.data(), w.data() + static_cast<uint64_t>(j) * row_bytes, k);
    }
    x.resize(static_cast<size_t>(m * k));
    for (auto& v : x) v = rng.Uniform(-2.f, 2.f);
    bias.resize(static_cast<size_t>(n));
    for (auto& v : bias) v = rng.Uniform(-1.f, 1.f);
  }

  MatmulParams Params(float* y, bool with_bias, int64_t row0 = 0, int64_t rows = -1) const {
    MatmulParams p;
    p.m = rows < 0 ? m : rows;
    p.n = n;
    p.k = k;
    p.x = x.data() + row0 * k;
    p.w.dtype = dtype;
    p.w.shape = Shape{n, k};
    p.w.data = const_cast<uint8_t*>(w.data());
    p.bias = with_bias ? bias.data() : nullptr;
    p.y = y;
    return p;
  }
};

std::vector<float> Poisoned(int64_t size) {
  return std::vector<float>(static_cast<size_t>(size), std::numeric_limits<float>::quiet_NaN());
}

// Tolerance per element. The kernel's result differs from the f64 reference only by f32
// rounding (both see the same dequantised weights), and the classic bound for a sum
// computed with one rounding per addition is |err| <= gamma_L * sum|terms|, where L is
// the longest chain of additions a term goes through and gamma_L ~= L * 2^-24. Here a
// term goes through ceil(k/8) lane FMAs, 3 lane-tree additions and the bias addition,
// plus the reference's own final rounding to f32. So the bound scales with
// sum_k |x||w| (+|bias|), not with |y|, which may be tiny by cancellation: a relative
// tolerance on y would be flaky, an absolute one meaningless across shapes. The bound
// is rigorous (no flakes), and still orders of magnitude below the error of a missing
// or duplicated term (~ sum|x||w| / k).
float Tolerance(const Problem& pr, const float* w_row, int64_t i, bool with_bias, int64_t j) {
  double s = with_bias ? std::fabs(pr.bias[static_cast<size_t>(j)]) : 0.0;
  for (int64_t kk = 0; kk < pr.k; ++kk) {
    s += std::fabs(static_cast<double>(pr.x[static_cast<size_t>(i * pr.k + kk)]) * w_row[kk]);
  }
  const double chain = static_cast<double>((pr.k + 7) / 8 + 5);
  return static_cast<float>(1.01 * chain * std::ldexp(1.0, -24) * s);
}

void ExpectMatchesRef(const Problem& pr, bool with_bias, ThreadPool* pool, const std::string& what) {
  std::vector<float> y = Poisoned(pr.m * pr.n), ref = Poisoned(pr.m * pr.n);
  MatmulParams p = pr.Params(y.data(), with_bias);
  ASSERT_TRUE(p.check().ok()) << p.check().ToString();
  ExecContext ctx;
  ctx.pool = pool;
  Matmul(ctx, p);
  MatmulRef(pr.Params(ref.data(), with_bias));

  const uint64_t row_bytes = DTypeBytes(pr.dtype, static_cast<uint64_t>(pr.k));
  std::vector<float> w_row(static_cast<size_t>(pr.k));
  int failures = 0;
  for (int64_t j = 0; j < pr.n && failures < 5; ++j) {
    DequantizeRow(pr.dtype, pr.w.data() + static_cast<uint64_t>(j) * row_bytes, w_row.data(), pr.k);
    for (int64_t i = 0; i < pr.m && failures < 5; ++i) {
      const float got = y[static_cast<size_t>(i * pr.n + j)];
      const float want = ref[static_cast<size_t>(i * pr.n + j)];
      const float tol = Tolerance(pr, w_row.data(), i, with_bias, j);
      if (!(std::fabs(got - want) <= tol)) {  // also catches NaN left by an unwritten element
        ADD_FAILURE() << what << " y[" << i << ", " << j << "] = " << got << ", ref " << want
                      << ", tol " << tol;
        ++failures;
      }
    }
  }
}

struct ShapeCase {
  int64_t m, n, k;
};

// Both paths (decode up to m = 16 for q8_0/q4_0 and 64 for plain types, prefill above),
// tile edges (n % 3, n % 4, m % 4), k tails (k % 8 != 0, plain types only) and several
// k blocks in prefill (k > 512).
constexpr ShapeCase kShapes[] = {
    {1, 1, 1},    {1, 7, 13},    {1, 64, 96},  {2, 33, 40},    {3, 17, 31},   {4, 9, 200},
    {5, 11, 64},  {8, 50, 37},   {13, 49, 129}, {32, 97, 256}, {65, 101, 1030}, {130, 20, 520},
};

TEST(MatmulTest, MatchesReferenceEveryDtypeAndShape) {
  ThreadPool pool3(3);
  ThreadPool pool2(2);
  ThreadPool* pools[] = {nullptr, &pool2, &pool3};
  uint64_t seed = 1;
  for (DType t : kWeightTypes) {
    const int block = GetDTypeInfo(t).block_elems;
    for (const ShapeCase& s : kShapes) {
      const int64_t k = (s.k + block - 1) / block * block;
      Problem pr(t, s.m, s.n, k, seed++);
      for (bool with_bias : {false, true}) {
        for (ThreadPool* pool : pools) {
          const std::string what = std::string(DTypeName(t)) + " m=" + std::to_string(s.m) +
                                   " n=" + std::to_string(s.n) + " k=" + std::to_string(k) +
                                   (with_bias ? " bias" : "") + " threads=" +
                                   std::to_string(pool ? pool->num_threads() : 1);
          ExpectMatchesRef(pr, with_bias, pool, what);
        }
      }
    }
  }
}

// Row i of y must be bit-identical whatever else is in the batch and whichever thread
// count runs it: the engine's --deterministic mode and its batched == unbatched tests
// rely on it. Sub-batches cover both the decode and prefill paths and split k blocks.
TEST(MatmulTest, RowsAreBatchInvariant) {
  ThreadPool pool(3);
  constexpr int64_t kRows = 150, kN = 101;
  for (DType t : kWeightTypes) {
    const int64_t k = GetDTypeInfo(t).block_elems == 1 ? 1100 : 1120;
    Problem pr(t, kRows, kN, k, 100 + static_cast<uint64_t>(t));
    std::vector<float> full = Poisoned(kRows * kN);
    Matmul(ExecContext{DeviceKind::kCpu, &pool, nullptr}, pr.Params(full.data(), /*with_bias=*/true));
    for (int64_t rows : {1, 2, 3, 4, 5, 7, 8, 31, 64, 65, 100}) {
      for (int64_t row0 : {int64_t{0}, int64_t{17}, kRows - rows}) {
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
          std::vector<float> part = Poisoned(rows * kN);
          Matmul(ExecContext{DeviceKind::kCpu, p, nullptr}, pr.Params(part.data(), true, row0, rows));
          EXPECT_EQ(0, std::memcmp(part.data(), full.data() + row0 * kN,
                                   static_cast<size_t>(rows * kN) * sizeof(float)))
              << DTypeName(t) << " rows [" << row0 << ", " << row0 + rows << ") threads "
              << (p ? p->num_threads() : 1);
        }
      }
    }
  }
}

TEST(MatmulTest, CheckRejectsBadParams) {
  Problem pr(DType::kQ8_0, 2, 3, 64, 7);
  std::vector<float> y(6);
  ASSERT_TRUE(pr.Params(y.data(), true).check().ok());

  auto expect_bad = [&](MatmulParams p, const char* what) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << what << ": " << s.ToString();
  };
  MatmulParams p = pr.Params(y.data(), true);
  p.x = nullptr;
  expect_bad(p, "null x");
  p = pr.Params(nullptr, true);
  expect_bad(p, "null y");
  p = pr.Params(y.data(), true);
  p.w.data = nullptr;
  expect_bad(p, "null w");
  p = pr.Params(y.data(), true);
  p.m = 0;
  expect_bad(p, "m = 0");
  p = pr.Params(y.data(), true);
  p.n = 4;
  expect_bad(p, "n disagrees with w");
  p = pr.Params(y.data(), true);
  p.w.shape = Shape{3, 64, 1};
  expect_bad(p, "3-d weight");
  p = pr.Params(y.data(), true);
  p.k = 48;
  p.w.shape = Shape{3, 48};
  expect_bad(p, "k not a multiple of the q8_0 block");
  p = pr.Params(y.data(), true);
  p.w.dtype = DType::kI32;
  expect_bad(p, "i32 weights");
  std::vector<float> g(64, 1.f);
  p = pr.Params(y.data(), true);
  p.norm_weight = g.data();
  p.silu_mul = true;
  expect_bad(p, "norm and silu_mul together");
  Problem big(DType::kF32, kMatmulFusedMaxRows + 1, 3, 64, 8);
  std::vector<float> yb(static_cast<size_t>(3 * (kMatmulFusedMaxRows + 1)));
  p = big.Params(yb.data(), false);
  p.accumulate = true;
  expect_bad(p, "fusion past kMatmulFusedMaxRows rows");
}

// The fusions (norm or silu_mul prologue, accumulate epilogue) composed around the CPU
// kernel agree with the reference, which applies them in f64. The prologue's f32 steps
// add a few roundings per element of x', so the tolerance is a small multiple of
// 2^-24·Σ|w·x'| per chain step, plus the start value for accumulate.
TEST(MatmulTest, FusionsMatchReference) {
  ThreadPool pool(2);
  Rng rng(55);
  for (DType t : {DType::kF32, DType::kBF16, DType::kQ8_0}) {
    for (int mode = 0; mode < 4; ++mode) {  // norm, silu, norm+acc, silu+acc
      const bool silu = mode % 2 == 1, acc = mode >= 2;
      const int64_t m = 3, n = 21, k = 96, xk = silu ? 2 * k : k;
      Problem pr(t, m, n, k, 70 + static_cast<uint64_t>(mode));
      std::vector<float> x(static_cast<size_t>(m * xk)), g(static_cast<size_t>(k)), y0(static_cast<size_t>(m * n));
      for (float& f : x) f = rng.Uniform(-3.f, 3.f);
      for (float& f : g) f = rng.Uniform(0.2f, 2.f);
      for (float& f : y0) f = rng.Uniform(-4.f, 4.f);
      std::vector<float> y = acc ? y0 : Poisoned(m * n), ref = acc ? y0 : Poisoned(m * n);
      MatmulParams p = pr.Params(y.data(), true);
      p.x = x.data();
      p.norm_weight = silu ? nullptr : g.data();
      p.norm_eps = 1e-5f;
      p.silu_mul = silu;
      p.accumulate = acc;
      ASSERT_TRUE(p.check().ok()) << p.check().ToString();
      Matmul(ExecContext{DeviceKind::kCpu, &pool, nullptr}, p);
      MatmulParams r = p;
      r.y = ref.data();
      MatmulRef(r);
      for (int64_t i = 0; i < m; ++i) {
        double mag = 0;  // Σ|x'| · max|w| (weights in [-1, 1])
        for (int64_t c = 0; c < k; ++c) {
          const double v = x[static_cast<size_t>(i * xk + c)];
          mag += silu ? std::fabs(v * x[static_cast<size_t>(i * xk + k + c)]) : std::fabs(v) * g[static_cast<size_t>(c)] * 3;
        }
        for (int64_t j = 0; j < n; ++j) {
          const size_t at = static_cast<size_t>(i * n + j);
          const double tol = 64 * std::ldexp(1.0, -24) * (mag + 1 + (acc ? std::fabs(y0[at]) : 0.0));
          EXPECT_NEAR(y[at], ref[at], tol) << DTypeName(t) << " mode " << mode << " at (" << i << ", " << j << ")";
        }
      }
    }
  }
}

}  // namespace
}  // namespace tide
