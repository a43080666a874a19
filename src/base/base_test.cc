#include <gtest/gtest.h>

#include "base/rng.h"
#include "base/status.h"

namespace tide {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  *out = h;
  return OkStatus();
}

TEST(StatusTest, ResultCarriesValueOrError) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status s = UseHalf(7, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: odd: 7");
  EXPECT_EQ(s.WithContext("f.gguf").message(), "f.gguf: odd: 7");
}

TEST(RngTest, CounterBasedIsPureFunction) {
  EXPECT_EQ(UniformAt(42, 7), UniformAt(42, 7));
  EXPECT_NE(UniformAt(42, 7), UniformAt(42, 8));
  EXPECT_NE(UniformAt(42, 7), UniformAt(43, 7));
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = UniformAt(1, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

}  // namespace
}  // namespace tide
