// Machine-limit probes: the two roofs a CPU kernel is judged against, measured in the
// same process and with the same thread pool the kernels use, so "fraction of the
// limit" compares like with like (same cores, same clock and turbo state, same ISA).
//
// - memory read bandwidth: all threads stream disjoint slices of a buffer much larger
//   than the last-level cache with AVX2 loads (summed, so nothing is optimised away);
// - f32 FMA peak: all threads run independent ymm FMA chains held in registers, enough
//   of them to cover FMA latency on both FMA pipes (AVX2 only: the kernels are built for
//   x86-64-v3, so an AVX-512 peak would not be a roof they could reach).
//
// Each figure is the best of several runs (noise from other processes only ever makes a
// run slower). Thread-safety: uses the whole pool; call from the pool's owning thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/thread_pool.h"
#include "base/status.h"

namespace tide {

struct MachineLimits {
  double mem_read_bytes_per_s = 0;  // whole machine (all pool threads), bytes/s
  double fma_f32_flops_per_s = 0;   // whole machine, FLOP/s (an FMA counts 2)
  int num_threads = 0;
};

struct MachineLimitsOptions {
  // Read-bandwidth buffer; should be several times the last-level cache.
  size_t buffer_bytes = size_t{1} << 30;
  int bandwidth_runs = 5;
  // FMA loop iterations per thread per run (each iteration = 12 ymm FMAs = 192 FLOP).
  int64_t fma_iterations = 20'000'000;
  int fma_runs = 5;
};

// kResourceExhausted when the buffer cannot be allocated; nothing is left allocated.
[[nodiscard]] Result<double> MeasureMemReadBandwidth(ThreadPool& pool, size_t buffer_bytes, int runs);
// The same on a caller's buffer (already written, 4 KiB aligned, bytes a multiple of
// 4 KiB * threads), for repeated probes without re-allocating and first-touching it.
[[nodiscard]] double MeasureMemReadBandwidthOn(ThreadPool& pool, const uint8_t* buffer, size_t bytes,
                                               int runs);
[[nodiscard]] double MeasureFmaPeak(ThreadPool& pool, int64_t iterations, int runs);
[[nodiscard]] Result<MachineLimits> MeasureMachineLimits(ThreadPool& pool,
                                                         const MachineLimitsOptions& options = {});

}  // namespace tide
