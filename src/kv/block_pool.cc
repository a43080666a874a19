#include "kv/block_pool.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace tide {

uint64_t HashBlockTokens(uint64_t parent_hash, uint64_t extra_key, std::span<const int32_t> tokens) {
  // One contiguous little-endian buffer (x86/ARM hosts are little-endian; the router
  // computes the same bytes), hashed in one call: cheaper than the streaming API for
  // 16-token blocks.
  constexpr size_t kStackTokens = 256;
  uint8_t stack[16 + 4 * kStackTokens];
  std::vector<uint8_t> heap;
  const size_t n = 16 + 4 * tokens.size();
  uint8_t* buf = stack;
  if (tokens.size() > kStackTokens) {
    heap.resize(n);
    buf = heap.data();
  }
  std::memcpy(buf, &parent_hash, 8);
  std::memcpy(buf + 8, &extra_key, 8);
  std::memcpy(buf + 16, tokens.data(), 4 * tokens.size());
  return XXH3_64bits(buf, n);
}

BlockPool::BlockPool(const BlockPoolOptions& o)
    : num_blocks_(o.num_blocks),
      block_size_(o.block_size),
      caching_(o.enable_prefix_caching),
      hasher_(o.hasher ? o.hasher : &HashBlockTokens) {
  TIDE_CHECK_GT(num_blocks_, 0);
  TIDE_CHECK_GT(block_size_, 0);
  TIDE_CHECK_LE(num_blocks_, int64_t{INT32_MAX});
  meta_.resize(static_cast<size_t>(num_blocks_));
  if (caching_) tokens_.resize(static_cast<size_t>(num_blocks_) * static_cast<size_t>(block_size_));
  free_.reserve(static_cast<size_t>(num_blocks_));
  // LIFO with block 0 on top: allocation order is 0, 1, 2, ... in a fresh pool.
  for (int64_t b = num_blocks_ - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int32_t BlockPool::Lookup(uint64_t hash, uint64_t parent, uint64_t extra, std::span<const int32_t> toks) const {
  auto it = index_.find(hash);
  if (it == index_.end()) return -1;
  const int32_t b = it->second;
  const Meta& m = meta_[static_cast<size_t>(b)];
  // The collision guard: same hash is not enough, the content must be the same.
  if (m.parent != parent || m.extra != extra) return -1;
  const int32_t* stored = tokens_.data() + static_cast<size_t>(b) * static_cast<size_t>(block_size_);
  if (!std::equal(toks.begin(), toks.end(), stored)) return -1;
  return b;
}

PrefixMatch BlockPool::FindCachedPrefix(std::span<const int32_t> tokens, uint64_t extra_key) const {
  PrefixMatch m;
  m.num_query_tokens = static_cast<int64_t>(tokens.size());
  if (!caching_) return m;
  uint64_t parent = kRootBlockHash;
  const size_t bs = static_cast<size_t>(block_size_);
  for (size_t start = 0; start + bs <= tokens.size(); start += bs) {
    const std::span<const int32_t> blk = tokens.subspan(start, bs);
    const uint64_t h = hasher_(parent, extra_key, blk);
    const int32_t b = Lookup(h, parent, extra_key, blk);
    if (b < 0) break;
    m.blocks.push_back(b);
    m.hashes.push_back(h);
    parent = h;
  }
  return m;
}

bool BlockPool::can_allocate(const PrefixMatch& match, int64_t num_new) const {
  int64_t revived = 0;  // matched blocks now in the LRU: taking them shrinks num_free()
  for (int32_t b : match.blocks)
    if (meta_[static_cast<size_t>(b)].ref == 0) ++revived;
  return revived + num_new <= num_free();
}

std::vector<int32_t> BlockPool::allocate(const PrefixMatch& match, int64_t num_new) {
  TIDE_CHECK(can_allocate(match, num_new));
  std::vector<int32_t> out;
  out.reserve(match.blocks.size() + static_cast<size_t>(num_new));
  for (int32_t b : match.blocks) {
    Meta& m = meta_[static_cast<size_t>(b)];
    TIDE_CHECK(m.registered);
    if (m.ref == 0) LruRemove(b);
    ++m.ref;
    out.push_back(b);
  }
  allocate(num_new, &out);
  if (caching_) {
    const int64_t hit = match.num_blocks() * block_size_;
    ++stats_.queries;
    stats_.hits += hit > 0 ? 1 : 0;
    stats_.query_tokens += match.num_query_tokens;
    stats_.hit_tokens += hit;
  }
  return out;
}

void BlockPool::allocate(int64_t num_new, std::vector<int32_t>* blocks) {
  TIDE_CHECK_LE(num_new, num_free());
  for (int64_t i = 0; i < num_new; ++i) {
    const int32_t b = TakeFresh();
    meta_[static_cast<size_t>(b)].ref = 1;
    blocks->push_back(b);
  }
}

int32_t BlockPool::TakeFresh() {
  if (!free_.empty()) {
    const int32_t b = free_.back();
    free_.pop_back();
    return b;
  }
  // Evict the least recently released cached block.
  const int32_t b = lru_head_;
  TIDE_CHECK_GE(b, 0);
  LruRemove(b);
  Unregister(b);
  ++stats_.evictions;
  return b;
}

void BlockPool::share(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    Meta& m = meta_[static_cast<size_t>(b)];
    TIDE_CHECK_GT(m.ref, 0);
    ++m.ref;
  }
}

void BlockPool::RegisterFullBlocks(std::span<const int32_t> blocks, std::span<const int32_t> tokens,
                                   int64_t num_full_blocks, uint64_t extra_key, std::vector<uint64_t>* hashes) {
  if (!caching_) return;
  TIDE_CHECK_LE(num_full_blocks, static_cast<int64_t>(blocks.size()));
  TIDE_CHECK_LE(num_full_blocks * block_size_, static_cast<int64_t>(tokens.size()));
  const size_t bs = static_cast<size_t>(block_size_);
  for (size_t i = hashes->size(); i < static_cast<size_t>(num_full_blocks); ++i) {
    const uint64_t parent = i == 0 ? kRootBlockHash : (*hashes)[i - 1];
    const std::span<const int32_t> blk = tokens.subspan(i * bs, bs);
    const uint64_t h = hasher_(parent, extra_key, blk);
    hashes->push_back(h);
    const int32_t b = blocks[i];
    Meta& m = meta_[static_cast<size_t>(b)];
    TIDE_CHECK_GT(m.ref, 0);
    if (m.registered) continue;         // a prefix hit: already indexed
    if (index_.count(h)) continue;      // same content computed twice, or a collision
    m.registered = true;
    m.hash = h;
    m.parent = parent;
    m.extra = extra_key;
    std::copy(blk.begin(), blk.end(), tokens_.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(b) * bs));
    index_.emplace(h, b);
  }
}

void BlockPool::release(std::span<const int32_t> blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t b = *it;
    Meta& m = meta_[static_cast<size_t>(b)];
    TIDE_CHECK_GT(m.ref, 0);
    if (--m.ref > 0) continue;
    if (m.registered) {
      LruPush(b);
    } else {
      free_.push_back(b);
    }
  }
}

void BlockPool::ResetPrefixCache() {
  while (lru_head_ >= 0) {
    const int32_t b = lru_head_;
    LruRemove(b);
    Unregister(b);
    free_.push_back(b);
  }
  // Blocks still in use stay indexed until released; drop their entries too so the
  // index is empty, and mark them plain.
  for (auto& [h, b] : index_) meta_[static_cast<size_t>(b)].registered = false;
  index_.clear();
}

void BlockPool::Unregister(int32_t b) {
  Meta& m = meta_[static_cast<size_t>(b)];
  if (!m.registered) return;
  auto it = index_.find(m.hash);
  if (it != index_.end() && it->second == b) index_.erase(it);
  m.registered = false;
}

void BlockPool::LruPush(int32_t b) {
  Meta& m = meta_[static_cast<size_t>(b)];
  TIDE_CHECK(!m.in_lru);
  m.in_lru = true;
  m.lru_prev = lru_tail_;
  m.lru_next = -1;
  if (lru_tail_ >= 0) {
    meta_[static_cast<size_t>(lru_tail_)].lru_next = b;
  } else {
    lru_head_ = b;
  }
  lru_tail_ = b;
  ++lru_size_;
}

void BlockPool::LruRemove(int32_t b) {
  Meta& m = meta_[static_cast<size_t>(b)];
  TIDE_CHECK(m.in_lru);
  if (m.lru_prev >= 0) {
    meta_[static_cast<size_t>(m.lru_prev)].lru_next = m.lru_next;
  } else {
    lru_head_ = m.lru_next;
  }
  if (m.lru_next >= 0) {
    meta_[static_cast<size_t>(m.lru_next)].lru_prev = m.lru_prev;
  } else {
    lru_tail_ = m.lru_prev;
  }
  m.in_lru = false;
  m.lru_prev = m.lru_next = -1;
  --lru_size_;
}

}  // namespace tide
