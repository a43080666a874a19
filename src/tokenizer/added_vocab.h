// Added tokens (tokenizer.json "added_tokens", GGUF control/user-defined tokens): texts
// matched in the input before the model runs, leftmost-longest like HF's Aho-Corasick
// split, with lstrip/rstrip/single_word. Tokens with normalized=false are matched in the
// raw input, those with normalized=true in the normalized text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tide::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

class AddedVocab {
 public:
  // A later token with the same id replaces the earlier one.
  void Add(AddedToken token);
  // Builds the matchers. REQUIRES: called once after the last Add, before Split.
  void Build();

  // [b, e) of the input; `id` >= 0 when the span is that added token.
  struct Segment {
    int32_t id;
    size_t b, e;
  };
  // Splits `text` on tokens of one set (normalized or not); text spans are returned
  // between them (never empty).
  void Split(std::string_view text, bool normalized_set, std::vector<Segment>* out) const;

  [[nodiscard]] const AddedToken* FindById(int32_t id) const;
  [[nodiscard]] std::optional<int32_t> FindByContent(std::string_view content) const;
  [[nodiscard]] bool empty() const { return tokens_.empty(); }
  [[nodiscard]] const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Trie {
    struct Node {
      std::unordered_map<unsigned char, int32_t> next;
      int32_t token = -1;  // index into tokens_
    };
    std::vector<Node> nodes{Node{}};
    bool first[256] = {};
    void Insert(std::string_view s, int32_t token);
    // Longest token starting at text[i], or -1; *len receives its length.
    int32_t Longest(std::string_view text, size_t i, size_t* len) const;
  };
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  Trie raw_, normalized_;
};

}  // namespace tide::tok
