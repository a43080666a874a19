#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace tide {

using tok::TokenizerImpl;

namespace tok {

bool IsEndOfTurnText(std::string_view t) {
  static constexpr std::string_view kTexts[] = {
      "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
      "<|return|>", "<|call|>", "<EOT>", "<|END_OF_TURN_TOKEN|>", "<｜end▁of▁sentence｜>", "<|end▁of▁sentence|>"};
  return std::find(std::begin(kTexts), std::end(kTexts), t) != std::end(kTexts);
}

void TokenizerImpl::Finish() {
  int32_t n = sp ? sp->vocab_size() : model->vocab_size();
  for (const AddedToken& t : added.tokens()) n = std::max(n, t.id + 1);
  id_to_token.assign(static_cast<size_t>(n), std::string());
  special.assign(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < n; ++id) {
    if (sp) {
      if (id < sp->vocab_size()) {
        id_to_token[id] = sp->IdToPiece(id);
        special[id] = sp->IsControl(id);
      }
    } else {
      id_to_token[id] = std::string(model->IdToToken(id));
    }
  }
  for (const AddedToken& t : added.tokens()) {
    id_to_token[t.id] = t.content;
    special[t.id] = t.special;
  }
  eos_ids.clear();
  if (eos_id) eos_ids.push_back(*eos_id);
  for (int32_t id : extra_eos_ids) eos_ids.push_back(id);
  for (const AddedToken& t : added.tokens()) {
    if (t.special && IsEndOfTurnText(t.content)) eos_ids.push_back(t.id);
  }
  std::sort(eos_ids.begin(), eos_ids.end());
  eos_ids.erase(std::unique(eos_ids.begin(), eos_ids.end()), eos_ids.end());
  eos_ids.erase(std::remove_if(eos_ids.begin(), eos_ids.end(), [n](int32_t id) { return id < 0 || id >= n; }),
                eos_ids.end());
}

}  // namespace tok

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  if (!tok::IsValidUtf8(text)) return InvalidArgument("text to encode is not valid UTF-8");
  const TokenizerImpl& m = *impl_;
  std::vector<int32_t> ids;
  if (m.sp) {
    ids = m.sp->Encode(text);
    if (add_special_tokens) {
      if (m.sp_add_bos && m.bos_id) ids.insert(ids.begin(), *m.bos_id);
      if (m.sp_add_eos && m.eos_id) ids.push_back(*m.eos_id);
    }
    return ids;
  }
  std::vector<tok::AddedVocab::Segment> segs, sub;
  m.added.Split(text, /*normalized_set=*/false, &segs);
  for (const auto& seg : segs) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string_view raw = text.substr(seg.b, seg.e - seg.b);
    std::string normalized = m.normalizer ? m.normalizer->Normalize(raw) : std::string(raw);
    sub.clear();
    m.added.Split(normalized, /*normalized_set=*/true, &sub);
    for (const auto& s : sub) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      std::string_view piece = std::string_view(normalized).substr(s.b, s.e - s.b);
      if (m.pre_tokenizer) {
        m.pre_tokenizer->Stream(piece, seg.b == 0 && s.b == 0,
                                [&](std::string_view word, bool) { m.model->Tokenize(word, &ids); });
      } else {
        m.model->Tokenize(piece, &ids);
      }
    }
  }
  if (add_special_tokens && m.post_processor) m.post_processor->Process(&ids);
  return ids;
}

Result<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const TokenizerImpl& m = *impl_;
  const int32_t n = static_cast<int32_t>(m.id_to_token.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= n) return OutOfRange("token id " + std::to_string(id) + " is outside the vocabulary");
  }
  if (m.sp) {
    std::vector<int32_t> kept;
    kept.reserve(ids.size());
    for (int32_t id : ids) {
      if (!(skip_special_tokens && m.special[id])) kept.push_back(id);
    }
    return m.sp->Decode(kept);
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special_tokens && m.special[id]) continue;
    tokens.push_back(m.id_to_token[id]);
  }
  std::string out;
  if (m.decoder) {
    m.decoder->DecodeChain(&tokens);
    for (const auto& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos_ids; }

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

std::string Tokenizer::bos_token() const { return impl_->bos_id ? IdToToken(*impl_->bos_id) : std::string(); }
std::string Tokenizer::eos_token() const { return impl_->eos_id ? IdToToken(*impl_->eos_id) : std::string(); }

std::string Tokenizer::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size()) return {};
  return impl_->id_to_token[id];
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto id = impl_->added.FindByContent(token)) return id;
  if (impl_->sp) {
    int32_t id = impl_->sp->PieceToId(token);
    return id < 0 ? std::nullopt : std::optional<int32_t>(id);
  }
  return impl_->model->TokenToId(token);
}

}  // namespace tide
