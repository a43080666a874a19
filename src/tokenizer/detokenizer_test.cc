#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

TEST(StopStringMatcherTest, HoldsBackPartialMatches) {
  StopStringMatcher m({"</stop>", "END"});
  auto a = m.Push("hello </st");
  EXPECT_EQ(a.emit, "hello ");
  EXPECT_FALSE(a.stopped);
  auto b = m.Push("uff E");
  EXPECT_EQ(b.emit, "</stuff ");
  auto c = m.Push("NDING");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.emit, "");
  EXPECT_EQ(c.matched, 1);
  EXPECT_EQ(m.Push("more").emit, "");
}

TEST(StopStringMatcherTest, FlushReturnsHeldText) {
  StopStringMatcher m({"abc"});
  EXPECT_EQ(m.Push("xxab").emit, "xx");
  EXPECT_EQ(m.Flush(), "ab");
  StopStringMatcher none({});
  EXPECT_EQ(none.Push("abc").emit, "abc");
}

}  // namespace
}  // namespace tide
