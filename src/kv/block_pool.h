// BlockPool: KV block ids, their reference counts and the automatic prefix cache.
//
// A block holds `block_size` consecutive tokens of one sequence's context. A *full*
// block can be registered in the prefix index under a chained hash
//     hash(block i) = XXH3_64(parent = hash(block i-1) or kRootBlockHash,
//                            extra_key, token ids of block i)
// (extra_key: anything else that changes the KV — a LoRA id, multimodal inputs; 0 = none).
// A later sequence whose context starts with the same tokens reuses every block of its
// longest cached prefix. The hash is only an index: a hit also compares the parent
// hash, extra key and token ids stored with the block, so a 64-bit collision is a miss,
// never wrong KV.
//
// Life of a block: free (never cached, or evicted) -> in use (ref >= 1) -> when the last
// reference is released, a registered block goes to the evictable LRU (still in the
// index, reusable at no cost) and an unregistered one to the free list. Fresh blocks are
// taken from the free list first, then by evicting the least recently released LRU
// block (its index entry is dropped then). num_free() counts both.
//
// Protocol: check, then commit. FindCachedPrefix (pure) -> can_allocate -> allocate;
// the engine registers full blocks after each step (RegisterFullBlocks) and releases a
// sequence's blocks when it finishes or is preempted.
//
// Thread-safety: none; the engine thread owns the pool.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace tide {

inline constexpr uint64_t kRootBlockHash = 0x7469646520726f6full;  // "tide roo": parent of block 0

// The chained block hash (XXH3_64bits over parent, extra_key, tokens; little-endian).
uint64_t HashBlockTokens(uint64_t parent_hash, uint64_t extra_key, std::span<const int32_t> tokens);
using BlockHasher = uint64_t (*)(uint64_t parent_hash, uint64_t extra_key, std::span<const int32_t> tokens);

struct PrefixCacheStats {
  int64_t queries = 0;        // prefix lookups committed by allocate()
  int64_t hits = 0;           // of those, lookups that reused at least one block
  int64_t query_tokens = 0;   // tokens looked up
  int64_t hit_tokens = 0;     // tokens whose KV came from the cache
  int64_t evictions = 0;      // cached blocks dropped from the index to make room
};

// The longest cached prefix of a token sequence (a value; holds no references).
struct PrefixMatch {
  std::vector<int32_t> blocks;    // block ids, in order
  std::vector<uint64_t> hashes;   // their chained hashes
  int64_t num_query_tokens = 0;   // tokens the lookup was asked about
  [[nodiscard]] int64_t num_blocks() const { return static_cast<int64_t>(blocks.size()); }
};

struct BlockPoolOptions {
  int64_t num_blocks = 0;           // > 0
  int block_size = 16;              // tokens per block, > 0
  bool enable_prefix_caching = true;
  BlockHasher hasher = nullptr;     // null = HashBlockTokens (tests inject collisions)
};

class BlockPool {
 public:
  explicit BlockPool(const BlockPoolOptions& options);
  // A pool without prefix caching, 16-token blocks (plain block accounting).
  explicit BlockPool(int64_t num_blocks) : BlockPool(BlockPoolOptions{num_blocks, 16, false, nullptr}) {}
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  [[nodiscard]] int64_t num_blocks() const noexcept { return num_blocks_; }
  [[nodiscard]] int block_size() const noexcept { return block_size_; }
  [[nodiscard]] bool prefix_caching() const noexcept { return caching_; }
  // Blocks a fresh allocation may take: never-cached free blocks + evictable cached ones.
  [[nodiscard]] int64_t num_free() const noexcept { return static_cast<int64_t>(free_.size()) + lru_size_; }
  [[nodiscard]] int64_t num_cached_free() const noexcept { return lru_size_; }
  [[nodiscard]] int64_t num_used() const noexcept { return num_blocks_ - num_free(); }
  [[nodiscard]] int ref_count(int32_t block) const { return meta_[static_cast<size_t>(block)].ref; }
  [[nodiscard]] const PrefixCacheStats& stats() const noexcept { return stats_; }
  // Blocks needed to hold `num_tokens` tokens.
  [[nodiscard]] int64_t BlocksFor(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // The longest run of leading full blocks of `tokens` found in the index (empty when
  // caching is off). Pure: no references are taken, no stats counted.
  [[nodiscard]] PrefixMatch FindCachedPrefix(std::span<const int32_t> tokens, uint64_t extra_key) const;

  // Whether `match` can be taken plus `num_new` fresh blocks. A matched block that is
  // currently evictable leaves the free count when it is reused, so it counts too.
  [[nodiscard]] bool can_allocate(const PrefixMatch& match, int64_t num_new) const;
  [[nodiscard]] bool can_allocate(int64_t num_new) const { return num_new <= num_free(); }
  // REQUIRES: can_allocate(match, num_new), and no state change since FindCachedPrefix.
  // Returns match.blocks (one more reference each) followed by num_new fresh blocks
  // (reference 1, unregistered); counts the lookup in stats().
  std::vector<int32_t> allocate(const PrefixMatch& match, int64_t num_new);
  // REQUIRES: can_allocate(num_new). Appends num_new fresh blocks to *blocks.
  void allocate(int64_t num_new, std::vector<int32_t>* blocks);
  std::vector<int32_t> allocate(int64_t num_new) {
    std::vector<int32_t> b;
    allocate(num_new, &b);
    return b;
  }

  // One more reference to each block (a sequence sharing another's blocks).
  // REQUIRES: every block is in use.
  void share(std::span<const int32_t> blocks);

  // Registers the sequence's full blocks [hashes->size(), num_full_blocks) in the index,
  // appending their chained hashes to *hashes (the sequence keeps them so later calls
  // only hash new blocks). `tokens` is the sequence's context, at least
  // num_full_blocks * block_size long. A block whose content is already indexed under
  // another id stays unregistered (it is freed, not cached, on release). No-op when
  // caching is off.
  void RegisterFullBlocks(std::span<const int32_t> blocks, std::span<const int32_t> tokens, int64_t num_full_blocks,
                          uint64_t extra_key, std::vector<uint64_t>* hashes);

  // Drops one reference of each block, last block first, so that when a whole sequence
  // is released its deepest blocks are evicted before its shared prefix.
  // REQUIRES: every block is in use.
  void release(std::span<const int32_t> blocks);

  // Empties the prefix index (evictable blocks become plain free blocks).
  void ResetPrefixCache();

  // For tests: whether a block is registered in the index.
  [[nodiscard]] bool TEST_IsCached(int32_t block) const { return meta_[static_cast<size_t>(block)].registered; }

 private:
  struct Meta {
    int ref = 0;
    bool registered = false;
    uint64_t hash = 0, parent = 0, extra = 0;
    int32_t lru_prev = -1, lru_next = -1;  // evictable LRU links (ref == 0 && registered)
    bool in_lru = false;
  };
  int32_t TakeFresh();
  void LruPush(int32_t b);
  void LruRemove(int32_t b);
  void Unregister(int32_t b);
  [[nodiscard]] int32_t Lookup(uint64_t hash, uint64_t parent, uint64_t extra, std::span<const int32_t> toks) const;

  int64_t num_blocks_;
  int block_size_;
  bool caching_;
  BlockHasher hasher_;
  std::vector<Meta> meta_;
  std::vector<int32_t> tokens_;        // [num_blocks * block_size]: content of registered blocks
  std::vector<int32_t> free_;          // never-cached free blocks; LIFO
  int32_t lru_head_ = -1, lru_tail_ = -1;  // head = least recently released
  int64_t lru_size_ = 0;
  // hash -> block. One entry per hash: a block whose hash collides with different
  // content simply stays unregistered (a rare miss, never wrong KV).
  std::unordered_map<uint64_t, int32_t> index_;
  PrefixCacheStats stats_;
};

}  // namespace tide
