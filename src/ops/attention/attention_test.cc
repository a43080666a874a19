#include "ops/attention/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct SeqSpec {
  int q_len, kv_len;
};

struct Shape {
  int n_heads, n_kv_heads, head_dim, block_size;
};

// A batch with its own storage. Blocks are handed out in a shuffled order (so each
// sequence's blocks are scattered across the cache), a few spare blocks stay unused,
// and every cache row that no sequence owns — spare blocks and the tail of each last
// block — holds NaN, so a read past kv_len or through a wrong block id shows up as
// NaN in the output.
struct Batch {
  std::vector<float> q, k_cache, v_cache, out;
  std::vector<int32_t> q_start, kv_len, block_table;
  AttentionParams p;
};

Batch MakeBatch(Rng& rng, const Shape& shape, const std::vector<SeqSpec>& seqs) {
  Batch b;
  const int n_seqs = static_cast<int>(seqs.size());
  const int bs = shape.block_size;
  int max_blocks = 1;
  int64_t total_blocks = 0;
  for (const SeqSpec& s : seqs) {
    max_blocks = std::max(max_blocks, (s.kv_len + bs - 1) / bs + 1);  // +1: an unused table entry
    total_blocks += (s.kv_len + bs - 1) / bs;
  }
  const int64_t num_blocks = total_blocks + 3;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = num_blocks - 1; i > 0; --i) {
    std::swap(ids[static_cast<size_t>(i)], ids[rng.NextU64() % static_cast<uint64_t>(i + 1)]);
  }
  const int64_t kv_row = static_cast<int64_t>(shape.n_kv_heads) * shape.head_dim;
  b.k_cache.assign(static_cast<size_t>(num_blocks * bs * kv_row), kNaN);
  b.v_cache = b.k_cache;
  b.block_table.assign(static_cast<size_t>(n_seqs * max_blocks), -1);
  b.q_start.push_back(0);
  size_t next_id = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const SeqSpec& spec = seqs[static_cast<size_t>(s)];
    b.q_start.push_back(b.q_start.back() + spec.q_len);
    b.kv_len.push_back(spec.kv_len);
    for (int blk = 0; blk < (spec.kv_len + bs - 1) / bs; ++blk) {
      b.block_table[static_cast<size_t>(s * max_blocks + blk)] = ids[next_id++];
    }
    for (int pos = 0; pos < spec.kv_len; ++pos) {
      const int64_t slot = static_cast<int64_t>(b.block_table[static_cast<size_t>(s * max_blocks + pos / bs)]) * bs + pos % bs;
      for (int64_t i = 0; i < kv_row; ++i) {
        b.k_cache[static_cast<size_t>(slot * kv_row + i)] = rng.Normal();
        b.v_cache[static_cast<size_t>(slot * kv_row + i)] = rng.Uniform(-1.f, 1.f);
      }
    }
  }
  const int64_t n_tokens = b.q_start.back();
  b.q.resize(static_cast<size_t>(n_tokens * shape.n_heads * shape.head_dim));
  // 2x: sharper softmax than unit scores, so the max-tracking and rescaling matter.
  for (float& f : b.q) f = 2.f * rng.Normal();
  b.out.assign(b.q.size(), kNaN);
  b.p = AttentionParams{.q = b.q.data(), .k_cache = b.k_cache.data(), .v_cache = b.v_cache.data(),
                        .out = b.out.data(), .q_start = b.q_start.data(), .kv_len = b.kv_len.data(), .block_table = b.block_table.data(),
                        .n_seqs = n_seqs, .max_blocks_per_seq = max_blocks, .n_tokens = n_tokens,
                        .num_blocks = num_blocks, .n_heads = shape.n_heads, .n_kv_heads = shape.n_kv_heads,
                        .head_dim = shape.head_dim, .block_size = bs,
                        .scale = 1.f / std::sqrt(static_cast<float>(shape.head_dim))};
  return b;
}

std::vector<float> RunCpu(AttentionParams p, ThreadPool* pool) {
  std::vector<float> out(static_cast<size_t>(p.n_tokens * p.n_heads * p.head_dim), kNaN);
  p.out = out.data();
  Attention(ExecContext{.pool = pool}, p);
  return out;
}

const std::vector<SeqSpec> kMixed = {{1, 1}, {1, 37}, {5, 5}, {3, 40}, {17, 100}};
const std::vector<SeqSpec> kLong = {{300, 300}, {1, 513}, {2, 290}};

TEST(AttentionTest, CpuMatchesRef) {
  Rng rng(10);
  ThreadPool pool3(3);
  struct Case {
    Shape shape;
    const std::vector<SeqSpec>* seqs;
  };
  const Case cases[] = {
      {{4, 4, 64, 16}, &kMixed},    // MHA
      {{8, 2, 128, 16}, &kMixed},   // GQA
      {{8, 2, 128, 16}, &kLong},    // long prefill, long decode
      {{4, 1, 32, 1}, &kMixed},     // MQA, one token per block
      {{6, 3, 12, 32}, &kMixed},    // head_dim not a multiple of 8
      {{2, 1, 256, 16}, &kMixed},
      {{16, 1, 8, 32}, &kMixed},    // group of 16 heads > one head tile
      {{3, 3, 3, 4}, &kMixed},      // tiny head_dim: scalar only
      {{4, 2, 80, 32}, &kLong},
  };
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool3}) {
    for (const Case& c : cases) {
      Batch b = MakeBatch(rng, c.shape, *c.seqs);
      ASSERT_TRUE(b.p.check().ok()) << b.p.check().ToString();
      std::vector<float> want(static_cast<size_t>(b.p.n_tokens * c.shape.n_heads * c.shape.head_dim), kNaN);
      AttentionParams rp = b.p;
      rp.out = want.data();
      AttentionRef(rp);
      const std::vector<float> got = RunCpu(b.p, pool);
      // The output is a convex combination of V rows (|v| <= 1). The kernel's f32 scores
      // carry ~head_dim·2^-24·|q||k|·scale of error (|score| reaches ~10 here), the
      // polynomial e^x ~2 ulp, and the f32 sums over up to 513 keys ~sqrt(n)·2^-24:
      // measured max error is ~1e-6; 1e-5 absolute leaves margin and still catches
      // any masking or indexing slip (those are O(0.1)).
      float max_err = 0.f;
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_FALSE(std::isnan(got[i])) << "unwritten or poisoned read at " << i;
        max_err = std::max(max_err, std::fabs(got[i] - want[i]));
      }
      EXPECT_LT(max_err, 1e-5f) << "heads " << c.shape.n_heads << "/" << c.shape.n_kv_heads
                                << " hd=" << c.shape.head_dim << " bs=" << c.shape.block_size;
    }
  }
}

// A query's output must be bit-identical alone or batched, with any thread count, and
// whether its prefill runs in one chunk or several.
TEST(AttentionTest, BatchInvariant) {
  Rng rng(11);
  ThreadPool pool3(3);
  ThreadPool pool2(2);
  const Shape shape{8, 2, 128, 16};
  std::vector<SeqSpec> seqs = kMixed;
  seqs.push_back({40, 260});
  Batch b = MakeBatch(rng, shape, seqs);
  ASSERT_TRUE(b.p.check().ok());
  const std::vector<float> batched = RunCpu(b.p, &pool3);
  const int64_t row = static_cast<int64_t>(shape.n_heads) * shape.head_dim;
  for (int s = 0; s < b.p.n_seqs; ++s) {
    const int32_t q0 = b.q_start[static_cast<size_t>(s)];
    const int32_t q_len = b.q_start[static_cast<size_t>(s) + 1] - q0;
    const int32_t kv = b.kv_len[static_cast<size_t>(s)];
    // Alone, and as the last `tail` queries only (the second chunk of a chunked prefill).
    for (int32_t tail : {q_len, (q_len + 1) / 2}) {
      const int32_t skip = q_len - tail;
      int32_t one_q_start[2] = {0, tail};
      const int32_t one_kv_len[1] = {kv};
      AttentionParams p = b.p;
      p.q = b.q.data() + (q0 + skip) * row;
      p.q_start = one_q_start;
      p.kv_len = one_kv_len;
      p.block_table = b.block_table.data() + static_cast<int64_t>(s) * b.p.max_blocks_per_seq;
      p.n_seqs = 1;
      p.n_tokens = tail;
      ASSERT_TRUE(p.check().ok()) << p.check().ToString();
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
        const std::vector<float> alone = RunCpu(p, pool);
        ASSERT_EQ(0, std::memcmp(alone.data(), batched.data() + (q0 + skip) * row, alone.size() * sizeof(float)))
            << "seq " << s << " tail " << tail;
      }
    }
  }
}

TEST(AttentionTest, CheckRejectsBadParams) {
  Rng rng(12);
  Batch b = MakeBatch(rng, Shape{4, 2, 16, 4}, {{2, 6}, {1, 3}});
  ASSERT_TRUE(b.p.check().ok()) << b.p.check().ToString();
  auto expect_bad = [](const AttentionParams& p, const char* field) {
    const Status s = p.check();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  const AttentionParams ok = b.p;
  AttentionParams p = ok;
  p.n_seqs = -1;
  expect_bad(p, "n_seqs");
  p = ok;
  p.n_tokens = -1;
  expect_bad(p, "n_tokens");
  p = ok;
  p.num_blocks = -1;
  expect_bad(p, "num_blocks");
  p = ok;
  p.max_blocks_per_seq = -1;
  expect_bad(p, "max_blocks_per_seq");
  p = ok;
  p.n_heads = 0;
  expect_bad(p, "n_heads");
  p = ok;
  p.n_kv_heads = 3;
  expect_bad(p, "n_kv_heads");
  p.n_kv_heads = 0;
  expect_bad(p, "n_kv_heads");
  p = ok;
  p.head_dim = 0;
  expect_bad(p, "head_dim");
  p.head_dim = kAttentionMaxHeadDim + 1;
  expect_bad(p, "head_dim");
  p = ok;
  p.block_size = 0;
  expect_bad(p, "block_size");
  p = ok;
  p.scale = kNaN;
  expect_bad(p, "scale");
  for (const char* field : {"q is null", "out is null", "q_start is null", "kv_len is null", "k_cache is null",
                            "v_cache is null", "block_table is null"}) {
    p = ok;
    const std::string f = field;
    if (f == "q is null") p.q = nullptr;
    if (f == "out is null") p.out = nullptr;
    if (f == "q_start is null") p.q_start = nullptr;
    if (f == "kv_len is null") p.kv_len = nullptr;
    if (f == "k_cache is null") p.k_cache = nullptr;
    if (f == "v_cache is null") p.v_cache = nullptr;
    if (f == "block_table is null") p.block_table = nullptr;
    expect_bad(p, field);
  }
  p = ok;
  p.n_seqs = 0;
  expect_bad(p, "n_seqs = 0");
  p.n_tokens = 0;
  EXPECT_TRUE(p.check().ok());  // an empty batch

  // q_start: must start at 0, never decrease, end at n_tokens.
  int32_t qs[3];
  p = ok;
  p.q_start = qs;
  qs[0] = 1, qs[1] = 2, qs[2] = 3;
  expect_bad(p, "q_start[0]");
  qs[0] = 0, qs[1] = 2, qs[2] = 2;
  expect_bad(p, "q_start[n_seqs]");
  qs[0] = 0, qs[1] = 4, qs[2] = 3;
  expect_bad(p, "non-decreasing");
  qs[0] = 0, qs[1] = 2, qs[2] = 3;
  EXPECT_TRUE(p.check().ok());

  // kv_len: at least q_len, at most the table's capacity.
  int32_t kv[2];
  p = ok;
  p.kv_len = kv;
  kv[0] = 1, kv[1] = 3;  // seq 0 has q_len 2
  expect_bad(p, "kv_len[0]");
  kv[0] = 6, kv[1] = ok.max_blocks_per_seq * 4 + 1;
  expect_bad(p, "kv_len[1]");
  kv[0] = 6, kv[1] = -1;
  expect_bad(p, "kv_len[1]");

  // Block ids of used blocks must exist; unused table entries are not looked at.
  std::vector<int32_t> table = b.block_table;
  p = ok;
  p.block_table = table.data();
  table[1] = -1;  // seq 0, block 1 (kv_len 6 with block_size 4 uses blocks 0 and 1)
  expect_bad(p, "block_table[0][1]");
  table[1] = static_cast<int32_t>(ok.num_blocks);
  expect_bad(p, "block_table[0][1]");
  table = b.block_table;
  table[static_cast<size_t>(ok.max_blocks_per_seq) + 0] = 1 << 30;  // seq 1, block 0
  expect_bad(p, "block_table[1][0]");
  table = b.block_table;
  table[static_cast<size_t>(ok.max_blocks_per_seq) + 1] = 1 << 30;  // seq 1, block 1: unused
  EXPECT_TRUE(p.check().ok());
}

}  // namespace
}  // namespace tide
