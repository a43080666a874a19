// EngineOptions: how an engine is sized and how it batches. Plain values with documented
// defaults, validated once in EngineCore::Create.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "kv/block_pool.h"

namespace tide {

struct EngineOptions {
  // ---- memory
  int64_t kv_cache_bytes = int64_t{1} << 30;  // --kv-cache-memory: K+V storage budget
  int64_t num_kv_blocks = 0;                   // > 0 overrides kv_cache_bytes (tests)
  int block_size = 16;                         // --block-size: tokens per KV block
  bool enable_prefix_caching = true;
  BlockHasher block_hasher = nullptr;          // null = HashBlockTokens (tests inject collisions)
  // ---- batching
  int max_num_seqs = 256;                  // --max-num-seqs: running sequences at once
  int64_t max_num_batched_tokens = 2048;   // --max-num-batched-tokens: tokens per step
  bool enable_chunked_prefill = true;
  int64_t max_model_len = 0;               // --max-model-len; 0 = the model's context
  // --async-scheduling: step n+1 is scheduled and launched before step n's samples are
  // collected (one step queued behind the running one); outputs are identical either
  // way (docs/architecture.md, engine). Off: every step runs to the end before the next.
  // Takes effect only on runners whose Launch is asynchronous (CUDA): on the CPU a
  // queued step would only hold every output back by one step.
  bool async_scheduling = true;
  // ---- admission (Engine::Submit)
  int64_t max_pending_requests = 4096;     // live requests; beyond -> kResourceExhausted
};

// "1024", "512K", "64M", "4G" (binary multiples; K/M/G/T, optional trailing "B"/"iB").
// kInvalidArgument for anything else, zero, or overflow.
Result<int64_t> ParseByteSize(std::string_view text);

}  // namespace tide
