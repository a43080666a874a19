// ExecContext: where and how an op runs. Model and engine code pass it through to op
// dispatchers and never branch on the device themselves.
#pragma once

namespace tide {

class ThreadPool;

enum class DeviceKind { kCpu, kCuda };

struct ExecContext {
  DeviceKind device = DeviceKind::kCpu;
  ThreadPool* pool = nullptr;   // CPU: the worker pool (not owned). Null = single thread.
  void* stream = nullptr;       // CUDA: cudaStream_t (not owned); unused on CPU.
};

}  // namespace tide
