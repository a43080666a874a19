// Tokenization models: the part that maps one pre-token to ids.
//   BpeModel — Hugging Face's BPE (merge ranks), used for byte-level BPE (GPT-2, Llama 3,
//              Qwen) and SentencePiece-converted BPE with byte fallback (Llama 2, Mistral).
//   SpmModel — SentencePiece BPE by piece score, as GGUF "llama" vocabularies store it.
//   WordPieceModel — BERT's greedy longest-match-first.
//   UnigramModel — SentencePiece Unigram (T5, Flan-T5, mT5, XLM-RoBERTa, ALBERT): the
//              segmentation with the highest total piece score (Viterbi).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "tokenizer/pipeline.h"

namespace tide::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;  // unknown characters -> "<0xNN>" tokens
  bool ignore_merges = false;  // a pre-token that is in the vocab is taken whole
  // Drop merges naming tokens outside the vocab instead of failing (GGUF files carry
  // such merges; llama.cpp ignores them).
  bool skip_invalid_merges = false;
};

class BpeModel final : public Model {
 public:
  // `merges` in rank order. Errors: kInvalidArgument for a merge whose parts or result
  // are not in the vocabulary, or for duplicate ids.
  static Result<std::unique_ptr<BpeModel>> Create(const BpeOptions& options,
                                                  std::vector<std::pair<std::string, int32_t>> vocab,
                                                  const std::vector<std::pair<std::string, std::string>>& merges);
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const override;
  [[nodiscard]] int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const override;
  [[nodiscard]] std::string_view IdToToken(int32_t id) const override;

 private:
  BpeModel() = default;
  void MergeWord(std::string_view word, std::vector<int32_t>* out) const;

  BpeOptions options_;
  TokenMap token_to_id_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a<<32|b) -> (rank, new id)
  std::array<int32_t, 256> byte_ids_{};
  int32_t unk_id_ = -1;

  // Pre-token -> ids. Prose repeats words, so most pre-tokens skip merging entirely.
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

struct SpmPiece {
  std::string text;
  float score = 0;
};

class SpmModel final : public Model {
 public:
  // Errors: kInvalidArgument for duplicate piece texts.
  static Result<std::unique_ptr<SpmModel>> Create(std::vector<SpmPiece> pieces, std::optional<int32_t> unk_id);
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const override;
  [[nodiscard]] int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const override;
  [[nodiscard]] std::string_view IdToToken(int32_t id) const override;

 private:
  SpmModel() = default;
  void Resegment(std::string_view text, const std::unordered_map<std::string_view, std::pair<size_t, size_t>>& rev,
                 std::vector<int32_t>* out) const;
  std::vector<SpmPiece> pieces_;
  TokenMap token_to_id_;
  std::array<int32_t, 256> byte_ids_{};
  std::optional<int32_t> unk_id_;
};

class WordPieceModel final : public Model {
 public:
  static Result<std::unique_ptr<WordPieceModel>> Create(std::vector<std::pair<std::string, int32_t>> vocab,
                                                        const std::string& unk_token, std::string prefix,
                                                        size_t max_input_chars_per_word);
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const override;
  [[nodiscard]] int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const override;
  [[nodiscard]] std::string_view IdToToken(int32_t id) const override;

 private:
  WordPieceModel() = default;
  TokenMap token_to_id_;
  std::vector<std::string> id_to_token_;
  int32_t unk_id_ = -1;
  std::string prefix_;
  size_t max_chars_ = 100;
};

struct UnigramPiece {
  std::string text;
  double score = 0;  // log probability
};

// Hugging Face's Unigram: best path over the pieces that start at each character (ties
// keep the earlier start, then the shorter piece); a character no single piece covers is
// an unknown node scored 10 below the lowest piece; consecutive unknown nodes fuse into
// one string, which becomes "<0xNN>" byte tokens under byte_fallback, else the unk id.
class UnigramModel final : public Model {
 public:
  // Errors: kInvalidArgument for an empty vocabulary, duplicate piece texts or an unk_id
  // out of range.
  static Result<std::unique_ptr<UnigramModel>> Create(std::vector<UnigramPiece> pieces, std::optional<int32_t> unk_id,
                                                      bool byte_fallback);
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const override;
  [[nodiscard]] int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const override;
  [[nodiscard]] std::string_view IdToToken(int32_t id) const override;

 private:
  UnigramModel() = default;
  void EmitString(std::string_view piece, std::vector<int32_t>* out) const;

  std::vector<UnigramPiece> pieces_;
  TokenMap token_to_id_;
  size_t max_piece_bytes_ = 0;
  double unk_score_ = 0;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
};

}  // namespace tide::tok
