// Process-wide cuBLASLt state and kernel scratch for the CUDA ops (internal to ops/*_cuda.cu).
//
// One handle and one 32 MiB workspace serve every matmul: cuBLASLt handles are costly
// to create and the engine runs one stream. Scratch is device memory that an op may use
// for temporaries within one launch sequence (the matmul's bf16 copies of x); it grows
// on demand and is never shrunk. Both assume one calling thread (the engine thread).
#pragma once

#include <cublasLt.h>

#include <cstddef>
#include <cstdint>

namespace tide::cuda {

struct BlasLt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// CHECK-fails if cuBLASLt cannot start (only called once a CUDA op runs, so a device exists).
const BlasLt& GetBlasLt();

// Independent scratch regions, so that one op can hold several temporaries at once
// (the matmul's split x and its partial products; attention's split partials).
enum class ScratchSlot { kMatmulX = 0, kMatmulY = 1, kAttention = 2, kCount = 3 };

// At least `bytes` of device scratch in `slot`; earlier contents are lost when it grows.
void* Scratch(int64_t bytes, ScratchSlot slot = ScratchSlot::kMatmulX);

}  // namespace tide::cuda
