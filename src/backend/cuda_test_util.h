// Helpers for the cuda-labelled tests (plain C++: tests never include CUDA headers).
//   TIDE_REQUIRE_CUDA();                 skips the test, printing why, without a GPU
//   DeviceBuffer d = Upload(host_vec);   copies a vector to a fresh device buffer
//   std::vector<T> h = Download<T>(d, n) copies n elements back
// Failures to allocate or copy are test failures (ADD_FAILURE), not aborts.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "backend/device_memory.h"

namespace tide::testing {

inline ExecContext CudaCtx() { return ExecContext{.device = DeviceKind::kCuda}; }

#define TIDE_REQUIRE_CUDA()                                                     \
  do {                                                                          \
    std::string _tide_why;                                                      \
    if (!::tide::CudaAvailable(&_tide_why)) {                                   \
      std::printf("skipping: %s\n", _tide_why.c_str());                         \
      GTEST_SKIP() << "no usable CUDA device: " << _tide_why;                   \
    }                                                                           \
  } while (0)

template <typename T>
DeviceBuffer Upload(const std::vector<T>& v) {
  auto b = DeviceBuffer::Allocate(DeviceKind::kCuda, static_cast<int64_t>(v.size() * sizeof(T)));
  if (!b.ok()) {
    ADD_FAILURE() << b.status().ToString();
    return DeviceBuffer();
  }
  Status s = CopyToDevice(CudaCtx(), b->data(), v.data(), static_cast<int64_t>(v.size() * sizeof(T)));
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  return std::move(*b);
}

template <typename T>
std::vector<T> Download(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  Status s = CopyToHost(CudaCtx(), v.data(), b.data(), static_cast<int64_t>(n * sizeof(T)));
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  return v;
}

}  // namespace tide::testing
