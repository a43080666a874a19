// cache_write: stores the step's new K and V rows into the paged KV cache at their slots
// (slot = block_id * block_size + offset in block; the slot mapping of the ForwardBatch).
// A slot of -1 means "do not store" (padding tokens). Slots other than -1 must be
// distinct within one call: with several threads, which of two writes to the same slot
// lands is unspecified (check() does not look for duplicates; it only bounds-checks).
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

struct CacheWriteParams {
  const float* k = nullptr;        // [n_tokens, n_kv_heads, head_dim]
  const float* v = nullptr;        // [n_tokens, n_kv_heads, head_dim]
  float* k_cache = nullptr;        // [num_blocks, block_size, n_kv_heads, head_dim]
  float* v_cache = nullptr;        // same layout as k_cache
  const int64_t* slots = nullptr;  // [n_tokens], each in [-1, num_blocks * block_size)
  int64_t n_tokens = 0;
  int64_t num_blocks = 0;
  int block_size = 0, n_kv_heads = 0, head_dim = 0;
  [[nodiscard]] Status check() const;  // also validates every slot's range
};

void CacheWriteRef(const CacheWriteParams& p);
void CacheWriteCpu(const CacheWriteParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void CacheWriteCuda(const CacheWriteParams& p, void* stream);
void CacheWrite(const ExecContext& ctx, const CacheWriteParams& p);

}  // namespace tide
