#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <string>

#include "base/rng.h"

namespace tide {
namespace {

constexpr int kBs = 4;

std::vector<int32_t> Seq(int32_t first, int n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<int32_t> Cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

BlockPool MakePool(int64_t n, bool caching = true, BlockHasher h = nullptr) {
  return BlockPool(BlockPoolOptions{n, kBs, caching, h});
}

// Allocates blocks for `tokens` (with prefix reuse), registers every full block.
struct Owner {
  std::vector<int32_t> blocks;
  std::vector<uint64_t> hashes;
  int64_t hit_blocks = 0;
};
Owner AllocateAndRegister(BlockPool& pool, const std::vector<int32_t>& tokens, uint64_t extra = 0) {
  Owner o;
  PrefixMatch m = pool.FindCachedPrefix(tokens, extra);
  o.hit_blocks = m.num_blocks();
  const int64_t need = pool.BlocksFor(static_cast<int64_t>(tokens.size())) - m.num_blocks();
  EXPECT_TRUE(pool.can_allocate(m, need));
  o.blocks = pool.allocate(m, need);
  pool.RegisterFullBlocks(o.blocks, tokens, static_cast<int64_t>(tokens.size()) / kBs, extra, &o.hashes);
  return o;
}

TEST(BlockPoolTest, FreshPoolAllocatesInOrderAndReleases) {
  BlockPool pool = MakePool(4, /*caching=*/false);
  EXPECT_EQ(pool.num_free(), 4);
  std::vector<int32_t> b;
  ASSERT_TRUE(pool.can_allocate(3));
  pool.allocate(3, &b);
  EXPECT_EQ(b, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(pool.num_used(), 3);
  EXPECT_FALSE(pool.can_allocate(2));
  pool.share(std::vector<int32_t>{1});
  EXPECT_EQ(pool.ref_count(1), 2);
  pool.release(b);
  EXPECT_EQ(pool.num_free(), 3);  // block 1 still has a reference
  pool.release(std::vector<int32_t>{1});
  EXPECT_EQ(pool.num_free(), 4);
}

// Sequence A is cached; how much of B's prefix hits?
struct HitCase {
  std::string name;
  std::vector<int32_t> a, b;
  uint64_t extra_a = 0, extra_b = 0;
  int64_t want_blocks;
};

TEST(BlockPoolTest, PrefixHitTable) {
  const std::vector<int32_t> base = Seq(100, 10);  // 2 full blocks + 2 tokens
  const std::vector<HitCase> cases = {
      {"identical prompt: full blocks only", base, base, 0, 0, 2},
      {"longer prompt", base, Cat(base, Seq(7, 9)), 0, 0, 2},
      {"shorter prompt, one full block", base, Seq(100, 7), 0, 0, 1},
      {"differs in second block", base, Cat(Seq(100, 5), Seq(900, 5)), 0, 0, 1},
      {"differs in first token", base, Cat({1}, Seq(101, 9)), 0, 0, 0},
      {"partial block never hits", base, Seq(100, 3), 0, 0, 0},
      {"same tokens, other extra key (LoRA)", base, base, 0, 7, 0},
      {"same tokens, same extra key", base, base, 7, 7, 2},
      {"same second block, other first block", Seq(100, 8), Cat(Seq(0, 4), Seq(104, 4)), 0, 0, 0},
  };
  for (const HitCase& c : cases) {
    BlockPool pool = MakePool(16);
    Owner a = AllocateAndRegister(pool, c.a, c.extra_a);
    PrefixMatch m = pool.FindCachedPrefix(c.b, c.extra_b);
    EXPECT_EQ(m.num_blocks(), c.want_blocks) << c.name;
    for (int64_t i = 0; i < m.num_blocks(); ++i) EXPECT_EQ(m.blocks[static_cast<size_t>(i)], a.blocks[static_cast<size_t>(i)]) << c.name;
  }
}

TEST(BlockPoolTest, HitSharesBlocksAndCountsStats) {
  BlockPool pool = MakePool(8);
  const std::vector<int32_t> prompt = Seq(1, 9);
  Owner a = AllocateAndRegister(pool, prompt);
  Owner b = AllocateAndRegister(pool, prompt);
  EXPECT_EQ(b.hit_blocks, 2);
  EXPECT_EQ(b.blocks[0], a.blocks[0]);
  EXPECT_EQ(b.blocks[1], a.blocks[1]);
  EXPECT_NE(b.blocks[2], a.blocks[2]);
  EXPECT_EQ(pool.ref_count(a.blocks[0]), 2);
  EXPECT_EQ(pool.num_used(), 4);
  const PrefixCacheStats& s = pool.stats();
  EXPECT_EQ(s.queries, 2);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.query_tokens, 18);
  EXPECT_EQ(s.hit_tokens, 8);
  pool.release(a.blocks);
  pool.release(b.blocks);
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(pool.num_cached_free(), 2);
}

TEST(BlockPoolTest, HashCollisionIsAMissNeverWrongKv) {
  // Every block hashes to the same value: only content comparison tells them apart.
  BlockPool pool = MakePool(8, /*caching=*/true, [](uint64_t, uint64_t, std::span<const int32_t>) -> uint64_t { return 42; });
  Owner a = AllocateAndRegister(pool, Seq(0, 8));
  EXPECT_TRUE(pool.TEST_IsCached(a.blocks[0]));
  EXPECT_FALSE(pool.TEST_IsCached(a.blocks[1]));  // its hash is taken by block 0
  EXPECT_EQ(pool.FindCachedPrefix(Seq(50, 8), 0).num_blocks(), 0);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 1);
}

TEST(BlockPoolTest, SameContentComputedTwiceKeepsOneIndexEntry) {
  BlockPool pool = MakePool(8);
  // Both allocated before either registered (admitted in the same step).
  const std::vector<int32_t> t = Seq(0, 8);
  PrefixMatch m1 = pool.FindCachedPrefix(t, 0), m2 = pool.FindCachedPrefix(t, 0);
  std::vector<int32_t> b1 = pool.allocate(m1, 2), b2 = pool.allocate(m2, 2);
  std::vector<uint64_t> h1, h2;
  pool.RegisterFullBlocks(b1, t, 2, 0, &h1);
  pool.RegisterFullBlocks(b2, t, 2, 0, &h2);
  EXPECT_EQ(h1, h2);
  EXPECT_TRUE(pool.TEST_IsCached(b1[0]));
  EXPECT_FALSE(pool.TEST_IsCached(b2[0]));
  pool.release(b2);
  EXPECT_EQ(pool.num_cached_free(), 0);  // duplicates go straight to the free list
  pool.release(b1);
  EXPECT_EQ(pool.num_cached_free(), 2);
}

TEST(BlockPoolTest, EvictionOrderFreeListFirstThenLeastRecentlyReleasedDeepestFirst) {
  BlockPool pool = MakePool(6);
  Owner a = AllocateAndRegister(pool, Seq(0, 8));    // blocks 0, 1 cached
  Owner b = AllocateAndRegister(pool, Seq(100, 8));  // blocks 2, 3 cached
  pool.release(a.blocks);                            // LRU: 1, 0 (deepest first)
  pool.release(b.blocks);                            // LRU: 1, 0, 3, 2
  EXPECT_EQ(pool.num_free(), 6);
  EXPECT_EQ(pool.num_cached_free(), 4);
  std::vector<int32_t> got;
  pool.allocate(2, &got);  // the two never-cached blocks
  EXPECT_EQ(pool.stats().evictions, 0);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 2);
  pool.allocate(1, &got);  // evicts block 1 (A's second block)
  EXPECT_EQ(got.back(), a.blocks[1]);
  EXPECT_EQ(pool.stats().evictions, 1);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 1);
  pool.allocate(1, &got);  // evicts block 0
  EXPECT_EQ(got.back(), a.blocks[0]);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 0);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(100, 8), 0).num_blocks(), 2);  // B untouched
}

TEST(BlockPoolTest, ReusingAnEvictableBlockCountsAgainstFreeSpace) {
  BlockPool pool = MakePool(3);
  Owner a = AllocateAndRegister(pool, Seq(0, 8));
  pool.release(a.blocks);
  EXPECT_EQ(pool.num_free(), 3);
  PrefixMatch m = pool.FindCachedPrefix(Seq(0, 12), 0);
  ASSERT_EQ(m.num_blocks(), 2);
  EXPECT_TRUE(pool.can_allocate(m, 1));
  EXPECT_FALSE(pool.can_allocate(m, 2));  // 2 revived + 2 new > 3
  std::vector<int32_t> b = pool.allocate(m, 1);
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_EQ(pool.num_cached_free(), 0);
  pool.release(b);
  EXPECT_EQ(pool.num_free(), 3);
}

TEST(BlockPoolTest, CachingOffNeverMatchesOrRegisters) {
  BlockPool pool = MakePool(4, /*caching=*/false);
  Owner a = AllocateAndRegister(pool, Seq(0, 8));
  EXPECT_TRUE(a.hashes.empty());
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 0);
  pool.release(a.blocks);
  EXPECT_EQ(pool.num_cached_free(), 0);
  EXPECT_EQ(pool.stats().queries, 0);
}

TEST(BlockPoolTest, ResetPrefixCacheEmptiesTheIndex) {
  BlockPool pool = MakePool(4);
  Owner a = AllocateAndRegister(pool, Seq(0, 8));
  Owner b = AllocateAndRegister(pool, Seq(50, 4));
  pool.release(a.blocks);
  pool.ResetPrefixCache();
  EXPECT_EQ(pool.num_cached_free(), 0);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 0);
  EXPECT_EQ(pool.FindCachedPrefix(Seq(50, 4), 0).num_blocks(), 0);
  pool.release(b.blocks);
  EXPECT_EQ(pool.num_free(), 4);
}

TEST(BlockPoolTest, IncrementalRegistrationHashesOnlyNewBlocks) {
  BlockPool pool = MakePool(4);
  std::vector<int32_t> t = Seq(0, 5);
  PrefixMatch m = pool.FindCachedPrefix(t, 0);
  std::vector<int32_t> blocks = pool.allocate(m, 2);
  std::vector<uint64_t> hashes;
  pool.RegisterFullBlocks(blocks, t, 1, 0, &hashes);
  ASSERT_EQ(hashes.size(), 1u);
  t.insert(t.end(), {5, 6, 7});  // decode fills block 1
  pool.RegisterFullBlocks(blocks, t, 2, 0, &hashes);
  ASSERT_EQ(hashes.size(), 2u);
  EXPECT_EQ(hashes[1], HashBlockTokens(hashes[0], 0, std::vector<int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(hashes[0], HashBlockTokens(kRootBlockHash, 0, std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(pool.FindCachedPrefix(Seq(0, 8), 0).num_blocks(), 2);
}

TEST(BlockPoolTest, RandomOperationsKeepTheBooksBalanced) {
  Rng rng(5);
  BlockPool pool = MakePool(32);
  std::vector<Owner> live;
  for (int step = 0; step < 3000; ++step) {
    if (!live.empty() && (rng.NextU64() % 3 == 0 || pool.num_free() < 8)) {
      const size_t i = rng.NextU64() % live.size();
      pool.release(live[i].blocks);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      // Prompts from a few shared prefixes, so hits, evictions and revivals all happen.
      std::vector<int32_t> t = Seq(static_cast<int32_t>(rng.NextU64() % 3) * 1000, static_cast<int>(rng.NextU64() % 12));
      for (int k = static_cast<int>(rng.NextU64() % 10); k > 0; --k) t.push_back(static_cast<int32_t>(rng.NextU64() % 50));
      if (t.empty()) continue;
      PrefixMatch m = pool.FindCachedPrefix(t, 0);
      const int64_t need = pool.BlocksFor(static_cast<int64_t>(t.size())) - m.num_blocks();
      if (!pool.can_allocate(m, need)) continue;
      live.push_back(AllocateAndRegister(pool, t));
    }
    int64_t used = 0;
    for (int32_t b = 0; b < 32; ++b) used += pool.ref_count(b) > 0 ? 1 : 0;
    ASSERT_EQ(used, pool.num_used()) << "step " << step;
  }
  for (const Owner& o : live) pool.release(o.blocks);
  EXPECT_EQ(pool.num_free(), 32);
  EXPECT_GT(pool.stats().hits, 0);
  EXPECT_GT(pool.stats().evictions, 0);
}

}  // namespace
}  // namespace tide
