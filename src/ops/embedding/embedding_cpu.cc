#include "backend/cpu/thread_pool.h"
#include "ops/embedding/embedding.h"

namespace tide {
namespace {

void LookupTokens(const EmbeddingParams& p, int64_t begin, int64_t end) {
  const int64_t dim = p.table.shape[1];
  const uint64_t row_bytes = DTypeBytes(p.table.dtype, static_cast<uint64_t>(dim));
  const auto* base = static_cast<const uint8_t*>(p.table.data);
  for (int64_t t = begin; t < end; ++t) {
    DequantizeRow(p.table.dtype, base + static_cast<uint64_t>(p.tokens[t]) * row_bytes, p.out + t * dim, dim);
  }
}

// Decode batches (a few rows) stay on one thread; prefill spreads over the pool.
constexpr int64_t kGrainElems = 1 << 15;

}  // namespace

void EmbeddingCpu(const EmbeddingParams& p, ThreadPool* pool) {
  if (pool == nullptr) {
    LookupTokens(p, 0, p.n_tokens);
    return;
  }
  const int64_t dim = p.table.shape[1];
  const int64_t grain = (kGrainElems + dim - 1) / dim;
  pool->ParallelFor(p.n_tokens, grain, [&](int64_t b, int64_t e) { LookupTokens(p, b, e); });
}

}  // namespace tide
