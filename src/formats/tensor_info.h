// TensorInfo: where one named tensor lives inside a mapped weight file.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace tide {

struct TensorInfo {
  std::string name;           // checkpoint name, e.g. "model.layers.0.self_attn.q_proj.weight"
  DType dtype = DType::kF32;
  Shape shape;                // row-major: the last dim is contiguous ([out, in] for Linear)
  const uint8_t* data = nullptr;  // into the file's map; valid while the file object lives
  uint64_t nbytes = 0;        // == DTypeBytes(dtype, shape.numel()), checked at parse time
  std::string file;           // path of the file holding it (for messages)

  [[nodiscard]] Tensor view() const { return Tensor{dtype, shape, const_cast<uint8_t*>(data)}; }
};

}  // namespace tide
