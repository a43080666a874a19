// A kernel of known duration for kernel_trace_test.cc (which includes no CUDA header).
#include <cuda_runtime.h>

#include <cstdint>

namespace tide::testing {
namespace {

// One thread spins on the GPU's nanosecond timer, so the kernel lasts `ns` (plus the
// timer's granularity, about a microsecond) whatever the clocks are.
__global__ void SpinKernel(uint64_t ns) {
  uint64_t start = 0, now = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

}  // namespace

bool LaunchSpinKernel(void* stream, uint64_t ns) {
  SpinKernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(ns);
  return cudaGetLastError() == cudaSuccess;
}

}  // namespace tide::testing
