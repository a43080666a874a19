#include "bench/machine_limits.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace tide {
namespace {

using Clock = std::chrono::steady_clock;

// Results land here so the compiler must compute them.
volatile uint64_t g_sink_u64;
volatile float g_sink_f32;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Sums a slice with 4 independent integer accumulators: integer adds are cheaper than the
// loads they consume, so the loop is bound by how fast memory delivers cache lines.
uint64_t SumSlice(const uint8_t* begin, size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  const auto* p = reinterpret_cast<const __m256i*>(begin);
  const size_t n = bytes / 32;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(p + i + 0));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + i + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + i + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + i + 3));
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(p + i + 4));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + i + 5));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + i + 6));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + i + 7));
  }
  for (; i < n; ++i) a0 = _mm256_add_epi64(a0, _mm256_load_si256(p + i));
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// 12 independent chains: FMA latency (4-5 cycles) x 2 FMA pipes needs >= 10 in flight.
float FmaChains(int64_t iterations, float seed) {
  const __m256 a = _mm256_set1_ps(0.999999f);
  const __m256 b = _mm256_set1_ps(1e-6f);
  __m256 c[12];
  for (int i = 0; i < 12; ++i) c[i] = _mm256_set1_ps(seed + static_cast<float>(i));
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) c[i] = _mm256_fmadd_ps(c[i], a, b);
  }
  __m256 s = c[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, c[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}

}  // namespace

Result<double> MeasureMemReadBandwidth(ThreadPool& pool, size_t buffer_bytes, int runs) {
  const int nt = pool.num_threads();
  // Each thread's slice is a whole number of 4 KiB pages, so slices never share a line.
  const size_t slice = std::max<size_t>(4096, buffer_bytes / static_cast<size_t>(nt) / 4096 * 4096);
  const size_t total = slice * static_cast<size_t>(nt);
  std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, total)));
  if (buf == nullptr) {
    return ResourceExhausted("machine limits: cannot allocate " + std::to_string(total) + " bytes");
  }
  // Each thread first-touches its own slice (pages then sit near the thread that reads
  // them on NUMA machines) with non-zero bytes (zero pages could be shared copy-on-write).
  pool.Run([&](int t, int) { std::memset(buf.get() + slice * static_cast<size_t>(t), t + 1, slice); });

  return MeasureMemReadBandwidthOn(pool, buf.get(), total, runs);
}

double MeasureMemReadBandwidthOn(ThreadPool& pool, const uint8_t* buffer, size_t bytes, int runs) {
  const int nt = pool.num_threads();
  const size_t slice = bytes / static_cast<size_t>(nt);
  const size_t total = slice * static_cast<size_t>(nt);
  double best = 0;
  for (int r = 0; r < std::max(1, runs); ++r) {
    std::vector<uint64_t> sums(static_cast<size_t>(nt));
    const auto start = Clock::now();
    pool.Run([&](int t, int) {
      sums[static_cast<size_t>(t)] = SumSlice(buffer + slice * static_cast<size_t>(t), slice);
    });
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    uint64_t all = 0;
    for (uint64_t v : sums) all += v;
    g_sink_u64 = all;
    best = std::max(best, static_cast<double>(total) / s);
  }
  return best;
}

double MeasureFmaPeak(ThreadPool& pool, int64_t iterations, int runs) {
  const int nt = pool.num_threads();
  double best = 0;
  for (int r = 0; r < std::max(1, runs); ++r) {
    std::vector<float> out(static_cast<size_t>(nt));
    const auto start = Clock::now();
    pool.Run([&](int t, int) { out[static_cast<size_t>(t)] = FmaChains(iterations, static_cast<float>(t)); });
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    float all = 0;
    for (float v : out) all += v;
    g_sink_f32 = all;
    const double flops = static_cast<double>(nt) * static_cast<double>(iterations) * 12 * 8 * 2;
    best = std::max(best, flops / s);
  }
  return best;
}

Result<MachineLimits> MeasureMachineLimits(ThreadPool& pool, const MachineLimitsOptions& options) {
  MachineLimits limits;
  limits.num_threads = pool.num_threads();
  ASSIGN_OR_RETURN(limits.mem_read_bytes_per_s,
                   MeasureMemReadBandwidth(pool, options.buffer_bytes, options.bandwidth_runs));
  limits.fma_f32_flops_per_s = MeasureFmaPeak(pool, options.fma_iterations, options.fma_runs);
  return limits;
}

}  // namespace tide
