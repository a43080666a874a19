#include "tensor/tensor.h"

namespace tide {

std::string Shape::ToString() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[static_cast<size_t>(i)]);
  }
  return s + "]";
}

}  // namespace tide
