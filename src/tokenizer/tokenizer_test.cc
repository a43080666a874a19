#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/file.h"

namespace tide {
namespace {

constexpr const char* kStoriesHf = "../shared/models/stories260K/hf";

std::unique_ptr<Tokenizer> LoadOrSkip(const std::string& dir) {
  auto t = Tokenizer::FromHfFolder(dir);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

// A tiny byte-level BPE written inline: merges in both forms, added tokens.
std::string WriteTinyByteLevel() {
  std::string dir = testing::TempDir() + "/tiny_bl";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << R"({
    "added_tokens": [{"id": 10, "content": "<|end|>", "special": true, "normalized": false},
                     {"id": 11, "content": "<x>", "special": false, "lstrip": true, "rstrip": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|end|>"}}, {"Sequence": {"id": "A"}}],
                       "special_tokens": {"<|end|>": {"id": "<|end|>", "ids": [10]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4, "c": 5, "abc": 6, "!": 7},
              "merges": ["a b", ["Ġ", "ab"], "ab c"]}
  })";
  return dir;
}

TEST(TokenizerTest, TinyByteLevelEncodeDecode) {
  auto t = LoadOrSkip(WriteTinyByteLevel());
  ASSERT_TRUE(t);
  auto ids = t->Encode("ab abc!", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{2, 4, 5, 7}));
  auto with_bos = t->Encode("ab", true);
  EXPECT_EQ(*with_bos, (std::vector<int32_t>{10, 2}));
  // Added tokens are matched in the text; rstrip/lstrip swallow the spaces around <x>.
  auto added = t->Encode("ab <x> ab<|end|>", false);
  EXPECT_EQ(*added, (std::vector<int32_t>{2, 11, 2, 10}));
  EXPECT_EQ(*t->Decode({2, 4, 5, 7, 10}, false), "ab abc!<|end|>");
  EXPECT_EQ(*t->Decode({2, 4, 5, 7, 10}, true), "ab abc!");
  EXPECT_TRUE(t->IsSpecial(10));
  EXPECT_FALSE(t->IsSpecial(11));
  EXPECT_FALSE(t->Decode({99}, false).ok());
  EXPECT_FALSE(t->Encode("\xff", false).ok());
}

TEST(TokenizerTest, MalformedFilesAreErrors) {
  std::string dir = testing::TempDir() + "/bad_tok";
  std::filesystem::create_directories(dir);
  const char* bad[] = {
      "{",
      "[]",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})",
      R"({"model": {"type": "Unigram", "vocab": []}})",
      R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}})",
      R"({"model": {"type": "BPE", "vocab": {}}, "normalizer": {"type": "Nope"}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}})",
      R"({"model": {"type": "BPE", "vocab": {}}, "added_tokens": [{"id": -3, "content": "x"}]})",
      R"({"model": {"type": "BPE", "vocab": {}}, "added_tokens": [{"id": 2147483647, "content": "x"}]})",
      R"({"model": {"type": "BPE", "vocab": {"a": 2147483000}}})",
  };
  for (const char* text : bad) {
    std::ofstream(dir + "/tokenizer.json", std::ios::trunc) << text;
    auto t = Tokenizer::FromHfFolder(dir);
    EXPECT_FALSE(t.ok()) << text;
  }
  EXPECT_EQ(Tokenizer::FromHfFolder(dir + "/missing").status().code(), StatusCode::kNotFound);
}

TEST(TokenizerSharedTest, Stories260KHfRoundTrip) {
  if (!IsDirectory(kStoriesHf)) {
    GTEST_SKIP() << "shared models not present: " << kStoriesHf;
  }
  auto t = LoadOrSkip(kStoriesHf);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->vocab_size(), 512);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_ids(), std::vector<int32_t>{2});
  EXPECT_EQ(t->bos_token(), "<s>");
  EXPECT_EQ(t->eos_token(), "</s>");
  const std::string texts[] = {"Once upon a time, there was a little girl named Lily.",
                               "  two  spaces\nand a newline", "émoji 🦙 and 日本語", "", " "};
  for (const std::string& s : texts) {
    auto ids = t->Encode(s, true);
    ASSERT_TRUE(ids.ok());
    if (!s.empty()) {
      EXPECT_EQ((*ids)[0], 1);
    }
    auto back = t->Decode(*ids, true);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  auto ids = t->Encode("Once upon a time", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_GT(ids->size(), 2u);
}

}  // namespace
}  // namespace tide
