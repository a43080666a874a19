#include "tokenizer/added_vocab.h"

#include "tokenizer/unicode.h"

namespace tide::tok {

void AddedVocab::Add(AddedToken token) {
  auto it = by_id_.find(token.id);
  if (it != by_id_.end()) {
    tokens_[it->second] = std::move(token);
    return;
  }
  by_id_[token.id] = tokens_.size();
  tokens_.push_back(std::move(token));
}

void AddedVocab::Build() {
  for (size_t k = 0; k < tokens_.size(); ++k) {
    if (tokens_[k].content.empty()) continue;
    (tokens_[k].normalized ? normalized_ : raw_).Insert(tokens_[k].content, static_cast<int32_t>(k));
  }
}

void AddedVocab::Trie::Insert(std::string_view s, int32_t token) {
  int32_t cur = 0;
  for (unsigned char c : s) {
    auto it = nodes[cur].next.find(c);
    if (it == nodes[cur].next.end()) {
      nodes.push_back(Node{});
      int32_t idx = static_cast<int32_t>(nodes.size() - 1);
      nodes[cur].next[c] = idx;
      cur = idx;
    } else {
      cur = it->second;
    }
  }
  // With duplicate contents the first registered token wins.
  if (nodes[cur].token < 0) nodes[cur].token = token;
  first[static_cast<unsigned char>(s[0])] = true;
}

int32_t AddedVocab::Trie::Longest(std::string_view text, size_t i, size_t* len) const {
  int32_t cur = 0, best = -1;
  for (size_t j = i; j < text.size(); ++j) {
    auto it = nodes[cur].next.find(static_cast<unsigned char>(text[j]));
    if (it == nodes[cur].next.end()) break;
    cur = it->second;
    if (nodes[cur].token >= 0) {
      best = nodes[cur].token;
      *len = j + 1 - i;
    }
  }
  return best;
}

namespace {

// The code point that ends right before byte offset `e` (REQUIRES: e > 0).
char32_t CodePointBefore(std::string_view s, size_t e, size_t* start) {
  size_t b = e - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  *start = b;
  size_t i = b;
  return NextCodePoint(s, &i);
}

}  // namespace

void AddedVocab::Split(std::string_view text, bool normalized_set, std::vector<Segment>* out) const {
  const Trie& trie = normalized_set ? normalized_ : raw_;
  size_t seg_start = 0;  // start of the pending text span
  size_t i = 0;
  bool any = trie.nodes.size() > 1;
  while (any && i < text.size()) {
    if (!trie.first[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    size_t len = 0;
    int32_t k = trie.Longest(text, i, &len);
    if (k < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[k];
    size_t b = i, e = i + len;
    i = e;  // a rejected match is consumed, as HF's non-overlapping find_iter does
    if (t.single_word) {
      size_t tmp;
      bool start_ok = b == 0 || !IsAlphanumeric(CodePointBefore(text, b, &tmp));
      size_t j = e;
      bool stop_ok = e == text.size() || !IsAlphanumeric(NextCodePoint(text, &j));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) {
      while (b > seg_start) {
        size_t start;
        if (!IsWhitespace(CodePointBefore(text, b, &start))) break;
        b = start;
      }
    }
    if (t.rstrip) {
      while (e < text.size()) {
        size_t j = e;
        if (!IsWhitespace(NextCodePoint(text, &j))) break;
        e = j;
      }
      i = e;
    }
    if (b > seg_start) out->push_back({-1, seg_start, b});
    out->push_back({t.id, b, e});
    seg_start = e;
  }
  if (seg_start < text.size()) out->push_back({-1, seg_start, text.size()});
}

const AddedToken* AddedVocab::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocab::FindByContent(std::string_view content) const {
  for (const AddedToken& t : tokens_) {
    if (t.content == content) return t.id;
  }
  return std::nullopt;
}

}  // namespace tide::tok
