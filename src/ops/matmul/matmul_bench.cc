// matmul_bench: CPU matmul throughput on the Qwen2.5-0.5B MLP shapes, against the
// machine's own limits measured in the same process (bench/machine_limits.h).
//
//   matmul_bench [threads [dtype|all [repeats]]]   (default: all cores, all, 3)
//
// Small m is judged by bytes of weight streamed per second against read bandwidth;
// large m by FLOP/s against the f32 FMA peak. Weights rotate through enough copies to
// exceed the last-level cache, so small-m figures are from DRAM as in a real forward
// pass (one layer's MLP weights alone would fit in a large L3 and flatter the numbers).
// Figures are the best of `repeats` passes, and each fraction pairs a timing with probes
// taken just before it; on a shared machine they are still noisy.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "base/rng.h"
#include "bench/machine_limits.h"
#include "ops/matmul/matmul.h"

namespace tide {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kRotateBytes = uint64_t{512} << 20;

struct Case {
  DType dtype;
  int64_t n, k;
  std::vector<int64_t> ms;
};

// Weights for one case: enough identical copies of a random [n, k] matrix to rotate
// through kRotateBytes.
struct Weights {
  uint64_t bytes = 0;  // one copy
  int copies = 0;
  std::vector<uint8_t> data;

  Weights(DType dtype, int64_t n, int64_t k) {
    Rng rng(42);
    bytes = DTypeBytes(dtype, static_cast<uint64_t>(n * k));
    copies = static_cast<int>(std::max<uint64_t>(1, (kRotateBytes + bytes - 1) / bytes));
    data.resize(bytes * static_cast<uint64_t>(copies));
    std::vector<float> row(static_cast<size_t>(k));
    const uint64_t row_bytes = bytes / static_cast<uint64_t>(n);
    for (int64_t j = 0; j < n; ++j) {
      for (auto& v : row) v = rng.Uniform(-0.1f, 0.1f);
      QuantizeRow(dtype, row.data(), data.data() + static_cast<uint64_t>(j) * row_bytes, k);
    }
    for (int c = 1; c < copies; ++c) std::memcpy(data.data() + bytes * static_cast<uint64_t>(c), data.data(), bytes);
  }
};

// Best seconds per call over timed rounds of >= ~30 ms (the first round only warms up).
double TimeCall(ThreadPool& pool, const Weights& w, DType dtype, int64_t m, int64_t n, int64_t k) {
  Rng rng(7);
  std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n));
  for (auto& v : x) v = rng.Uniform(-1.f, 1.f);
  MatmulParams p;
  p.x = x.data();
  p.y = y.data();
  p.m = m;
  p.n = n;
  p.k = k;
  p.w.dtype = dtype;
  p.w.shape = Shape{n, k};
  ExecContext ctx{DeviceKind::kCpu, &pool, nullptr};
  // Each call reads the next copy, so a copy was last touched kRotateBytes of traffic
  // ago and has left the cache.
  double best = 1e30;
  int calls = 1;
  uint64_t next = 0;
  for (int round = 0; round < 6; ++round) {
    const auto start = Clock::now();
    for (int c = 0; c < calls; ++c) {
      p.w.data = const_cast<uint8_t*>(w.data.data()) + w.bytes * (next++ % static_cast<uint64_t>(w.copies));
      Matmul(ctx, p);
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count() / calls;
    if (round == 0) {
      calls = std::max(3, static_cast<int>(0.03 / s));
      continue;
    }
    best = std::min(best, s);
  }
  return best;
}

int Main(int argc, char** argv) {
  ThreadPool pool(argc > 1 ? std::atoi(argv[1]) : 0);
  const char* only = argc > 2 && std::strcmp(argv[2], "all") != 0 ? argv[2] : nullptr;
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
  const std::vector<Case> cases = {
      {DType::kBF16, 4864, 896, {1, 8, 32, 512}},  // gate/up proj: in 896, out 4864
      {DType::kBF16, 896, 4864, {1, 8, 32, 512}},  // down proj: in 4864, out 896
      {DType::kF32, 4864, 896, {1, 8, 512}},
      {DType::kF16, 4864, 896, {1, 8, 512}},
      {DType::kQ8_0, 4864, 896, {1, 8, 512}},
      {DType::kQ4_0, 4864, 896, {1, 8, 512}},
  };

  // Everything is measured `repeats` times and the best kept: on a shared machine other
  // load only ever makes a figure worse. Each fraction compares a kernel timing with probes
  // taken right before it (same load), and the best such pair is reported; the absolute
  // figures are the best seen.
  constexpr size_t kProbeBytes = size_t{256} << 20;
  std::unique_ptr<uint8_t, decltype(&std::free)> probe(
      static_cast<uint8_t*>(std::aligned_alloc(4096, kProbeBytes)), &std::free);
  if (probe == nullptr) {
    std::fprintf(stderr, "cannot allocate the probe buffer\n");
    return 1;
  }
  std::memset(probe.get(), 1, kProbeBytes);
  struct Figures {
    double seconds = 1e30, of_bw = 0, of_peak = 0;
  };
  double bw = 0, peak = 0;
  std::vector<std::vector<Figures>> best(cases.size());
  for (int rep = 0; rep < repeats; ++rep) {
    Result<MachineLimits> limits = MeasureMachineLimits(pool);
    if (!limits.ok()) {
      std::fprintf(stderr, "%s\n", limits.status().ToString().c_str());
      return 1;
    }
    std::printf("repeat %d: read bandwidth %.1f GB/s, f32 FMA peak %.1f GFLOP/s\n", rep,
                limits->mem_read_bytes_per_s / 1e9, limits->fma_f32_flops_per_s / 1e9);
    std::fflush(stdout);
    bw = std::max(bw, limits->mem_read_bytes_per_s);
    peak = std::max(peak, limits->fma_f32_flops_per_s);
    for (size_t ci = 0; ci < cases.size(); ++ci) {
      const Case& c = cases[ci];
      if (only != nullptr && DTypeName(c.dtype) != only) continue;
      best[ci].resize(c.ms.size());
      const Weights w(c.dtype, c.n, c.k);
      const double bytes = static_cast<double>(w.bytes);
      for (size_t mi = 0; mi < c.ms.size(); ++mi) {
        const double flops = 2.0 * static_cast<double>(c.ms[mi] * c.n * c.k);
        const double bw_now = MeasureMemReadBandwidthOn(pool, probe.get(), kProbeBytes, 5);
        const double peak_now = MeasureFmaPeak(pool, 2'000'000, 5);
        const double s = TimeCall(pool, w, c.dtype, c.ms[mi], c.n, c.k);
        Figures& f = best[ci][mi];
        f.seconds = std::min(f.seconds, s);
        f.of_bw = std::max(f.of_bw, bytes / s / bw_now);
        f.of_peak = std::max(f.of_peak, flops / s / peak_now);
      }
    }
  }

  std::printf("\nthreads %d  best probes: read bandwidth %.1f GB/s, f32 FMA peak %.1f GFLOP/s (AVX2)\n",
              pool.num_threads(), bw / 1e9, peak / 1e9);
  std::printf("of_bw / of_pk: against probes taken just before the timing (best pair)\n\n");
  std::printf("%-5s %-14s %5s %10s %8s %6s %9s %6s\n", "dtype", "w [n, k]", "m", "time_us",
              "GB/s", "of_bw", "GFLOP/s", "of_pk");
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    for (size_t mi = 0; mi < best[ci].size(); ++mi) {
      const Figures& f = best[ci][mi];
      const double bytes = static_cast<double>(DTypeBytes(c.dtype, static_cast<uint64_t>(c.n * c.k)));
      const double flops = 2.0 * static_cast<double>(c.ms[mi] * c.n * c.k);
      char shape[32];
      std::snprintf(shape, sizeof(shape), "[%lld, %lld]", static_cast<long long>(c.n),
                    static_cast<long long>(c.k));
      std::printf("%-5s %-14s %5lld %10.1f %8.1f %5.0f%% %9.1f %5.0f%%\n",
                  std::string(DTypeName(c.dtype)).c_str(), shape, static_cast<long long>(c.ms[mi]),
                  f.seconds * 1e6, bytes / f.seconds / 1e9, 100 * f.of_bw, flops / f.seconds / 1e9,
                  100 * f.of_peak);
    }
  }
  return 0;
}

}  // namespace
}  // namespace tide

int main(int argc, char** argv) { return tide::Main(argc, argv); }
