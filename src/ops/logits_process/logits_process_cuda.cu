// logits_process on CUDA: persistent blocks (at most kBlocks) walk the rows; a row's
// steps run in order with block barriers between them. Biases are added by one thread in
// list order (a repeated id adds in the same order as the host); masked ids in parallel.
// Repetition: a vocab-bit bitmap in shared memory, the thread that sets an id's bit
// applies the penalty (once per id). Presence/frequency: each block owns a slice of the
// workspace with a 16-bit count per vocabulary entry; output ids are counted with
// atomics, then each output position takes its id's count with an atomic AND that also
// clears it: the one thread that sees it non-zero applies the penalty, and the slice is
// zero again for the next row. Each float operation is spelled out as the host build
// compiles ProcessLogits (GCC -O2 with an FMA-capable -march fuses p + f * c into one
// fused multiply-add; nothing else fuses), so every logit is bit-identical to it.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/kernel_util.cuh"
#include "ops/logits_process/logits_process.h"

namespace tide {
namespace {

constexpr int kThreads = 512;
constexpr int kBlocks = 64;
constexpr int kBitmapWords = static_cast<int>(kLogitsProcessCudaMaxVocab / 32);

__device__ __forceinline__ void Range(const int32_t* off, int64_t r, int64_t* lo, int64_t* hi) {
  *lo = off == nullptr ? 0 : off[r];
  *hi = off == nullptr ? 0 : off[r + 1];
}

__global__ void __launch_bounds__(kThreads) LogitsProcessKernel(LogitsProcessParams p, uint32_t* counts) {
  __shared__ uint32_t seen[kBitmapWords];
  const int64_t count_words = (p.vocab + 1) / 2;
  uint32_t* cnt = counts + blockIdx.x * count_words;
  const int32_t vocab = static_cast<int32_t>(p.vocab);
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    float* x = p.logits + r * p.vocab;
    int64_t lo, hi;
    if (threadIdx.x == 0) {
      Range(p.bias_offsets, r, &lo, &hi);
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t id = p.bias_ids[i];
        if (id >= 0 && id < vocab) x[id] = __fadd_rn(x[id], p.bias_values[i]);
      }
    }
    __syncthreads();
    Range(p.masked_offsets, r, &lo, &hi);
    for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
      const int32_t id = p.masked_ids[i];
      if (id >= 0 && id < vocab) x[id] = -INFINITY;
    }
    __syncthreads();
    int64_t plo, phi, olo, ohi;
    Range(p.prompt_offsets, r, &plo, &phi);
    Range(p.output_offsets, r, &olo, &ohi);
    const float rep = p.repetition_penalty == nullptr ? 1.f : p.repetition_penalty[r];
    if (rep != 1.f) {
      for (int i = threadIdx.x; i < (vocab + 31) / 32; i += kThreads) seen[i] = 0;
      __syncthreads();
      const int64_t n_prompt = phi - plo, n = n_prompt + (ohi - olo);
      for (int64_t i = threadIdx.x; i < n; i += kThreads) {
        const int32_t id = i < n_prompt ? p.prompt_ids[plo + i] : p.output_ids[olo + i - n_prompt];
        if (id < 0 || id >= vocab) continue;
        const uint32_t bit = 1u << (id % 32);
        if (atomicOr(&seen[id / 32], bit) & bit) continue;  // another thread has it
        const float v = x[id];
        x[id] = v > 0.f ? __fdiv_rn(v, rep) : __fmul_rn(v, rep);
      }
      __syncthreads();
    }
    const float pres = p.presence_penalty == nullptr ? 0.f : p.presence_penalty[r];
    const float freq = p.frequency_penalty == nullptr ? 0.f : p.frequency_penalty[r];
    if (pres != 0.f || freq != 0.f) {
      for (int64_t i = olo + threadIdx.x; i < ohi; i += kThreads) {
        const int32_t id = p.output_ids[i];
        if (id >= 0 && id < vocab) atomicAdd(&cnt[id / 2], 1u << (16 * (id % 2)));
      }
      __syncthreads();
      for (int64_t i = olo + threadIdx.x; i < ohi; i += kThreads) {
        const int32_t id = p.output_ids[i];
        if (id < 0 || id >= vocab) continue;
        const int shift = 16 * (id % 2);
        const uint32_t c = (atomicAnd(&cnt[id / 2], ~(0xffffu << shift)) >> shift) & 0xffffu;
        if (c == 0) continue;  // taken by another position of the same id
        x[id] = __fsub_rn(x[id], __fmaf_rn(freq, static_cast<float>(c), pres));
      }
      __syncthreads();
    }
  }
}

}  // namespace

size_t LogitsProcessCudaWorkspaceBytes(int64_t rows, int64_t vocab) {
  const int64_t blocks = std::min<int64_t>(std::max<int64_t>(rows, 1), kBlocks);
  return static_cast<size_t>(blocks * ((vocab + 1) / 2) * 4);
}

void LogitsProcessCuda(const LogitsProcessParams& p, void* workspace, size_t workspace_bytes, void* stream) {
  if (p.rows == 0) return;
  if (p.vocab > kLogitsProcessCudaMaxVocab) {
    cuda::NoteLaunchError(static_cast<int>(cudaErrorInvalidValue), "logits_process (vocab over the CUDA limit)");
    return;
  }
  if (workspace == nullptr || workspace_bytes < LogitsProcessCudaWorkspaceBytes(p.rows, p.vocab)) {
    cuda::NoteLaunchError(static_cast<int>(cudaErrorInvalidValue), "logits_process (workspace missing or too small)");
    return;
  }
  const int blocks = static_cast<int>(std::min<int64_t>(p.rows, kBlocks));
  LogitsProcessKernel<<<blocks, kThreads, 0, cuda::AsStream(stream)>>>(p, static_cast<uint32_t*>(workspace));
  TIDE_CUDA_LAUNCHED("logits_process");
}

void LogitsProcessCudaOwnWorkspace(const LogitsProcessParams& p, void* stream) {
  if (p.rows == 0) return;
  static void* buf = nullptr;
  static size_t cap = 0;
  // Sized for kBlocks rows so that only a larger vocabulary grows it.
  const size_t bytes = LogitsProcessCudaWorkspaceBytes(kBlocks, p.vocab);
  if (bytes > cap) {
    if (buf != nullptr) cudaFree(buf);  // waits for the device: earlier launches are done with it
    buf = nullptr;
    cap = 0;
    if (cudaMalloc(&buf, bytes) != cudaSuccess || cudaMemset(buf, 0, bytes) != cudaSuccess) {
      cuda::NoteLaunchError(static_cast<int>(cudaErrorMemoryAllocation), "logits_process (workspace)");
      if (buf != nullptr) cudaFree(buf);
      buf = nullptr;
      return;
    }
    cap = bytes;
  }
  LogitsProcessCuda(p, buf, cap, stream);
}

}  // namespace tide
