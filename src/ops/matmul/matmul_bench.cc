// matmul_bench: CPU matmul throughput on the Qwen2.5-0.5B MLP shapes, against the
// machine's own limits measured in the same process (bench/machine_limits.h).
//
//   matmul_bench [threads [dtype]]   (default: all cores, every dtype)
//
// Small m is judged by bytes of weight streamed per second against read bandwidth;
// large m by FLOP/s against the f32 FMA peak. Weights rotate through enough copies to
// exceed the last-level cache, so small-m figures are from DRAM as in a real forward
// pass (one layer's MLP weights alone would fit in a large L3 and flatter the numbers).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

struct BenchResult {
  double seconds;  // best time of one call
  double bytes;    // weight bytes one call reads
  double flops;    // 2 m n k
};

BenchResult Bench(ThreadPool& pool, DType dtype, int64_t m, int64_t n, int64_t k) {
  Rng rng(42);
  const uint64_t bytes = DTypeBytes(dtype, static_cast<uint64_t>(n * k));
  const int copies = static_cast<int>(std::max<uint64_t>(1, (kRotateBytes + bytes - 1) / bytes));
  std::vector<uint8_t> w(bytes * static_cast<uint64_t>(copies));
  {
    std::vector<float> row(static_cast<size_t>(k));
    const uint64_t row_bytes = bytes / static_cast<uint64_t>(n);
    for (int64_t j = 0; j < n; ++j) {
      for (auto& v : row) v = rng.Uniform(-0.1f, 0.1f);
      QuantizeRow(dtype, row.data(), w.data() + static_cast<uint64_t>(j) * row_bytes, k);
    }
    for (int c = 1; c < copies; ++c) std::memcpy(w.data() + bytes * static_cast<uint64_t>(c), w.data(), bytes);
  }
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
  // ago and has left the cache. Rounds of >= ~30 ms; the first one only warms up.
  double best = 1e30;
  int calls = 1;
  uint64_t next = 0;
  for (int round = 0; round < 6; ++round) {
    const auto start = Clock::now();
    for (int c = 0; c < calls; ++c) {
      p.w.data = w.data() + bytes * (next++ % static_cast<uint64_t>(copies));
      Matmul(ctx, p);
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count() / calls;
    if (round == 0) {
      calls = std::max(3, static_cast<int>(0.03 / s));
      continue;
    }
    best = std::min(best, s);
  }
  return {best, static_cast<double>(bytes), 2.0 * static_cast<double>(m * n * k)};
}

int Main(int argc, char** argv) {
  ThreadPool pool(argc > 1 ? std::atoi(argv[1]) : 0);
  Result<MachineLimits> limits = MeasureMachineLimits(pool);
  if (!limits.ok()) {
    std::fprintf(stderr, "%s\n", limits.status().ToString().c_str());
    return 1;
  }
  const double bw = limits->mem_read_bytes_per_s;
  const double peak = limits->fma_f32_flops_per_s;
  std::printf("threads %d  read bandwidth %.1f GB/s  f32 FMA peak %.1f GFLOP/s (AVX2)\n\n",
              limits->num_threads, bw / 1e9, peak / 1e9);
  std::printf("%-5s %-18s %5s %10s %9s %7s %10s %7s\n", "dtype", "w [n, k]", "m", "time_us",
              "GB/s", "of_bw", "GFLOP/s", "of_pk");
  struct Case {
    DType dtype;
    int64_t n, k;
    std::vector<int64_t> ms;
  };
  const std::vector<Case> cases = {
      {DType::kBF16, 4864, 896, {1, 8, 32, 512}},  // gate/up proj: in 896, out 4864
      {DType::kBF16, 896, 4864, {1, 8, 32, 512}},  // down proj: in 4864, out 896
      {DType::kF32, 4864, 896, {1, 512}},
      {DType::kF16, 4864, 896, {1, 512}},
      {DType::kQ8_0, 4864, 896, {1, 512}},
      {DType::kQ4_0, 4864, 896, {1, 512}},
  };
  for (const Case& c : cases) {
    if (argc > 2 && DTypeName(c.dtype) != argv[2]) continue;
    for (int64_t m : c.ms) {
      const BenchResult r = Bench(pool, c.dtype, m, c.n, c.k);
      char shape[32];
      std::snprintf(shape, sizeof(shape), "[%lld, %lld]", static_cast<long long>(c.n),
                    static_cast<long long>(c.k));
      std::printf("%-5s %-18s %5lld %10.1f %9.1f %6.0f%% %10.1f %6.0f%%\n",
                  std::string(DTypeName(c.dtype)).c_str(), shape, static_cast<long long>(m),
                  r.seconds * 1e6, r.bytes / r.seconds / 1e9, 100 * r.bytes / r.seconds / bw,
                  r.flops / r.seconds / 1e9, 100 * r.flops / r.seconds / peak);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace tide

int main(int argc, char** argv) { return tide::Main(argc, argv); }
