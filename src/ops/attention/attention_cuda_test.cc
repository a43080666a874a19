#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda_test_util.h"
#include "base/rng.h"
#include "ops/attention/attention.h"

namespace tide {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct SeqSpec {
  int q_len, kv_len;
};

struct Shape {
  int n_heads, n_kv_heads, head_dim, block_size;
};

// A batch on the host: blocks handed out in shuffled order, spare blocks and the tail
// of each last block hold NaN, so a read past kv_len or through a wrong block id
// poisons the output.
struct Batch {
  std::vector<float> q, k_cache, v_cache, out;  // out: host stand-in so check() passes
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
    max_blocks = std::max(max_blocks, (s.kv_len + bs - 1) / bs + 1);
    total_blocks += (s.kv_len + bs - 1) / bs;
  }
  const int64_t num_blocks = total_blocks + 3;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = num_blocks - 1; i > 0; --i) std::swap(ids[static_cast<size_t>(i)], ids[rng.NextU64() % static_cast<uint64_t>(i + 1)]);
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
    for (int blk = 0; blk < (spec.kv_len + bs - 1) / bs; ++blk) b.block_table[static_cast<size_t>(s * max_blocks + blk)] = ids[next_id++];
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
  for (float& f : b.q) f = 2.f * rng.Normal();  // sharper than unit scores: rescaling matters
  b.out.assign(b.q.size(), kNaN);
  b.p = AttentionParams{.q = b.q.data(), .k_cache = b.k_cache.data(), .v_cache = b.v_cache.data(), .out = b.out.data(),
                        .q_start = b.q_start.data(), .kv_len = b.kv_len.data(), .block_table = b.block_table.data(),
                        .n_seqs = n_seqs, .max_blocks_per_seq = max_blocks, .n_tokens = n_tokens,
                        .num_blocks = num_blocks, .n_heads = shape.n_heads, .n_kv_heads = shape.n_kv_heads,
                        .head_dim = shape.head_dim, .block_size = bs,
                        .scale = 1.f / std::sqrt(static_cast<float>(shape.head_dim))};
  return b;
}

std::vector<float> RunCuda(const Batch& b, Precision precision = Precision::kExact) {
  DeviceBuffer q = testing::Upload(b.q), kc = testing::Upload(b.k_cache), vc = testing::Upload(b.v_cache);
  DeviceBuffer qs = testing::Upload(b.q_start), kl = testing::Upload(b.kv_len), bt = testing::Upload(b.block_table);
  const size_t n = b.q.size();
  DeviceBuffer out = testing::Upload(std::vector<float>(n, kNaN));
  AttentionParams p = b.p;
  p.q = q.as<float>();
  p.k_cache = kc.as<float>();
  p.v_cache = vc.as<float>();
  p.out = out.as<float>();
  p.q_start = qs.as<int32_t>();
  p.kv_len = kl.as<int32_t>();
  p.block_table = bt.as<int32_t>();
  ExecContext ctx = testing::CudaCtx();
  ctx.precision = precision;
  Attention(ctx, p);
  return testing::Download<float>(out, n);
}

const std::vector<SeqSpec> kMixed = {{1, 1}, {1, 37}, {5, 5}, {3, 40}, {17, 100}, {0, 9}};
const std::vector<SeqSpec> kLong = {{300, 300}, {1, 513}, {2, 290}, {70, 1100}};

// The f32 kernels (Precision::kExact).
TEST(AttentionCudaTest, MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(10);
  struct Case {
    Shape shape;
    const std::vector<SeqSpec>* seqs;
  };
  const Case cases[] = {
      {{4, 4, 64, 16}, &kMixed},    // MHA
      {{8, 2, 128, 16}, &kMixed},   // GQA
      {{32, 8, 128, 16}, &kLong},   // Llama-3-8B heads, long prefill and decode
      {{14, 2, 64, 16}, &kMixed},   // group of 7 (Qwen2-0.5B): partial token tiles
      {{4, 1, 32, 1}, &kMixed},     // MQA, one token per block
      {{6, 3, 12, 32}, &kMixed},    // head_dim not a multiple of 32
      {{2, 1, 256, 16}, &kMixed},
      {{64, 1, 8, 32}, &kMixed},    // group of 64 > 32 rows: two head chunks
      {{3, 3, 3, 4}, &kMixed},
      {{4, 2, 512, 16}, &kMixed},   // the largest head_dim check() accepts
  };
  for (const Case& c : cases) {
    Batch b = MakeBatch(rng, c.shape, *c.seqs);
    ASSERT_TRUE(b.p.check().ok()) << b.p.check().ToString();
    std::vector<float> want(b.q.size(), kNaN);
    AttentionParams rp = b.p;
    rp.out = want.data();
    AttentionRef(rp);
    const std::vector<float> got = RunCuda(b);
    // As on the CPU (attention_test.cc): outputs are convex combinations of |v| <= 1;
    // f32 scores, expf (2 ulp) and f32 sums over up to 1100 keys stay near 1e-6, while
    // a masking or indexing slip is O(0.1) and a stale read is NaN.
    float max_err = 0.f;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "unwritten or poisoned read at " << i;
      max_err = std::max(max_err, std::fabs(got[i] - want[i]));
    }
    EXPECT_LT(max_err, 1e-5f) << "heads " << c.shape.n_heads << "/" << c.shape.n_kv_heads << " hd=" << c.shape.head_dim
                              << " bs=" << c.shape.block_size;
  }
}

// The tensor-core FlashAttention kernel (bf16 Q/K/V/P, f32 softmax and accumulation),
// taken by non-decode batches with head_dim 64 or 128 under Precision::kFast: ragged
// prompts, chunked-prefill chunks (q_len < kv_len), decode rows mixed in, several
// sequences, GQA groups 1..16 (partial head and token tiles), block sizes 1..32.
// Tolerance: outputs are convex combinations of |v| <= 1. Rounding q and k to bf16
// moves a score by ~2^-8·|q·k|·scale (~1e-2 for the sharp scores here: q ~ 2N(0,1)),
// which shifts the softmax weights by about that relative amount; p and v are rounded
// to 2^-9 relative. So elements stay under ~1e-2 (3e-2 asserted, max over millions of
// elements) and the relative norm error near 3e-3 (1e-2 asserted), the usual bf16
// range; a masking or indexing slip moves outputs by O(0.1..1) and a stale read is NaN.
// The relative error must also exceed 1e-5, or the f32 kernel ran instead.
TEST(AttentionCudaTest, FlashBf16MatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(14);
  const std::vector<SeqSpec> chunked = {{64, 64}, {130, 1000}, {1, 77}, {200, 260}, {7, 7}, {0, 12}, {33, 4100}};
  const std::vector<SeqSpec> prompt = {{1000, 1000}};
  struct Case {
    Shape shape;
    const std::vector<SeqSpec>* seqs;
  };
  const Case cases[] = {
      {{4, 4, 64, 16}, &kMixed},     // MHA
      {{8, 2, 128, 16}, &kMixed},    // GQA
      {{32, 8, 128, 16}, &kLong},    // Llama-3-8B heads
      {{32, 8, 128, 16}, &chunked},  // chunked prefill next to other sequences
      {{32, 8, 128, 16}, &prompt},   // one long prompt
      {{14, 2, 64, 16}, &kMixed},    // group of 7: partial token tiles
      {{16, 1, 64, 32}, &chunked},   // group of 16
      {{4, 1, 128, 1}, &kMixed},     // one token per block
      {{12, 4, 64, 16}, &kLong},
  };
  for (const int warps : {8, 4}) {
  SetAttentionCudaFlashWarps(warps);
  for (const Case& c : cases) {
    Batch b = MakeBatch(rng, c.shape, *c.seqs);
    ASSERT_TRUE(b.p.check().ok()) << b.p.check().ToString();
    std::vector<float> want(b.q.size(), kNaN);
    AttentionParams rp = b.p;
    rp.out = want.data();
    AttentionRef(rp);
    const std::vector<float> got = RunCuda(b, Precision::kFast);
    double max_err = 0, err2 = 0, ref2 = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "unwritten or poisoned read at " << i;
      const double d = static_cast<double>(got[i]) - want[i];
      max_err = std::max(max_err, std::fabs(d));
      err2 += d * d;
      ref2 += static_cast<double>(want[i]) * want[i];
    }
    const double rel = std::sqrt(err2 / ref2);
    std::printf("  %d warps, heads %d/%d hd=%d bs=%d: max |err| %.3g, relative norm error %.3g\n", warps,
                c.shape.n_heads, c.shape.n_kv_heads, c.shape.head_dim, c.shape.block_size, max_err, rel);
    const std::string what = std::to_string(warps) + " warps, heads " + std::to_string(c.shape.n_heads) + "/" +
                             std::to_string(c.shape.n_kv_heads) + " hd=" + std::to_string(c.shape.head_dim) +
                             " bs=" + std::to_string(c.shape.block_size);
    EXPECT_LT(max_err, 3e-2) << what;
    EXPECT_LT(rel, 1e-2) << what;
    EXPECT_GT(rel, 1e-5) << what << ": the f32 kernel ran, not the tensor-core one";
  }
  }
  SetAttentionCudaFlashWarps(0);
}

// Not a check: times prefill attention at Llama-3-8B heads (32/8, head_dim 128) as
// `tide bench forward` runs a 4096-token prompt (eight 512-token chunks, each over the
// context so far) and in one piece, for the tensor-core kernel at 4 and 8 warps and the
// f32 kernel on the last chunk. Run with --gtest_also_run_disabled_tests.
TEST(AttentionCudaTest, DISABLED_PrefillTiming) {
  TIDE_REQUIRE_CUDA();
  Rng rng(15);
  const Shape shape{32, 8, 128, 16};
  auto time_batch = [&](const std::vector<SeqSpec>& seqs, Precision precision, int reps) {
    Batch b = MakeBatch(rng, shape, seqs);
    DeviceBuffer q = testing::Upload(b.q), kc = testing::Upload(b.k_cache), vc = testing::Upload(b.v_cache);
    DeviceBuffer qs = testing::Upload(b.q_start), kl = testing::Upload(b.kv_len), bt = testing::Upload(b.block_table);
    DeviceBuffer out = testing::Upload(std::vector<float>(b.q.size(), kNaN));
    AttentionParams p = b.p;
    p.q = q.as<float>();
    p.k_cache = kc.as<float>();
    p.v_cache = vc.as<float>();
    p.out = out.as<float>();
    p.q_start = qs.as<int32_t>();
    p.kv_len = kl.as<int32_t>();
    p.block_table = bt.as<int32_t>();
    ExecContext ctx = testing::CudaCtx();
    ctx.precision = precision;
    Attention(ctx, p);
    EXPECT_TRUE(Synchronize(ctx).ok());
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) Attention(ctx, p);
    EXPECT_TRUE(Synchronize(ctx).ok());
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    double visible = 0;  // (query row, key) pairs the causal mask leaves, per head
    for (const SeqSpec& sq : seqs)
      for (int j = 0; j < sq.q_len; ++j) visible += sq.kv_len - sq.q_len + j + 1;
    const double flops = 4.0 * shape.head_dim * shape.n_heads * visible;
    return std::pair<double, double>{us, flops / us * 1e-6};
  };
  for (const int warps : {8, 4}) {
    SetAttentionCudaFlashWarps(warps);
    double total = 0, total_flops = 0;
    for (int c = 0; c < 8; ++c) {
      const auto [us, tf] = time_batch({{512, 512 * (c + 1)}}, Precision::kFast, 10);
      std::printf("attention %d warps: chunk q 512 over kv %d: %.1f us (%.0f TFLOP/s)\n", warps, 512 * (c + 1), us, tf);
      total += us;
      total_flops += tf * us;
    }
    std::printf("attention %d warps: 4096 prompt in 512 chunks: %.1f us per layer (%.0f TFLOP/s)\n", warps, total,
                total_flops / total);
    const auto [us, tf] = time_batch({{4096, 4096}}, Precision::kFast, 5);
    std::printf("attention %d warps: 4096 prompt in one piece: %.1f us per layer (%.0f TFLOP/s)\n", warps, us, tf);
  }
  SetAttentionCudaFlashWarps(0);
  const auto [us, tf] = time_batch({{512, 4096}}, Precision::kExact, 2);
  std::printf("attention f32 kernel: chunk q 512 over kv 4096: %.1f us (%.1f TFLOP/s)\n", us, tf);
}

// A query's output is bit-identical alone or batched (each row's arithmetic depends
// only on its own query and context) as long as both batches take the same kernel: a
// sequence with one query row alone is a decode batch (the flash-decoding kernel),
// which rounds differently from the mixed kernel, so those rows are compared to 1e-5
// (f32 kernels) or 3e-2 (the bf16 kernel's error, see FlashBf16MatchesRef). Both the f32
// and the tensor-core kernels.
TEST(AttentionCudaTest, BatchInvariant) {
  TIDE_REQUIRE_CUDA();
  for (const Precision precision : {Precision::kExact, Precision::kFast}) {
  Rng rng(11);
  const Shape shape{8, 2, 128, 16};
  std::vector<SeqSpec> seqs = kMixed;
  seqs.push_back({40, 260});
  Batch b = MakeBatch(rng, shape, seqs);
  const std::vector<float> batched = RunCuda(b, precision);
  const float single_tol = precision == Precision::kExact ? 1e-5f : 3e-2f;
  const int64_t row = static_cast<int64_t>(shape.n_heads) * shape.head_dim;
  for (int s = 0; s < b.p.n_seqs; ++s) {
    const int32_t q0 = b.q_start[static_cast<size_t>(s)], q_len = b.q_start[static_cast<size_t>(s) + 1] - q0;
    if (q_len == 0) continue;
    Batch one = b;
    one.q.assign(b.q.begin() + q0 * row, b.q.begin() + (q0 + q_len) * row);
    one.q_start = {0, q_len};
    one.kv_len = {b.kv_len[static_cast<size_t>(s)]};
    one.block_table.assign(b.block_table.begin() + s * b.p.max_blocks_per_seq,
                           b.block_table.begin() + (s + 1) * b.p.max_blocks_per_seq);
    one.p.n_seqs = 1;
    one.p.n_tokens = q_len;
    const std::vector<float> alone = RunCuda(one, precision);
    for (int64_t i = 0; i < q_len * row; ++i) {
      if (q_len == 1) {
        ASSERT_NEAR(alone[static_cast<size_t>(i)], batched[static_cast<size_t>(q0 * row + i)], single_tol) << "seq " << s;
      } else {
        ASSERT_EQ(alone[static_cast<size_t>(i)], batched[static_cast<size_t>(q0 * row + i)]) << "seq " << s << " at " << i;
      }
    }
  }
  }
}

// Decode batches (n_tokens == n_seqs) take the flash-decoding kernels (the warp-per-chunk
// kernel for head_dim 64/128 and groups up to 8, the register-fed one otherwise):
// contexts from one key to past 4096 (256-key chunks), one chunk and many, tiles cut
// short by the context (lengths not a multiple of 8), every GQA group size they serve,
// batches where a sequence has no query row while another has two, and a batch of 64
// sequences of mixed lengths at Llama-3-8B heads.
TEST(AttentionCudaTest, DecodeMatchesRef) {
  TIDE_REQUIRE_CUDA();
  Rng rng(12);
  const std::vector<SeqSpec> decode = {{1, 1}, {1, 31}, {1, 32}, {1, 33}, {1, 160}, {1, 513}, {1, 1040}, {1, 4100}};
  const std::vector<SeqSpec> uneven = {{2, 70}, {0, 9}, {1, 700}, {3, 3}, {0, 1}, {0, 40}};
  std::vector<SeqSpec> batch64;
  for (int i = 0; i < 64; ++i) batch64.push_back({1, 1 + static_cast<int>(rng.NextU64() % 1100)});
  struct Case {
    Shape shape;
    const std::vector<SeqSpec>* seqs;
  };
  const Case cases[] = {
      {{32, 8, 128, 16}, &decode},  // Llama-3-8B heads: group 4
      {{32, 8, 128, 16}, &uneven},
      {{32, 8, 128, 16}, &batch64},
      {{32, 8, 128, 32}, &decode},  // 32-token blocks
      {{8, 8, 128, 16}, &decode},   // MHA
      {{12, 4, 128, 16}, &uneven},  // group 3 padded to 4
      {{64, 8, 128, 16}, &decode},  // group 8 at head_dim 128
      {{8, 4, 64, 32}, &decode},    // group 2
      {{16, 4, 64, 16}, &uneven},   // group 4 at head_dim 64
      {{16, 16, 64, 16}, &uneven},  // MHA at head_dim 64
      {{14, 2, 64, 16}, &decode},   // group 7 padded to 8
      {{16, 2, 128, 1}, &uneven},   // group 8, one token per block
      {{4, 2, 32, 16}, &decode},    // head_dim 32 (register-fed kernel)
      {{6, 2, 96, 16}, &decode},    // head_dim 96 (register-fed kernel)
      {{2, 1, 256, 16}, &uneven},   // head_dim 256: a warp per key (register-fed kernel)
  };
  for (const Case& c : cases) {
    Batch b = MakeBatch(rng, c.shape, *c.seqs);
    ASSERT_EQ(b.p.n_tokens, b.p.n_seqs);
    ASSERT_TRUE(b.p.check().ok()) << b.p.check().ToString();
    std::vector<float> want(b.q.size(), kNaN);
    AttentionParams rp = b.p;
    rp.out = want.data();
    AttentionRef(rp);
    const std::vector<float> got = RunCuda(b);
    float max_err = 0.f;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "unwritten or poisoned read at " << i;
      max_err = std::max(max_err, std::fabs(got[i] - want[i]));
    }
    EXPECT_LT(max_err, 1e-5f) << "heads " << c.shape.n_heads << "/" << c.shape.n_kv_heads << " hd=" << c.shape.head_dim
                              << " bs=" << c.shape.block_size << " seqs=" << c.seqs->size();
  }
}

// In a decode batch a sequence's output is bit-identical alone or batched: its chunking
// depends only on its own context length.
TEST(AttentionCudaTest, DecodeBatchInvariant) {
  TIDE_REQUIRE_CUDA();
  Rng rng(13);
  const Shape shape{32, 8, 128, 16};
  const std::vector<SeqSpec> seqs = {{1, 5}, {1, 300}, {1, 1024}, {1, 2049}};
  Batch b = MakeBatch(rng, shape, seqs);
  const std::vector<float> batched = RunCuda(b);
  const int64_t row = static_cast<int64_t>(shape.n_heads) * shape.head_dim;
  for (int s = 0; s < b.p.n_seqs; ++s) {
    Batch one = b;
    one.q.assign(b.q.begin() + s * row, b.q.begin() + (s + 1) * row);
    one.q_start = {0, 1};
    one.kv_len = {b.kv_len[static_cast<size_t>(s)]};
    one.block_table.assign(b.block_table.begin() + s * b.p.max_blocks_per_seq,
                           b.block_table.begin() + (s + 1) * b.p.max_blocks_per_seq);
    one.p.n_seqs = 1;
    one.p.n_tokens = 1;
    const std::vector<float> alone = RunCuda(one);
    for (int64_t i = 0; i < row; ++i)
      ASSERT_EQ(alone[static_cast<size_t>(i)], batched[static_cast<size_t>(s * row + i)]) << "seq " << s << " at " << i;
  }
}

}  // namespace
}  // namespace tide
