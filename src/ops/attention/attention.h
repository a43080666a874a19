// attention: causal multi-head attention of the step's queries over the paged KV cache,
// for a batch that mixes prefill chunks and decode tokens of several sequences.
//
// Sequence s owns query rows [q_start[s], q_start[s+1]); its context after this step
// has kv_len[s] tokens, stored in blocks block_table[s][0..]. Its query rows are the last
// q_len = q_start[s+1] - q_start[s] positions of that context, so query row j (0-based
// within the sequence) sits at position kv_len[s] - q_len + j and attends to context
// positions [0, that position]. GQA: query head h reads KV head h / (n_heads / n_kv_heads).
// The K/V of this step must already be in the cache (cache_write runs first).
// Softmax is computed online (running max and sum) so no [L, L] matrix exists.
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

// The largest head_dim check() accepts (CPU kernels keep a query's accumulator on the stack).
inline constexpr int kAttentionMaxHeadDim = 512;

struct AttentionParams {
  const float* q = nullptr;            // [n_tokens, n_heads, head_dim]
  const float* k_cache = nullptr;      // [num_blocks, block_size, n_kv_heads, head_dim]
  const float* v_cache = nullptr;      // same layout
  float* out = nullptr;                // [n_tokens, n_heads, head_dim]; fully overwritten
  const int32_t* q_start = nullptr;    // [n_seqs + 1], q_start[0] = 0, q_start[n_seqs] = n_tokens
  const int32_t* kv_len = nullptr;     // [n_seqs], >= q_len of that sequence
  const int32_t* block_table = nullptr;  // [n_seqs, max_blocks_per_seq] block ids
  int n_seqs = 0;
  int max_blocks_per_seq = 0;
  int64_t n_tokens = 0;
  int64_t num_blocks = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, block_size = 0;
  float scale = 0.f;                   // usually 1/sqrt(head_dim)
  [[nodiscard]] Status check() const;  // also validates block ids and lengths
};

void AttentionRef(const AttentionParams& p);  // materialises scores per query, f64 softmax
void AttentionCpu(const AttentionParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
// Decode batches (n_tokens == n_seqs) run in f32 whatever `precision`; other batches run
// on the tensor cores with Q/K/V/P rounded to bf16 unless precision is kExact (f32).
void AttentionCuda(const AttentionParams& p, void* stream, Precision precision = Precision::kFast);
// Tuning hook for tests and benchmarks: warps per block (4 or 8) of the tensor-core
// prefill kernel; 0 restores the default. Not thread-safe; affects later launches.
void SetAttentionCudaFlashWarps(int warps);
void Attention(const ExecContext& ctx, const AttentionParams& p);

}  // namespace tide
