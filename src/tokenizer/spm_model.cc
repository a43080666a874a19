// SpmModel (SentencePiece BPE by piece score) and WordPieceModel.
#include <cstdio>
#include <queue>

#include "tokenizer/models.h"
#include "tokenizer/unicode.h"

namespace tide::tok {

Result<std::unique_ptr<SpmModel>> SpmModel::Create(std::vector<SpmPiece> pieces, std::optional<int32_t> unk_id) {
  std::unique_ptr<SpmModel> m(new SpmModel());
  m->token_to_id_.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    // Later duplicates keep the first id (llama.cpp's map semantics differ, but real
    // vocabularies have no duplicates; synthetic "[EMPTY_n]" names avoid empty keys).
    m->token_to_id_.emplace(pieces[i].text, static_cast<int32_t>(i));
  }
  m->pieces_ = std::move(pieces);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = m->token_to_id_.find(std::string_view(name));
    m->byte_ids_[b] = it == m->token_to_id_.end() ? -1 : it->second;
  }
  m->unk_id_ = unk_id;
  return m;
}

std::optional<int32_t> SpmModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string_view SpmModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_[id].text;
}

// Merging: repeatedly join the adjacent pair whose concatenation is a piece with the
// highest score (leftmost on ties); pieces left that are not in the vocabulary (single
// characters) become their UTF-8 bytes as <0xNN> pieces, or unk.
void SpmModel::Tokenize(std::string_view text, std::vector<int32_t>* out) const {
  struct Symbol {
    int32_t prev, next;
    size_t begin, len;
  };
  std::vector<Symbol> syms;
  for (size_t i = 0; i < text.size();) {
    size_t n = std::min(Utf8SeqLen(static_cast<unsigned char>(text[i])), text.size() - i);
    syms.push_back({static_cast<int32_t>(syms.size()) - 1, -1, i, n});
    i += n;
  }
  for (size_t k = 0; k + 1 < syms.size(); ++k) syms[k].next = static_cast<int32_t>(k + 1);
  struct Bigram {
    float score;
    int32_t left, right;
    size_t len;
    bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  std::priority_queue<Bigram> pq;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    std::string_view t = text.substr(syms[l].begin, syms[l].len + syms[r].len);
    auto it = token_to_id_.find(t);
    if (it == token_to_id_.end()) return;
    pq.push({pieces_[it->second].score, l, r, t.size()});
  };
  for (size_t k = 1; k < syms.size(); ++k) try_add(static_cast<int32_t>(k - 1), static_cast<int32_t>(k));
  while (!pq.empty()) {
    Bigram b = pq.top();
    pq.pop();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t k = syms.empty() ? -1 : 0; k >= 0; k = syms[k].next) {
    std::string_view t = text.substr(syms[k].begin, syms[k].len);
    auto it = token_to_id_.find(t);
    if (it != token_to_id_.end()) {
      out->push_back(it->second);
      continue;
    }
    for (unsigned char c : t) {
      if (byte_ids_[c] >= 0) {
        out->push_back(byte_ids_[c]);
      } else if (unk_id_) {
        out->push_back(*unk_id_);
      }
    }
  }
}

Result<std::unique_ptr<WordPieceModel>> WordPieceModel::Create(std::vector<std::pair<std::string, int32_t>> vocab,
                                                               const std::string& unk_token, std::string prefix,
                                                               size_t max_input_chars_per_word) {
  std::unique_ptr<WordPieceModel> m(new WordPieceModel());
  int32_t max_id = -1;
  for (const auto& [t, id] : vocab) max_id = std::max(max_id, id);
  if (max_id >= (1 << 26)) return InvalidArgument("implausible token id");
  m->id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (auto& [t, id] : vocab) {
    if (id < 0) return InvalidArgument("negative token id");
    m->id_to_token_[id] = t;
    m->token_to_id_.emplace(std::move(t), id);
  }
  auto it = m->token_to_id_.find(unk_token);
  if (it == m->token_to_id_.end()) return InvalidArgument("WordPiece unk_token '" + unk_token + "' is not in the vocab");
  m->unk_id_ = it->second;
  m->prefix_ = std::move(prefix);
  m->max_chars_ = max_input_chars_per_word;
  return m;
}

std::optional<int32_t> WordPieceModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string_view WordPieceModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return {};
  return id_to_token_[id];
}

void WordPieceModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  size_t n_chars = 0;
  for (size_t i = 0; i < word.size(); i += Utf8SeqLen(static_cast<unsigned char>(word[i]))) ++n_chars;
  if (n_chars > max_chars_) {
    out->push_back(unk_id_);
    return;
  }
  std::vector<int32_t> ids;
  std::string key;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    int32_t found = -1;
    while (end > start) {
      key.assign(start > 0 ? prefix_ : std::string());
      key.append(word.substr(start, end - start));
      auto it = token_to_id_.find(key);
      if (it != token_to_id_.end()) {
        found = it->second;
        break;
      }
      // Step back one code point.
      do {
        --end;
      } while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (found < 0) {
      out->push_back(unk_id_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
  out->insert(out->end(), ids.begin(), ids.end());
}

}  // namespace tide::tok
