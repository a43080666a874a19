// rope_cache_write: RoPE and the K/V cache write in one pass, reading the output of one
// stacked [q; k; v] projection. For every token t:
//   q_out[t]                 = rope(q part of qkv[t], positions[t])
//   k_cache[slots[t]]        = rope(k part of qkv[t], positions[t])
//   v_cache[slots[t]]        = v part of qkv[t]
// with rope and the slot mapping exactly as ops/rope and ops/cache_write define them (a
// slot of -1 stores nothing; q_out is written regardless). The result equals Rope on
// separate q/k buffers followed by CacheWrite (that composition is the reference).
// Not for models with q/k RMSNorm, which must run between the projection and RoPE.
#pragma once

#include <cstdint>
#include <functional>

#include "backend/exec.h"
#include "base/status.h"
#include "ops/cache_write/cache_write.h"
#include "ops/rope/rope.h"

namespace tide {

struct RopeCacheWriteParams {
  // [n_tokens, qkv_stride]: columns [0, n_heads * head_dim) are q, the next
  // n_kv_heads * head_dim are k, the next n_kv_heads * head_dim are v. Not modified.
  const float* qkv = nullptr;
  int64_t qkv_stride = 0;              // >= (n_heads + 2 * n_kv_heads) * head_dim
  float* q_out = nullptr;              // [n_tokens, n_heads, head_dim]; fully overwritten
  float* k_cache = nullptr;            // [num_blocks, block_size, n_kv_heads, head_dim]
  float* v_cache = nullptr;            // same layout as k_cache
  const int64_t* slots = nullptr;      // [n_tokens], each in [-1, num_blocks * block_size), distinct
  const int32_t* positions = nullptr;  // [n_tokens]
  const float* inv_freq = nullptr;     // [rotary_dim / 2]
  int64_t n_tokens = 0;
  int64_t num_blocks = 0;
  int block_size = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, rotary_dim = 0;
  RopeStyle style = RopeStyle::kNeox;
  [[nodiscard]] Status check() const;  // also validates every slot's range
};

void RopeCacheWriteRef(const RopeCacheWriteParams& p);  // Rope, then CacheWrite, on copies
// The definition itself: splits the stacked rows into q_out and host copies of k and v,
// then calls `rope` and `cache_write` on them (the _ref and _cpu backends pass theirs).
void RopeCacheWriteComposed(const RopeCacheWriteParams& p, const std::function<void(const RopeParams&)>& rope,
                            const std::function<void(const CacheWriteParams&)>& cache_write);
void RopeCacheWriteCpu(const RopeCacheWriteParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void RopeCacheWriteCuda(const RopeCacheWriteParams& p, void* stream);
void RopeCacheWrite(const ExecContext& ctx, const RopeCacheWriteParams& p);

}  // namespace tide
