#include "backend/cuda/blas_lt.h"

#include <algorithm>
#include <atomic>
#include <mutex>

#include "backend/cuda/cuda_api.h"
#include "backend/cuda/cuda_check.h"

namespace tide::cuda {

const BlasLt& GetBlasLt() {
  static BlasLt lt;
  static std::once_flag once;
  std::call_once(once, [] {
    TIDE_CHECK(cublasLtCreate(&lt.handle) == CUBLAS_STATUS_SUCCESS);
    lt.workspace_bytes = size_t{32} << 20;  // what NVIDIA suggests for Hopper
    TIDE_CUDA_CHECK(cudaMalloc(&lt.workspace, lt.workspace_bytes));
  });
  return lt;
}

namespace {
std::atomic<int64_t> g_scratch_generation{0};
}  // namespace

int64_t ScratchGeneration() noexcept { return g_scratch_generation.load(); }

void* Scratch(int64_t bytes, ScratchSlot slot) {
  static void* bufs[static_cast<int>(ScratchSlot::kCount)] = {};
  static int64_t caps[static_cast<int>(ScratchSlot::kCount)] = {};
  void*& buf = bufs[static_cast<int>(slot)];
  int64_t& cap = caps[static_cast<int>(slot)];
  if (bytes > cap) {
    // Freeing waits for the device, so kernels still reading the old buffer finish first.
    if (buf != nullptr) TIDE_CUDA_CHECK(cudaFree(buf));
    cap = std::max(bytes, cap * 2);
    TIDE_CUDA_CHECK(cudaMalloc(&buf, static_cast<size_t>(cap)));
    g_scratch_generation.fetch_add(1);
  }
  return buf;
}

}  // namespace tide::cuda
