// Device memory for code that must not see a CUDA header (model/, kv/, engine/, tests).
//
// DeviceBuffer owns one allocation on a device (host memory for kCpu, cudaMalloc for
// kCuda). The free functions move bytes between the host and the ExecContext's device,
// in the context's stream order; on kCpu they are plain memcpy/memset.
//
// Errors: allocation failure is kResourceExhausted (never an abort: the size often comes
// from a user's --gpu-memory-utilization); a device fault raised by earlier kernels
// surfaces from the next call that waits for the device (CopyToHost, Synchronize) as
// kInternal with the CUDA error's name.
#pragma once

#include <cstdint>
#include <string>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // kResourceExhausted when the device cannot supply `bytes`; kUnimplemented for kCuda
  // in a build without CUDA or on a machine without a GPU. bytes == 0 gives an empty
  // buffer (data() == nullptr).
  static Result<DeviceBuffer> Allocate(DeviceKind device, int64_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  [[nodiscard]] void* data() const noexcept { return data_; }
  template <typename T>
  [[nodiscard]] T* as() const noexcept { return static_cast<T*>(data_); }
  [[nodiscard]] int64_t size() const noexcept { return size_; }
  [[nodiscard]] DeviceKind device() const noexcept { return device_; }

 private:
  void Release() noexcept;
  void* data_ = nullptr;
  int64_t size_ = 0;
  DeviceKind device_ = DeviceKind::kCpu;
};

// Host memory that a device can copy into without the host waiting: pinned
// (cudaMallocHost) for kCuda, plain aligned memory for kCpu. Move-only.
class HostBuffer {
 public:
  HostBuffer() = default;
  // kResourceExhausted when the memory cannot be had; kUnimplemented for kCuda without
  // CUDA. bytes == 0 gives an empty buffer.
  static Result<HostBuffer> Allocate(DeviceKind device, int64_t bytes);
  ~HostBuffer();
  HostBuffer(HostBuffer&& o) noexcept;
  HostBuffer& operator=(HostBuffer&& o) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  [[nodiscard]] void* data() const noexcept { return data_; }
  [[nodiscard]] int64_t size() const noexcept { return size_; }

 private:
  void Release() noexcept;
  void* data_ = nullptr;
  int64_t size_ = 0;
  DeviceKind device_ = DeviceKind::kCpu;
};

// True when this build has CUDA and the machine has at least one usable GPU. When it
// returns false, *why (if non-null) says which of the two is missing.
bool CudaAvailable(std::string* why = nullptr);

// Host -> device. `src` may be reused as soon as the call returns.
[[nodiscard]] Status CopyToDevice(const ExecContext& ctx, void* dst, const void* src, int64_t bytes);
// Host -> device for large ranges (weights from a mapped file), through pinned staging
// buffers on CUDA; returns once `src` is no longer read.
[[nodiscard]] Status CopyToDeviceStaged(const ExecContext& ctx, void* dst, const void* src, int64_t bytes);
// Device -> host; waits for the stream, so `dst` is complete on return.
[[nodiscard]] Status CopyToHost(const ExecContext& ctx, void* dst, const void* src, int64_t bytes);
// Device -> host without waiting: queued on the context's stream; `dst` must be a
// HostBuffer's memory. The bytes are there once a DeviceEvent recorded after this call
// has been waited for (device_graph.h). On kCpu a plain memcpy, complete on return.
[[nodiscard]] Status CopyToHostAsync(const ExecContext& ctx, void* dst, const void* src, int64_t bytes);
// Device -> device, in stream order.
[[nodiscard]] Status CopyOnDevice(const ExecContext& ctx, void* dst, const void* src, int64_t bytes);
// `rows` rows of `row_bytes` each, from src (rows src_pitch bytes apart) to dst (dst_pitch).
[[nodiscard]] Status CopyOnDevice2D(const ExecContext& ctx, void* dst, int64_t dst_pitch, const void* src,
                                    int64_t src_pitch, int64_t row_bytes, int64_t rows);
[[nodiscard]] Status FillZero(const ExecContext& ctx, void* dst, int64_t bytes);
// Waits until the context's stream is idle (no-op on kCpu).
[[nodiscard]] Status Synchronize(const ExecContext& ctx);

// Free and total memory of the current CUDA device, in bytes.
[[nodiscard]] Status CudaMemoryInfo(int64_t* free_bytes, int64_t* total_bytes);
// The current CUDA device's name ("NVIDIA H100 80GB HBM3"), "" when none.
std::string CudaDeviceName();

}  // namespace tide
