#include "ops/embedding/embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(EmbeddingTest, CpuMatchesRefForEveryDtype) {
  Rng rng(7);
  ThreadPool pool3(3);
  struct Shape { int64_t vocab, dim, n_tokens; };
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
      const int block = GetDTypeInfo(dt).block_elems;
      for (Shape s : {Shape{1, 32, 1}, Shape{50, 64, 7}, Shape{1000, 4096, 300}, Shape{9, 96, 20}, Shape{3, 7, 5}}) {
        if (s.dim % block != 0) continue;
        std::vector<float> src(static_cast<size_t>(s.vocab * s.dim));
        for (float& f : src) f = rng.Uniform(-2.f, 2.f);
        const uint64_t row_bytes = DTypeBytes(dt, static_cast<uint64_t>(s.dim));
        std::vector<uint8_t> table(row_bytes * static_cast<uint64_t>(s.vocab));
        for (int64_t r = 0; r < s.vocab; ++r) {
          QuantizeRow(dt, src.data() + r * s.dim, table.data() + static_cast<uint64_t>(r) * row_bytes, s.dim);
        }
        std::vector<int32_t> tokens(static_cast<size_t>(s.n_tokens));
        for (int32_t& t : tokens) t = static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(s.vocab));
        tokens.back() = static_cast<int32_t>(s.vocab - 1);  // the last row: catches off-by-one row sizes
        std::vector<float> want(static_cast<size_t>(s.n_tokens * s.dim), kNaN), got = want;
        EmbeddingParams p{.tokens = tokens.data(),
                          .table = Tensor{.dtype = dt, .shape = {s.vocab, s.dim}, .data = table.data()},
                          .out = want.data(), .n_tokens = s.n_tokens};
        ASSERT_TRUE(p.check().ok()) << p.check().ToString();
        EmbeddingRef(p);
        p.out = got.data();
        Embedding(ExecContext{.pool = pool}, p);
        // A lookup plus a deterministic decode: bit-exact (memcmp so NaN never compares equal).
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
            << DTypeName(dt) << " vocab=" << s.vocab << " dim=" << s.dim;
        for (float f : got) ASSERT_FALSE(std::isnan(f));
      }
    }
  }
}

TEST(EmbeddingTest, CheckRejectsBadParams) {
  std::vector<float> table(4 * 32, 1.f);
  int32_t tokens[2] = {0, 3};
  float out[64];
  const EmbeddingParams ok{.tokens = tokens, .table = Tensor{.dtype = DType::kF32, .shape = {4, 32}, .data = table.data()},
                           .out = out, .n_tokens = 2};
  EXPECT_TRUE(ok.check().ok());
  auto expect_bad = [](const EmbeddingParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  EmbeddingParams p = ok;
  p.n_tokens = -1;
  expect_bad(p, "n_tokens");
  p = ok;
  p.table.shape = {128};
  expect_bad(p, "2-D");
  p = ok;
  p.table.shape = {0, 32};
  expect_bad(p, "shape");
  p = ok;
  p.table.dtype = DType::kI32;
  expect_bad(p, "dtype");
  p = ok;
  p.table.dtype = DType::kQ8_0;
  p.table.shape = {4, 48};
  expect_bad(p, "multiple");
  p = ok;
  p.table.data = nullptr;
  expect_bad(p, "table.data");
  p = ok;
  p.tokens = nullptr;
  expect_bad(p, "tokens is null");
  p = ok;
  p.out = nullptr;
  expect_bad(p, "out is null");
  for (int32_t bad : {-1, 4, std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()}) {
    int32_t t2[2] = {1, bad};
    p = ok;
    p.tokens = t2;
    expect_bad(p, "tokens[1]");
  }
}

}  // namespace
}  // namespace tide
