// KernelTracer without CUDA: every call says so (kernel_trace.h).
#include "backend/cuda/kernel_trace.h"

namespace tide::cuda {

Result<std::unique_ptr<KernelTracer>> KernelTracer::Create() {
  return Unimplemented("kernel tracing needs a CUDA build (configure with -DTIDE_CUDA=ON)");
}
KernelTracer::~KernelTracer() = default;
Status KernelTracer::Start() { return Unimplemented("kernel tracing needs a CUDA build"); }
Result<std::vector<GpuActivity>> KernelTracer::Collect() { return Unimplemented("kernel tracing needs a CUDA build"); }
Status KernelTracer::Stop() { return OkStatus(); }
uint64_t KernelTracer::NowNs() const { return 0; }

}  // namespace tide::cuda
