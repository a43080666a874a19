// backend/cuda/cuda_api.h in a build without CUDA: nothing is available, every call
// that would touch a device says so.
#include "backend/cuda/cuda_api.h"
#include "backend/cuda/limits.h"

namespace tide::cuda {
namespace {
Status NotBuilt() { return Unimplemented("tide was built without CUDA (configure with -DTIDE_CUDA=ON)"); }
}  // namespace

void NoteLaunchError(int, const char*) noexcept {}
bool Available(std::string* why) {
  if (why != nullptr) *why = "tide was built without CUDA";
  return false;
}
Result<void*> Malloc(int64_t) { return NotBuilt(); }
void Free(void*) noexcept {}
Result<void*> MallocHost(int64_t) { return NotBuilt(); }
void FreeHost(void*) noexcept {}
Status MemcpyH2D(void*, const void*, int64_t, void*) { return NotBuilt(); }
Status MemcpyD2H(void*, const void*, int64_t, void*) { return NotBuilt(); }
Status MemcpyD2HAsync(void*, const void*, int64_t, void*) { return NotBuilt(); }
Status MemcpyD2D(void*, const void*, int64_t, void*) { return NotBuilt(); }
Status Memcpy2DD2D(void*, int64_t, const void*, int64_t, int64_t, int64_t, void*) { return NotBuilt(); }
Status UploadStaged(void*, const void*, int64_t, void*) { return NotBuilt(); }
Status Memset0(void*, int64_t, void*) { return NotBuilt(); }
Status StreamSynchronize(void*) { return NotBuilt(); }
Status MemInfo(int64_t*, int64_t*) { return NotBuilt(); }
std::string DeviceName() { return ""; }
Result<void*> StreamCreate() { return NotBuilt(); }
void StreamDestroy(void*) noexcept {}
Status CaptureBegin(void*) { return NotBuilt(); }
Result<void*> CaptureEnd(void*) { return NotBuilt(); }
Status GraphLaunch(void*, void*) { return NotBuilt(); }
void GraphDestroy(void*) noexcept {}
Result<void*> EventCreate() { return NotBuilt(); }
void EventDestroy(void*) noexcept {}
Status EventRecord(void*, void*) { return NotBuilt(); }
Status EventSynchronize(void*) { return NotBuilt(); }
int64_t ScratchGeneration() noexcept { return 0; }
Result<GpuLimits> MeasureGpuLimits() { return NotBuilt(); }

}  // namespace tide::cuda
