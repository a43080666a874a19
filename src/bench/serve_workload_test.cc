#include "bench/serve_workload.h"

#include <gtest/gtest.h>

#include "base/file.h"

namespace tide::bench {
namespace {

TEST(ServeWorkload, ParseLengthRange) {
  auto r = ParseLengthRange("--x", "100", 0.0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lo, 100);
  EXPECT_EQ(r->hi, 100);
  r = ParseLengthRange("--x", "100", 0.5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lo, 50);
  EXPECT_EQ(r->hi, 150);
  r = ParseLengthRange("--x", "8:32", 0.0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lo, 8);
  EXPECT_EQ(r->hi, 32);
  for (const char* bad : {"", "x", "0", "-3", "9:3", "3:", "4x", "1:2:3"})
    EXPECT_FALSE(ParseLengthRange("--x", bad, 0.0).ok()) << bad;
  EXPECT_FALSE(ParseLengthRange("--x", "10", 1.5).ok());
}

TEST(ServeWorkload, RandomIsSeededAndInRange) {
  TokenCounter counter(nullptr);
  WorkloadOptions o;
  o.num_prompts = 50;
  o.input_len = {20, 60};
  o.output_len = {5, 9};
  o.seed = 7;
  auto a = BuildWorkload(o, counter);
  auto b = BuildWorkload(o, counter);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(a->size(), 50u);
  for (size_t i = 0; i < a->size(); ++i) {
    const WorkloadItem& it = (*a)[i];
    EXPECT_EQ(it.prompt, (*b)[i].prompt);
    // The estimate reaches the drawn length and overshoots by at most one word.
    EXPECT_GE(it.prompt_tokens, 20);
    EXPECT_LE(it.prompt_tokens, 62);
    EXPECT_GE(it.max_tokens, 5);
    EXPECT_LE(it.max_tokens, 9);
    EXPECT_EQ(it.depends_on, -1);
  }
  EXPECT_NE((*a)[0].prompt, (*a)[1].prompt);
  o.seed = 8;
  auto c = BuildWorkload(o, counter);
  ASSERT_TRUE(c.ok());
  EXPECT_NE((*a)[0].prompt, (*c)[0].prompt);
}

TEST(ServeWorkload, SharedPrefixGroups) {
  TokenCounter counter(nullptr);
  WorkloadOptions o;
  o.kind = DatasetKind::kSharedPrefix;
  o.num_prompts = 8;
  o.input_len = {10, 10};
  o.shared_prefix_len = 100;
  o.shared_prefix_groups = 2;
  auto w = BuildWorkload(o, counter);
  ASSERT_TRUE(w.ok());
  const std::string p0 = (*w)[0].prompt.substr(0, 300), p1 = (*w)[1].prompt.substr(0, 300);
  EXPECT_NE(p0, p1);
  for (size_t i = 0; i < w->size(); ++i) EXPECT_EQ((*w)[i].prompt.substr(0, 300), i % 2 ? p1 : p0);
  EXPECT_NE((*w)[0].prompt, (*w)[2].prompt);  // suffixes differ
}

TEST(ServeWorkload, MultiTurnChainsTurns) {
  TokenCounter counter(nullptr);
  WorkloadOptions o;
  o.kind = DatasetKind::kMultiTurn;
  o.num_prompts = 9;
  o.multi_turn_turns = 3;
  o.input_len = {10, 10};
  auto w = BuildWorkload(o, counter);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 9u);
  for (size_t i = 0; i < 9; ++i) {
    const WorkloadItem& it = (*w)[i];
    EXPECT_EQ(it.turn, static_cast<int>(i / 3));
    EXPECT_EQ(it.conversation, static_cast<int>(i % 3));
    if (it.turn == 0) {
      EXPECT_EQ(it.depends_on, -1);
    } else {
      ASSERT_GE(it.depends_on, 0);
      ASSERT_LT(it.depends_on, static_cast<int>(i));
      EXPECT_EQ((*w)[static_cast<size_t>(it.depends_on)].conversation, it.conversation);
      EXPECT_EQ((*w)[static_cast<size_t>(it.depends_on)].turn, it.turn - 1);
    }
  }
}

TEST(ServeWorkload, FileJsonl) {
  const std::string path = ::testing::TempDir() + "/serve_workload_test.jsonl";
  ASSERT_TRUE(WriteStringToFile(path, "{\"prompt\": \"hello there\", \"output_len\": 7}\n\n{\"prompt\": \"x\"}\n").ok());
  TokenCounter counter(nullptr);
  WorkloadOptions o;
  o.kind = DatasetKind::kFile;
  o.dataset_path = path;
  o.output_len = {3, 3};
  auto w = BuildWorkload(o, counter);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ(w->size(), 2u);
  EXPECT_EQ((*w)[0].max_tokens, 7);
  EXPECT_EQ((*w)[1].max_tokens, 3);
  EXPECT_EQ((*w)[0].prompt_tokens, 3);  // 11 bytes / 4, rounded up
  ASSERT_TRUE(WriteStringToFile(path, "{\"prompt\": 3}\n").ok());
  auto bad = BuildWorkload(o, counter);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":1"), std::string::npos);
  EXPECT_FALSE(ParseDatasetKind("sharegpt").ok());
}

}  // namespace
}  // namespace tide::bench
