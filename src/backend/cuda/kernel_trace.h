// KernelTracer: records the start and end of every kernel, memcpy and memset the GPU
// runs while tracing is on (CUPTI's Activity API: concurrent kernels, memcpy, memset;
// kernels replayed from CUDA graphs included), on the clock NowNs() reads, so host-side
// step windows can be laid over them (backend/step_overhead.h).
//
// libcupti is loaded at run time (dlopen: libcupti.so, libcupti.so.13, then next to the
// CUDA runtime, /usr/local/cuda/lib64 and extras/CUPTI/lib64), so tide has no link-time
// dependency on it. Plain C++ (no CUDA header); a build without CUDA gets stubs that
// return kUnimplemented (kernel_trace_stub.cc).
//
// CUPTI is process-wide: one tracer may be started at a time. Enable it once and leave
// it on for the whole stretch you measure (Collect as often as needed): some CUPTI
// versions stop recording graph replays after an enable/disable cycle.
//
// Thread-safety: one thread calls a tracer's methods; the GPU's records arrive on
// CUPTI's own threads and are queued under a lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/step_overhead.h"
#include "base/status.h"

namespace tide::cuda {

class KernelTracer {
 public:
  // Loads libcupti (once per process). kUnimplemented without CUDA; kNotFound, naming
  // every path tried, when no libcupti loads; kFailedPrecondition when it lacks an
  // entry point.
  static Result<std::unique_ptr<KernelTracer>> Create();
  ~KernelTracer();  // stops tracing if on
  KernelTracer(const KernelTracer&) = delete;
  KernelTracer& operator=(const KernelTracer&) = delete;

  // Turns recording on. kFailedPrecondition when another tracer is on; the CUPTI
  // error (kInternal) when an activity kind cannot be enabled (nothing stays enabled).
  [[nodiscard]] Status Start();
  // Waits for the device, then hands over every record completed since Start or the
  // previous Collect, in no particular order. kDataLoss when CUPTI dropped records or
  // some came without timestamps (the figures would undercount busy time).
  [[nodiscard]] Result<std::vector<GpuActivity>> Collect();
  // Turns recording off (records not yet collected are discarded).
  [[nodiscard]] Status Stop();

  // Now, on the records' clock (ns).
  [[nodiscard]] uint64_t NowNs() const;
  // "PATH (CUPTI api version N)" of the library that loaded.
  [[nodiscard]] const std::string& library() const { return library_; }

 private:
  KernelTracer() = default;
  std::string library_;
  bool started_ = false;
};

}  // namespace tide::cuda
