#include <cstdio>
#include <mutex>
#include <queue>

#include "tokenizer/models.h"
#include "tokenizer/unicode.h"

namespace tide::tok {
namespace {

constexpr size_t kMaxCachedWordBytes = 96;
constexpr size_t kMaxCacheEntries = 1 << 18;

uint64_t PairKey(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

// Builds id_to_token from (token, id) pairs; ids must be distinct, and gaps stay "".
Status FillVocab(std::vector<std::pair<std::string, int32_t>>& vocab, TokenMap* t2i, std::vector<std::string>* i2t) {
  int32_t max_id = -1;
  for (const auto& [t, id] : vocab) {
    if (id < 0) return InvalidArgument("negative token id for '" + t + "'");
    max_id = std::max(max_id, id);
  }
  if (max_id >= (1 << 26)) return InvalidArgument("token id " + std::to_string(max_id) + " is implausibly large");
  i2t->assign(static_cast<size_t>(max_id + 1), std::string());
  t2i->reserve(vocab.size());
  for (auto& [t, id] : vocab) {
    if (!(*i2t)[id].empty()) return InvalidArgument("token id " + std::to_string(id) + " assigned twice");
    (*i2t)[id] = t;
    t2i->emplace(std::move(t), id);
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::Create(const BpeOptions& options,
                                                   std::vector<std::pair<std::string, int32_t>> vocab,
                                                   const std::vector<std::pair<std::string, std::string>>& merges) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->options_ = options;
  RETURN_IF_ERROR(FillVocab(vocab, &m->token_to_id_, &m->id_to_token_));
  m->merges_.reserve(merges.size());
  const size_t plen = options.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = m->token_to_id_.find(a), ib = m->token_to_id_.find(b);
    if (ia == m->token_to_id_.end() || ib == m->token_to_id_.end()) {
      if (options.skip_invalid_merges) continue;
      return InvalidArgument("merge " + std::to_string(rank) + " ('" + a + "' '" + b + "') uses a token not in the vocab");
    }
    std::string merged = a + (plen && b.compare(0, plen, options.continuing_subword_prefix) == 0 ? b.substr(plen) : b);
    auto im = m->token_to_id_.find(merged);
    if (im == m->token_to_id_.end()) {
      if (options.skip_invalid_merges) continue;
      return InvalidArgument("merge " + std::to_string(rank) + " result '" + merged + "' is not in the vocab");
    }
    // The first (best-ranked) occurrence of a pair wins, like HF's HashMap build.
    m->merges_.emplace(PairKey(ia->second, ib->second), std::make_pair(static_cast<int32_t>(rank), im->second));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = m->token_to_id_.find(std::string_view(name));
    m->byte_ids_[b] = it == m->token_to_id_.end() ? -1 : it->second;
  }
  if (options.unk_token) {
    auto it = m->token_to_id_.find(*options.unk_token);
    if (it == m->token_to_id_.end()) return InvalidArgument("unk_token '" + *options.unk_token + "' is not in the vocab");
    m->unk_id_ = it->second;
  }
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string_view BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return {};
  return id_to_token_[id];
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    auto it = token_to_id_.find(word);
    if (it != token_to_id_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out->size();
  MergeWord(word, out);
  if (cacheable) {
    std::unique_lock lock(cache_mu_);
    if (cache_.size() < kMaxCacheEntries) cache_.emplace(std::string(word), std::vector<int32_t>(out->begin() + start, out->end()));
  }
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  bool last_unk = false;
  std::string buf;
  size_t i = 0;
  while (i < word.size()) {
    size_t b = i;
    i += std::min(Utf8SeqLen(static_cast<unsigned char>(word[i])), word.size() - i);
    std::string_view ch = word.substr(b, i - b);
    std::string_view key = ch;
    if ((b > 0 && !options_.continuing_subword_prefix.empty()) || (i == word.size() && !options_.end_of_word_suffix.empty())) {
      buf.clear();
      if (b > 0) buf += options_.continuing_subword_prefix;
      buf += ch;
      if (i == word.size()) buf += options_.end_of_word_suffix;
      key = buf;
    }
    auto it = token_to_id_.find(key);
    if (it != token_to_id_.end()) {
      syms.push_back({it->second, 0, 0, true});
      last_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (unsigned char c : ch) all = all && byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) syms.push_back({byte_ids_[c], 0, 0, true});
        last_unk = false;
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (!(options_.fuse_unk && last_unk)) syms.push_back({unk_id_, 0, 0, true});
      last_unk = true;
    }
  }
  const int32_t n = static_cast<int32_t>(syms.size());
  for (int32_t k = 0; k < n; ++k) {
    syms[k].prev = k - 1;
    syms[k].next = k + 1 < n ? k + 1 : -1;
  }
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }  // min-heap
  };
  std::vector<Cand> storage;
  storage.reserve(static_cast<size_t>(n));
  std::priority_queue<Cand> pq(std::less<Cand>(), std::move(storage));
  auto consider = [&](int32_t pos) {
    if (pos < 0 || syms[pos].next < 0) return;
    auto it = merges_.find(PairKey(syms[pos].id, syms[syms[pos].next].id));
    if (it != merges_.end()) pq.push({it->second.first, pos, it->second.second});
  };
  for (int32_t k = 0; k + 1 < n; ++k) consider(k);
  while (!pq.empty()) {
    Cand c = pq.top();
    pq.pop();
    Symbol& s = syms[c.pos];
    if (!s.alive || s.next < 0) continue;
    auto it = merges_.find(PairKey(s.id, syms[s.next].id));
    if (it == merges_.end() || it->second.second != c.new_id) continue;  // stale
    Symbol& r = syms[s.next];
    r.alive = false;
    s.id = c.new_id;
    s.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.pos;
    consider(s.prev);
    consider(c.pos);
  }
  for (int32_t k = 0; k < n; k = syms[k].next) {
    out->push_back(syms[k].id);
    if (syms[k].next < 0) break;
  }
}

}  // namespace tide::tok
