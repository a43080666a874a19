#include "ops/embedding/embedding.h"

#include <string>

#include "base/check.h"

namespace tide {

Status EmbeddingParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("embedding: " + what); };
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + std::to_string(n_tokens));
  if (table.shape.ndim != 2) return bad("table must be 2-D [vocab, dim], got " + table.shape.ToString());
  const int64_t vocab = table.shape[0], dim = table.shape[1];
  if (vocab <= 0 || dim <= 0) return bad("table shape must be positive, got " + table.shape.ToString());
  switch (table.dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
      break;
    default:
      return bad("table dtype " + std::string(DTypeName(table.dtype)) + " is not a weight type");
  }
  const int block = GetDTypeInfo(table.dtype).block_elems;
  if (dim % block != 0) {
    return bad("table dim " + std::to_string(dim) + " is not a multiple of the " +
               std::string(DTypeName(table.dtype)) + " block (" + std::to_string(block) + ")");
  }
  if (table.data == nullptr) return bad("table.data is null");
  if (n_tokens == 0) return OkStatus();
  if (tokens == nullptr) return bad("tokens is null");
  if (out == nullptr) return bad("out is null");
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (tokens[t] < 0 || tokens[t] >= vocab) {
      return bad("tokens[" + std::to_string(t) + "] = " + std::to_string(tokens[t]) +
                 " is outside [0, " + std::to_string(vocab) + ")");
    }
  }
  return OkStatus();
}

void Embedding(const ExecContext& ctx, const EmbeddingParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      EmbeddingCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      EmbeddingCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "embedding: no kernel for this device");
}

}  // namespace tide
