// The GPU's own ceilings, measured on the spot so that benchmark fractions compare with
// the card in hand (clocks, memory and driver as they are), not with a datasheet.
// Plain C++ (no CUDA header): bench code includes it; a build without CUDA links stubs
// that return kUnimplemented (cuda_api_stub.cc).
#pragma once

#include "base/status.h"

namespace tide::cuda {

struct GpuLimits {
  double read_bytes_per_s = 0;      // a read-only kernel over 4 GiB (bytes read / s)
  double copy_bytes_per_s = 0;      // device-to-device copy of 2 GiB ((read + written) / s)
  double bf16_gemm_flops_per_s = 0; // cuBLASLt bf16 x bf16 -> f32, 8192^3, random data
};

// Medians over several timed repetitions after warm-ups, with CUDA events. Allocates
// about 4.5 GiB of device memory for the duration of the call.
Result<GpuLimits> MeasureGpuLimits();

}  // namespace tide::cuda
