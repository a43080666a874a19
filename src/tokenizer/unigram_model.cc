// UnigramModel: Viterbi segmentation by piece score, with Hugging Face tokenizers'
// tie-breaking, unknown-character and byte-fallback rules (models/unigram/model.rs,
// encode_optimized), so ids match tokenizer.json files of Unigram models exactly.
#include <algorithm>
#include <cstdio>
#include <limits>

#include "tokenizer/models.h"
#include "tokenizer/unicode.h"

namespace tide::tok {
namespace {

// HF's K_UNK_PENALTY: an unknown character costs this much below the rarest piece.
constexpr double kUnknownPenalty = 10.0;
constexpr int32_t kNoUnkId = -1;

}  // namespace

Result<std::unique_ptr<UnigramModel>> UnigramModel::Create(std::vector<UnigramPiece> pieces,
                                                           std::optional<int32_t> unk_id, bool byte_fallback) {
  std::unique_ptr<UnigramModel> m(new UnigramModel());
  if (pieces.empty()) return InvalidArgument("Unigram vocabulary is empty");
  if (unk_id && (*unk_id < 0 || static_cast<size_t>(*unk_id) >= pieces.size())) {
    return InvalidArgument("Unigram unk_id out of range");
  }
  double min_score = std::numeric_limits<double>::infinity();
  m->token_to_id_.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!m->token_to_id_.emplace(pieces[i].text, static_cast<int32_t>(i)).second) {
      return InvalidArgument("Unigram vocabulary has a duplicate piece '" + pieces[i].text + "'");
    }
    m->max_piece_bytes_ = std::max(m->max_piece_bytes_, pieces[i].text.size());
    min_score = std::min(min_score, pieces[i].score);
  }
  m->unk_score_ = min_score - kUnknownPenalty;
  m->pieces_ = std::move(pieces);
  m->unk_id_ = unk_id;
  m->byte_fallback_ = byte_fallback;
  return m;
}

void UnigramModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  const size_t n = word.size();
  struct Best {
    double score = 0;
    size_t start = 0;
    int32_t id = kNoUnkId;
    bool reached = false;
  };
  std::vector<Best> best(n + 1);
  best[0].reached = true;
  auto offer = [&](size_t start, size_t end, int32_t id, double score) {
    const double total = best[start].score + score;
    // Strictly greater: of equal paths, the first offered (earlier start, then shorter
    // piece) stays, as in HF.
    if (!best[end].reached || total > best[end].score) best[end] = {total, start, id, true};
  };
  for (size_t pos = 0; pos < n;) {
    const size_t char_len = std::min(Utf8SeqLen(static_cast<unsigned char>(word[pos])), n - pos);
    bool single_char_piece = false;
    const size_t longest = std::min(max_piece_bytes_, n - pos);
    for (size_t len = 1; len <= longest; ++len) {
      auto it = token_to_id_.find(word.substr(pos, len));
      if (it == token_to_id_.end()) continue;
      if (len == char_len) single_char_piece = true;
      offer(pos, pos + len, it->second, pieces_[it->second].score);
    }
    if (!single_char_piece) offer(pos, pos + char_len, unk_id_.value_or(kNoUnkId), unk_score_);
    pos += char_len;
  }

  // Back from the end; runs of unknown nodes fuse into one string.
  std::vector<std::pair<size_t, size_t>> spans;  // [start, end) in reverse order
  std::vector<bool> unknown;
  for (size_t end = n; end > 0;) {
    const Best& b = best[end];
    const bool is_unk = b.id == unk_id_.value_or(kNoUnkId);
    if (is_unk && !unknown.empty() && unknown.back()) {
      spans.back().first = b.start;
    } else {
      spans.emplace_back(b.start, end);
      unknown.push_back(is_unk);
    }
    end = b.start;
  }
  for (size_t i = spans.size(); i-- > 0;) {
    EmitString(word.substr(spans[i].first, spans[i].second - spans[i].first), out);
  }
}

void UnigramModel::EmitString(std::string_view piece, std::vector<int32_t>* out) const {
  if (auto it = token_to_id_.find(piece); it != token_to_id_.end()) {
    out->push_back(it->second);
    return;
  }
  if (byte_fallback_) {
    std::vector<int32_t> bytes;
    for (unsigned char c : piece) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", c);
      auto it = token_to_id_.find(std::string_view(name));
      if (it == token_to_id_.end()) break;
      bytes.push_back(it->second);
    }
    if (bytes.size() == piece.size()) {
      out->insert(out->end(), bytes.begin(), bytes.end());
      return;
    }
  }
  if (unk_id_) out->push_back(*unk_id_);
}

std::optional<int32_t> UnigramModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string_view UnigramModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_[id].text;
}

}  // namespace tide::tok
