// The CUDA runtime calls that backend/device_memory.cc needs, behind a plain header so
// that a build without CUDA links stubs (cuda_api_stub.cc) instead of the real ones
// (cuda_api.cc). Internal to backend/: everything else uses device_memory.h.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace tide::cuda {

bool Available(std::string* why);
Result<void*> Malloc(int64_t bytes);
void Free(void* p) noexcept;
Result<void*> MallocHost(int64_t bytes);  // pinned
void FreeHost(void* p) noexcept;

Status MemcpyH2D(void* dst, const void* src, int64_t bytes, void* stream);
Status MemcpyD2H(void* dst, const void* src, int64_t bytes, void* stream);  // synchronous
// Queued on `stream`, no host wait; dst must be pinned (MallocHost) for that.
Status MemcpyD2HAsync(void* dst, const void* src, int64_t bytes, void* stream);
Status MemcpyD2D(void* dst, const void* src, int64_t bytes, void* stream);
Status Memcpy2DD2D(void* dst, int64_t dpitch, const void* src, int64_t spitch, int64_t width, int64_t rows,
                   void* stream);
// Host -> device for large ranges (weights in an mmap'd file): the bytes go through two
// pinned staging buffers so the CPU fills one while the copy engine drains the other.
// Returns once `src` is no longer needed. One caller at a time (model loading).
Status UploadStaged(void* dst, const void* src, int64_t bytes, void* stream);
Status Memset0(void* dst, int64_t bytes, void* stream);
Status StreamSynchronize(void* stream);
Status MemInfo(int64_t* free_bytes, int64_t* total_bytes);
std::string DeviceName();

// A stream of our own (blocking: ordered with the legacy default stream, so work queued
// there by other code, e.g. KV cache creation, still runs first). CUDA graphs can only be
// captured from such a stream.
Result<void*> StreamCreate();
void StreamDestroy(void* stream) noexcept;
// Stream capture (relaxed mode: the ops call cudaFuncSetAttribute and cuBLASLt's host
// heuristics while launching). CaptureEnd instantiates the graph; on any failure during
// capture it returns the error and the stream is usable again.
Status CaptureBegin(void* stream);
Result<void*> CaptureEnd(void* stream);  // a cudaGraphExec_t
Status GraphLaunch(void* graph_exec, void* stream);
void GraphDestroy(void* graph_exec) noexcept;
// Events (no timing): Record queues a marker on `stream`; Synchronize waits until the
// work queued before it has finished (and returns a remembered launch error first).
Result<void*> EventCreate();
void EventDestroy(void* event) noexcept;
Status EventRecord(void* event, void* stream);
Status EventSynchronize(void* event);
// Bumped each time the ops' scratch (blas_lt.h) is reallocated: work captured before then
// refers to freed memory.
int64_t ScratchGeneration() noexcept;

// Kernel launches cannot return a Status through the void op dispatchers, so a launch
// failure is remembered here (the first one wins) and the next boundary that waits for
// the device (StreamSynchronize, MemcpyD2H) returns it.
void NoteLaunchError(int cuda_error, const char* what) noexcept;

}  // namespace tide::cuda
