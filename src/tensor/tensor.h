// Tensor: a non-owning, row-major, contiguous view (dtype, shape, data). Owners are
// Buffers (backend/) and mapped weight files (formats/); a Tensor never frees memory.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "tensor/dtype.h"

namespace tide {

inline constexpr int kMaxDims = 4;

struct Shape {
  int ndim = 0;
  std::array<int64_t, kMaxDims> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    for (int64_t v : d) dims[static_cast<size_t>(ndim++)] = v;
  }
  [[nodiscard]] int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  [[nodiscard]] int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= dims[static_cast<size_t>(i)];
    return n;
  }
  bool operator==(const Shape& o) const {
    if (ndim != o.ndim) return false;
    for (int i = 0; i < ndim; ++i) if (dims[static_cast<size_t>(i)] != o.dims[static_cast<size_t>(i)]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  [[nodiscard]] std::string ToString() const;  // "[4096, 11008]"
};

struct Tensor {
  DType dtype = DType::kF32;
  Shape shape;
  void* data = nullptr;

  [[nodiscard]] int64_t numel() const { return shape.numel(); }
  [[nodiscard]] uint64_t nbytes() const { return DTypeBytes(dtype, static_cast<uint64_t>(numel())); }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

}  // namespace tide
