// The CUDA runtime behind backend/cuda/cuda_api.h (built when TIDE_CUDA is on).
#include "backend/cuda/cuda_api.h"

#include <atomic>
#include <cstring>
#include <mutex>

#include "backend/cuda/cuda_check.h"

namespace tide::cuda {
namespace {

std::atomic<int> g_launch_error{0};
std::atomic<const char*> g_launch_what{nullptr};

// A launch failure recorded by NoteLaunchError, returned (once) by the next boundary.
Status TakeLaunchError() {
  const int e = g_launch_error.exchange(0);
  if (e == 0) return OkStatus();
  const char* what = g_launch_what.load();
  return ToStatus(static_cast<cudaError_t>(e), what != nullptr ? what : "kernel launch");
}

}  // namespace

void NoteLaunchError(int cuda_error, const char* what) noexcept {
  int expected = 0;
  if (g_launch_error.compare_exchange_strong(expected, cuda_error)) g_launch_what.store(what);
}

bool Available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why != nullptr) {
      *why = e != cudaSuccess ? std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + " (" +
                                    cudaGetErrorString(e) + ")"
                              : "no CUDA device on this machine";
    }
    return false;
  }
  return true;
}

Result<void*> Malloc(int64_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (e != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky; clear it
    return ResourceExhausted("cudaMalloc of " + std::to_string(bytes >> 20) + " MiB failed: " + cudaGetErrorName(e));
  }
  return p;
}

void Free(void* p) noexcept {
  if (p != nullptr) cudaFree(p);
}

Result<void*> MallocHost(int64_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMallocHost(&p, static_cast<size_t>(bytes));
  if (e != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhausted("cudaMallocHost of " + std::to_string(bytes >> 20) + " MiB failed: " + cudaGetErrorName(e));
  }
  return p;
}

void FreeHost(void* p) noexcept {
  if (p != nullptr) cudaFreeHost(p);
}

Status MemcpyH2D(void* dst, const void* src, int64_t bytes, void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, AsStream(stream)));
  return OkStatus();
}

Status MemcpyD2H(void* dst, const void* src, int64_t bytes, void* stream) {
  RETURN_IF_ERROR(TakeLaunchError());
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, AsStream(stream)));
  TIDE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(AsStream(stream)));
  return OkStatus();
}

Status MemcpyD2HAsync(void* dst, const void* src, int64_t bytes, void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, AsStream(stream)));
  return OkStatus();
}

Status MemcpyD2D(void* dst, const void* src, int64_t bytes, void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, AsStream(stream)));
  return OkStatus();
}

Status Memcpy2DD2D(void* dst, int64_t dpitch, const void* src, int64_t spitch, int64_t width, int64_t rows,
                   void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst, static_cast<size_t>(dpitch), src, static_cast<size_t>(spitch),
                                              static_cast<size_t>(width), static_cast<size_t>(rows),
                                              cudaMemcpyDeviceToDevice, AsStream(stream)));
  return OkStatus();
}

Status UploadStaged(void* dst, const void* src, int64_t bytes, void* stream) {
  // Two 32 MiB pinned buffers, made on first use and kept for the process (weights of
  // every model loaded later go through them too).
  constexpr int64_t kChunk = int64_t{32} << 20;
  struct Stage {
    void* host[2] = {nullptr, nullptr};
    cudaEvent_t done[2] = {nullptr, nullptr};
  };
  static Stage stage;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (stage.host[0] == nullptr) {
    for (int i = 0; i < 2; ++i) {
      ASSIGN_OR_RETURN(stage.host[i], MallocHost(kChunk));
      TIDE_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&stage.done[i], cudaEventDisableTiming));
    }
  }
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t off = 0, i = 0; off < bytes; off += kChunk, ++i) {
    const int b = static_cast<int>(i & 1);
    const int64_t n = std::min(kChunk, bytes - off);
    TIDE_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stage.done[b]));  // buffer b drained
    std::memcpy(stage.host[b], s + off, static_cast<size_t>(n));
    TIDE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(d + off, stage.host[b], static_cast<size_t>(n), cudaMemcpyHostToDevice,
                                              AsStream(stream)));
    TIDE_CUDA_RETURN_IF_ERROR(cudaEventRecord(stage.done[b], AsStream(stream)));
  }
  // The caller may unmap `src` next; nothing of it is left in flight, but the staging
  // buffers are, so wait for both before the next user refills them.
  for (int b = 0; b < 2; ++b) TIDE_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stage.done[b]));
  return OkStatus();
}

Status Memset0(void* dst, int64_t bytes, void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dst, 0, static_cast<size_t>(bytes), AsStream(stream)));
  return OkStatus();
}

Status StreamSynchronize(void* stream) {
  RETURN_IF_ERROR(TakeLaunchError());
  TIDE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(AsStream(stream)));
  return OkStatus();
}

Status MemInfo(int64_t* free_bytes, int64_t* total_bytes) {
  size_t f = 0, t = 0;
  TIDE_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&f, &t));
  *free_bytes = static_cast<int64_t>(f);
  *total_bytes = static_cast<int64_t>(t);
  return OkStatus();
}

Result<void*> StreamCreate() {
  cudaStream_t s = nullptr;
  TIDE_CUDA_RETURN_IF_ERROR(cudaStreamCreate(&s));
  return static_cast<void*>(s);
}

void StreamDestroy(void* stream) noexcept {
  if (stream != nullptr) cudaStreamDestroy(AsStream(stream));
}

Status CaptureBegin(void* stream) {
  RETURN_IF_ERROR(TakeLaunchError());
  TIDE_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(AsStream(stream), cudaStreamCaptureModeRelaxed));
  return OkStatus();
}

Result<void*> CaptureEnd(void* stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(AsStream(stream), &graph);
  // A launch that failed while capturing is an error of the capture, not of a later step.
  Status launched = TakeLaunchError();
  if (end != cudaSuccess || !launched.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (!launched.ok()) return launched;
    return ToStatus(end, "cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (inst != cudaSuccess) {
    cudaGetLastError();
    return ToStatus(inst, "cudaGraphInstantiate");
  }
  return static_cast<void*>(exec);
}

Status GraphLaunch(void* graph_exec, void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), AsStream(stream)));
  return OkStatus();
}

void GraphDestroy(void* graph_exec) noexcept {
  if (graph_exec != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec));
}

Result<void*> EventCreate() {
  cudaEvent_t e = nullptr;
  TIDE_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return static_cast<void*>(e);
}

void EventDestroy(void* event) noexcept {
  if (event != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

Status EventRecord(void* event, void* stream) {
  TIDE_CUDA_RETURN_IF_ERROR(cudaEventRecord(static_cast<cudaEvent_t>(event), AsStream(stream)));
  return OkStatus();
}

Status EventSynchronize(void* event) {
  RETURN_IF_ERROR(TakeLaunchError());
  TIDE_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
  return OkStatus();
}

std::string DeviceName() {
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

}  // namespace tide::cuda
