// embedding: out[t] = table[tokens[t]] as f32, for a table of any weight dtype.
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace tide {

struct EmbeddingParams {
  const int32_t* tokens = nullptr;  // [n_tokens], each in [0, vocab)
  Tensor table;                     // [vocab, dim]
  float* out = nullptr;             // [n_tokens, dim]
  int64_t n_tokens = 0;
  [[nodiscard]] Status check() const;  // also validates every token id
};

void EmbeddingRef(const EmbeddingParams& p);
void EmbeddingCpu(const EmbeddingParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void EmbeddingCuda(const EmbeddingParams& p, void* stream);
void Embedding(const ExecContext& ctx, const EmbeddingParams& p);

}  // namespace tide
