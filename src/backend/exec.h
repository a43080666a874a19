// ExecContext: where and how an op runs. Model and engine code pass it through to op
// dispatchers and never branch on the device themselves.
#pragma once

namespace tide {

class ThreadPool;

enum class DeviceKind { kCpu, kCuda };

// How the CUDA kernels treat f32 activations on the tensor cores (the CPU ignores it).
// kFast (default): prefill-sized matmuls (bf16 weights, m >= kMatmulBf16MinRows in
// matmul.h) and prefill attention round their f32 inputs to bf16 once and run one
// tensor-core pass with f32 accumulation: the usual bf16-inference error, as in other
// bf16 engines. Decode-sized work stays f32-accurate.
// kExact: f32-accurate everywhere (activations split into three bf16 terms for the
// GEMMs, f32 attention) — for fidelity tests against f32 references.
// kBf16: the bf16 paths wherever they exist (every cuBLASLt-sized matmul, every
// non-decode attention), so that small test models exercise them.
enum class Precision { kFast, kExact, kBf16 };

struct ExecContext {
  DeviceKind device = DeviceKind::kCpu;
  ThreadPool* pool = nullptr;   // CPU: the worker pool (not owned). Null = single thread.
  void* stream = nullptr;       // CUDA: cudaStream_t (not owned); unused on CPU.
  Precision precision = Precision::kFast;  // CUDA only; see Precision
};

}  // namespace tide
