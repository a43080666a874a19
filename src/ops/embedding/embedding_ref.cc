// Decodes each dtype from its documented layout (tensor/dtype.h) element by element,
// independently of DequantizeRow, so the test also checks the row addressing.
#include <cstring>

#include "ops/embedding/embedding.h"

namespace tide {
namespace {

float LoadElement(DType t, const uint8_t* row, int64_t j) {
  switch (t) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, row + 4 * j, 4);
      return f;
    }
    case DType::kF16:
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * j, 2);
      return t == DType::kF16 ? F16ToF32(h) : Bf16ToF32(h);
    }
    case DType::kQ8_0: {
      BlockQ8_0 b;
      std::memcpy(&b, row + sizeof(BlockQ8_0) * static_cast<size_t>(j / kQK8_0), sizeof(b));
      return F16ToF32(b.d) * static_cast<float>(b.qs[j % kQK8_0]);
    }
    case DType::kQ4_0: {
      BlockQ4_0 b;
      std::memcpy(&b, row + sizeof(BlockQ4_0) * static_cast<size_t>(j / kQK4_0), sizeof(b));
      const int i = static_cast<int>(j % kQK4_0);
      const int q = i < kQK4_0 / 2 ? (b.qs[i] & 0x0f) : (b.qs[i - kQK4_0 / 2] >> 4);
      return F16ToF32(b.d) * static_cast<float>(q - 8);
    }
    default:
      return 0.f;  // check() rejects other dtypes
  }
}

}  // namespace

void EmbeddingRef(const EmbeddingParams& p) {
  const int64_t dim = p.table.shape[1];
  const uint64_t row_bytes = DTypeBytes(p.table.dtype, static_cast<uint64_t>(dim));
  const auto* base = static_cast<const uint8_t*>(p.table.data);
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const uint8_t* row = base + static_cast<uint64_t>(p.tokens[t]) * row_bytes;
    for (int64_t j = 0; j < dim; ++j) p.out[t * dim + j] = LoadElement(p.table.dtype, row, j);
  }
}

}  // namespace tide
