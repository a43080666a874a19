// UnigramModel: the segmentation rules on a tiny vocabulary, then a Unigram model trained
// by libsentencepiece, converted to tokenizer.json the way transformers' SpmConverter
// does, must give the library's own ids.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/file.h"
#include "tokenizer/models.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

using tok::UnigramModel;
using tok::UnigramPiece;

std::vector<int32_t> Ids(const UnigramModel& m, std::string_view word) {
  std::vector<int32_t> out;
  m.Tokenize(word, &out);
  return out;
}

TEST(UnigramModelTest, PicksTheHighestScoringSegmentation) {
  // "abc" whole (-5) loses to "ab" + "c" (-1 + -1); "abd" has only "a"+"b"+"d".
  auto m = UnigramModel::Create({{"<unk>", 0}, {"a", -2}, {"b", -2}, {"c", -1}, {"d", -3}, {"ab", -1}, {"abc", -5}},
                                0, false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Ids(**m, "abc"), (std::vector<int32_t>{5, 3}));
  EXPECT_EQ(Ids(**m, "abd"), (std::vector<int32_t>{5, 4}));
  EXPECT_EQ(Ids(**m, "cab"), (std::vector<int32_t>{3, 5}));
  EXPECT_TRUE(Ids(**m, "").empty());
}

TEST(UnigramModelTest, EqualScoresKeepTheEarlierSplit) {
  // "xyz" = "x"+"yz" or "xy"+"z", both -2: "yz" (starting at 1) reaches the end
  // first, and "z" (starting at 2) only ties, so it does not replace it.
  auto m = UnigramModel::Create({{"<unk>", 0}, {"x", -1}, {"y", -5}, {"z", -1}, {"xy", -1}, {"yz", -1}}, 0, false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Ids(**m, "xyz"), (std::vector<int32_t>{1, 5}));
}

TEST(UnigramModelTest, UnknownRunsFuseThenFallBackToBytes) {
  std::vector<UnigramPiece> v = {{"<unk>", 0}, {"a", -1}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    v.push_back({name, 0});
  }
  auto with_bytes = UnigramModel::Create(v, 0, true);
  ASSERT_TRUE(with_bytes.ok());
  // "é" = C3 A9, "€" = E2 82 AC; byte ids are 2 + byte value.
  EXPECT_EQ(Ids(**with_bytes, "aé€a"), (std::vector<int32_t>{1, 2 + 0xC3, 2 + 0xA9, 2 + 0xE2, 2 + 0x82, 2 + 0xAC, 1}));
  auto without = UnigramModel::Create({{"<unk>", 0}, {"a", -1}}, 0, false);
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(Ids(**without, "aé€a"), (std::vector<int32_t>{1, 0, 1}));  // one fused <unk>
}

TEST(UnigramModelTest, RejectsBadVocabularies) {
  EXPECT_FALSE(UnigramModel::Create({{"a", -1}, {"a", -2}}, std::nullopt, false).ok());
  EXPECT_FALSE(UnigramModel::Create({{"a", -1}}, 3, false).ok());
  EXPECT_FALSE(UnigramModel::Create({}, std::nullopt, false).ok());
}

// The tokenizer.json transformers' SpmConverter writes for a Unigram model whose
// normalization rule is "identity" (no precompiled charsmap): Strip(right) + Replace of
// space runs, Metaspace(prepend always, split), control/unknown pieces as special tokens.
nlohmann::json ConvertToTokenizerJson(const sentencepiece::SentencePieceProcessor& sp) {
  using nlohmann::json;
  json vocab = json::array();
  json added = json::array();
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    vocab.push_back(json::array({sp.IdToPiece(i), static_cast<double>(sp.GetScore(i))}));
    if (sp.IsControl(i) || sp.IsUnknown(i)) {
      added.push_back({{"id", i}, {"content", sp.IdToPiece(i)}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
  }
  const json metaspace = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}},
                      {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", "\u2581"}}})}}},
      {"pre_tokenizer", metaspace},
      {"post_processor", nullptr},
      {"decoder", metaspace},
      {"model", {{"type", "Unigram"}, {"unk_id", sp.unk_id()}, {"vocab", vocab}, {"byte_fallback", true}}},
  };
}

TEST(UnigramReferenceTest, TrainedModelMatchesSentencePiece) {
  auto stories = ReadFileToString("tests/tokenizer/corpus/stories.txt");
  auto hard = ReadFileToString("tests/tokenizer/corpus/hard.jsonl");
  if (!stories.ok() || !hard.ok()) GTEST_SKIP() << "corpus missing (run from the repository root)";
  std::vector<std::string> texts;
  std::istringstream hs(*hard);
  for (std::string line; std::getline(hs, line);) {
    if (!line.empty()) texts.push_back(nlohmann::json::parse(line).get<std::string>());
  }
  std::istringstream ss(*stories);
  for (std::string line; std::getline(ss, line);) texts.push_back(line);

  const std::string dir = testing::TempDir() + "/tide_unigram";
  std::filesystem::create_directories(dir);
  std::string train = *stories;
  for (const std::string& t : texts) train += t + "\n";
  ASSERT_TRUE(WriteStringToFile(dir + "/train.txt", train).ok());
  // Character coverage below 1 leaves rare characters out, so unknown runs and byte
  // fallback are exercised too.
  auto st = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir + "/train.txt --model_prefix=" + dir +
      "/unigram --vocab_size=800 --model_type=unigram --byte_fallback=true --character_coverage=0.995 "
      "--normalization_rule_name=identity --hard_vocab_limit=false --minloglevel=2");
  ASSERT_TRUE(st.ok()) << st.ToString();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/unigram.model").ok());
  ASSERT_TRUE(WriteStringToFile(dir + "/tokenizer.json", ConvertToTokenizerJson(sp).dump()).ok());
  ASSERT_TRUE(WriteStringToFile(dir + "/tokenizer_config.json", "{}").ok());
  auto t = Tokenizer::FromHfFolder(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();

  int identical = 0;
  int ties = 0;
  int skipped = 0;
  for (const std::string& text : texts) {
    // SentencePiece never matches control or byte pieces in text; HF matches "<s>",
    // "</s>", "<unk>" as special tokens and "<0xNN>" as pieces.
    if (text.find("<s>") != std::string::npos || text.find("</s>") != std::string::npos ||
        text.find("<unk>") != std::string::npos || text.find("<0x") != std::string::npos) {
      ++skipped;
      continue;
    }
    // The converter's Strip(right) removes all trailing whitespace; SentencePiece's
    // remove_extra_whitespaces only spaces. Give the library the stripped text.
    std::string stripped = text;
    while (!stripped.empty() && std::string_view(" \t\n\r\v\f").find(stripped.back()) != std::string_view::npos) {
      stripped.pop_back();
    }
    std::vector<int> want_int;
    ASSERT_TRUE(sp.Encode(stripped, &want_int).ok());
    const std::vector<int32_t> want(want_int.begin(), want_int.end());
    auto got = (*t)->Encode(text, false);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    if (*got == want) {
      ++identical;
      continue;
    }
    // Equal-score segmentations that differ only in the order of the same pieces: HF's
    // rule (first path offered wins; tide follows it) and SentencePiece's lattice may
    // pick different ones. Anything else is a failure.
    std::vector<int32_t> a = *got;
    std::vector<int32_t> b = want;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << "text: " << text;
    ++ties;
  }
  std::printf("Unigram vs libsentencepiece: %d identical, %d equal-score reorderings, %d skipped (special-token text)\n",
              identical, ties, skipped);
  EXPECT_GT(identical, 70);
  EXPECT_LE(ties, 2);
}

}  // namespace
}  // namespace tide
