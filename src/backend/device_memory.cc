#include "backend/device_memory.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "backend/cuda/cuda_api.h"

namespace tide {

Result<DeviceBuffer> DeviceBuffer::Allocate(DeviceKind device, int64_t bytes) {
  if (bytes < 0) return InvalidArgument("DeviceBuffer: negative size " + std::to_string(bytes));
  DeviceBuffer b;
  b.device_ = device;
  if (bytes == 0) return b;
  switch (device) {
    case DeviceKind::kCpu: {
      // 64-byte alignment: cache lines and any vector width the CPU kernels use.
      const size_t rounded = (static_cast<size_t>(bytes) + 63) / 64 * 64;
      b.data_ = std::aligned_alloc(64, rounded);
      if (b.data_ == nullptr) return ResourceExhausted("cannot allocate " + std::to_string(bytes >> 20) + " MiB of host memory");
      break;
    }
    case DeviceKind::kCuda: {
      std::string why;
      if (!cuda::Available(&why)) return Unimplemented("CUDA device memory: " + why);
      ASSIGN_OR_RETURN(b.data_, cuda::Malloc(bytes));
      break;
    }
  }
  b.size_ = bytes;
  return b;
}

void DeviceBuffer::Release() noexcept {
  if (data_ == nullptr) return;
  if (device_ == DeviceKind::kCpu) {
    std::free(data_);
  } else {
    cuda::Free(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

DeviceBuffer::~DeviceBuffer() { Release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), device_(o.device_) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    device_ = o.device_;
  }
  return *this;
}

Result<HostBuffer> HostBuffer::Allocate(DeviceKind device, int64_t bytes) {
  if (bytes < 0) return InvalidArgument("HostBuffer: negative size " + std::to_string(bytes));
  HostBuffer b;
  b.device_ = device;
  if (bytes == 0) return b;
  if (device == DeviceKind::kCpu) {
    const size_t rounded = (static_cast<size_t>(bytes) + 63) / 64 * 64;
    b.data_ = std::aligned_alloc(64, rounded);
    if (b.data_ == nullptr) return ResourceExhausted("cannot allocate " + std::to_string(bytes >> 20) + " MiB of host memory");
  } else {
    std::string why;
    if (!cuda::Available(&why)) return Unimplemented("pinned host memory: " + why);
    ASSIGN_OR_RETURN(b.data_, cuda::MallocHost(bytes));
  }
  b.size_ = bytes;
  return b;
}

void HostBuffer::Release() noexcept {
  if (data_ == nullptr) return;
  if (device_ == DeviceKind::kCpu) {
    std::free(data_);
  } else {
    cuda::FreeHost(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

HostBuffer::~HostBuffer() { Release(); }

HostBuffer::HostBuffer(HostBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), device_(o.device_) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    device_ = o.device_;
  }
  return *this;
}

bool CudaAvailable(std::string* why) { return cuda::Available(why); }

Status CopyToDevice(const ExecContext& ctx, void* dst, const void* src, int64_t bytes) {
  if (bytes == 0) return OkStatus();
  if (ctx.device == DeviceKind::kCpu) {
    std::memcpy(dst, src, static_cast<size_t>(bytes));
    return OkStatus();
  }
  return cuda::MemcpyH2D(dst, src, bytes, ctx.stream);
}

Status CopyToDeviceStaged(const ExecContext& ctx, void* dst, const void* src, int64_t bytes) {
  if (bytes == 0) return OkStatus();
  if (ctx.device == DeviceKind::kCpu) return CopyToDevice(ctx, dst, src, bytes);
  return cuda::UploadStaged(dst, src, bytes, ctx.stream);
}

Status CopyToHost(const ExecContext& ctx, void* dst, const void* src, int64_t bytes) {
  if (ctx.device == DeviceKind::kCpu) {
    if (bytes > 0) std::memcpy(dst, src, static_cast<size_t>(bytes));
    return OkStatus();
  }
  if (bytes == 0) return cuda::StreamSynchronize(ctx.stream);
  return cuda::MemcpyD2H(dst, src, bytes, ctx.stream);
}

Status CopyToHostAsync(const ExecContext& ctx, void* dst, const void* src, int64_t bytes) {
  if (bytes == 0) return OkStatus();
  if (ctx.device == DeviceKind::kCpu) {
    std::memcpy(dst, src, static_cast<size_t>(bytes));
    return OkStatus();
  }
  return cuda::MemcpyD2HAsync(dst, src, bytes, ctx.stream);
}

Status CopyOnDevice(const ExecContext& ctx, void* dst, const void* src, int64_t bytes) {
  if (bytes == 0) return OkStatus();
  if (ctx.device == DeviceKind::kCpu) {
    std::memmove(dst, src, static_cast<size_t>(bytes));
    return OkStatus();
  }
  return cuda::MemcpyD2D(dst, src, bytes, ctx.stream);
}

Status CopyOnDevice2D(const ExecContext& ctx, void* dst, int64_t dst_pitch, const void* src, int64_t src_pitch,
                      int64_t row_bytes, int64_t rows) {
  if (rows == 0 || row_bytes == 0) return OkStatus();
  if (ctx.device == DeviceKind::kCpu) {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(static_cast<uint8_t*>(dst) + r * dst_pitch, static_cast<const uint8_t*>(src) + r * src_pitch,
                  static_cast<size_t>(row_bytes));
    return OkStatus();
  }
  return cuda::Memcpy2DD2D(dst, dst_pitch, src, src_pitch, row_bytes, rows, ctx.stream);
}

Status FillZero(const ExecContext& ctx, void* dst, int64_t bytes) {
  if (bytes == 0) return OkStatus();
  if (ctx.device == DeviceKind::kCpu) {
    std::memset(dst, 0, static_cast<size_t>(bytes));
    return OkStatus();
  }
  return cuda::Memset0(dst, bytes, ctx.stream);
}

Status Synchronize(const ExecContext& ctx) {
  if (ctx.device == DeviceKind::kCpu) return OkStatus();
  return cuda::StreamSynchronize(ctx.stream);
}

Status CudaMemoryInfo(int64_t* free_bytes, int64_t* total_bytes) { return cuda::MemInfo(free_bytes, total_bytes); }
std::string CudaDeviceName() { return cuda::DeviceName(); }

}  // namespace tide
