// cuda_decode_bench: the decode step's kernels one by one at Llama-3-8B shapes (bf16
// weights, f32 activations and KV cache), each timed alone over rotating copies of its
// weights (cold in L2, as in the model) and reported as µs and GB/s of bytes that must
// be read. Their sum per step, beside the measured step time of `tide bench forward
// --device cuda`, splits the step into kernel time and everything else (launch gaps,
// host work, copies). Plain C++: reaches the GPU through the op dispatchers.
#include <algorithm>
#include <chrono>
#include <utility>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/device_memory.h"
#include "base/rng.h"
#include "ops/attention/attention.h"
#include "ops/matmul/matmul.h"
#include "ops/rms_norm/rms_norm.h"
#include "ops/sample/sample.h"
#include "ops/silu_mul/silu_mul.h"
#include "tensor/dtype.h"

namespace tide {
namespace {

const ExecContext kCtx{.device = DeviceKind::kCuda};

DeviceBuffer Random(int64_t bytes, uint64_t seed) {
  std::vector<uint16_t> h(static_cast<size_t>(bytes / 2));
  Rng rng(seed);
  for (auto& v : h) v = static_cast<uint16_t>(0x3C00u | (rng.NextU64() & 0x80FFu));  // small bf16/f32 halves, never 0
  DeviceBuffer b = DeviceBuffer::Allocate(DeviceKind::kCuda, bytes).value();
  (void)CopyToDevice(kCtx, b.data(), h.data(), bytes);
  return b;
}

// Seconds per call, averaged over `reps` back-to-back calls after 3 warm-ups.
template <typename F>
double Time(F fn, int reps = 50) {
  for (int i = 0; i < 3; ++i) fn(i);
  (void)Synchronize(kCtx);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn(i);
  (void)Synchronize(kCtx);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

// Decode attention of one layer at Llama-3-8B heads (32/8, head_dim 128, f32 cache in
// 16-token blocks) for m sequences of ctx tokens each, seconds per call. Blocks are
// handed out in order, or shuffled (as a long-running server's pool hands them out).
double TimeAttention(const DeviceBuffer& x, int m, int ctx, bool shuffled) {
  const int64_t q_dim = 4096, kv_dim = 1024;
  const int bs = 16, blocks_per_seq = (ctx + bs - 1) / bs;
  const int64_t num_blocks = int64_t{m} * blocks_per_seq;
  const int64_t cache_bytes = num_blocks * bs * kv_dim * 4;
  DeviceBuffer kc = Random(cache_bytes, 3), vc = Random(cache_bytes, 4), out = Random(int64_t{m} * q_dim * 4, 5);
  std::vector<int32_t> q_start(static_cast<size_t>(m) + 1), kv_len(static_cast<size_t>(m), ctx), table(static_cast<size_t>(num_blocks));
  for (int i = 0; i <= m; ++i) q_start[static_cast<size_t>(i)] = i;
  for (int64_t i = 0; i < num_blocks; ++i) table[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  if (shuffled) {
    Rng rng(6);
    for (int64_t i = num_blocks - 1; i > 0; --i)
      std::swap(table[static_cast<size_t>(i)], table[rng.NextU64() % static_cast<uint64_t>(i + 1)]);
  }
  DeviceBuffer dq = DeviceBuffer::Allocate(DeviceKind::kCuda, 4 * (m + 1)).value();
  DeviceBuffer dk = DeviceBuffer::Allocate(DeviceKind::kCuda, 4 * m).value();
  DeviceBuffer dt = DeviceBuffer::Allocate(DeviceKind::kCuda, 4 * num_blocks).value();
  (void)CopyToDevice(kCtx, dq.data(), q_start.data(), 4 * (m + 1));
  (void)CopyToDevice(kCtx, dk.data(), kv_len.data(), 4 * m);
  (void)CopyToDevice(kCtx, dt.data(), table.data(), 4 * num_blocks);
  AttentionParams ap;
  ap.q = x.as<float>();
  ap.k_cache = kc.as<float>();
  ap.v_cache = vc.as<float>();
  ap.out = out.as<float>();
  ap.q_start = dq.as<int32_t>();
  ap.kv_len = dk.as<int32_t>();
  ap.block_table = dt.as<int32_t>();
  ap.n_seqs = m;
  ap.max_blocks_per_seq = blocks_per_seq;
  ap.n_tokens = m;
  ap.num_blocks = num_blocks;
  ap.n_heads = 32;
  ap.n_kv_heads = 8;
  ap.head_dim = 128;
  ap.block_size = bs;
  ap.scale = 0.088f;
  return Time([&](int) { Attention(kCtx, ap); });
}

// GB/s counts the K and V bytes the step must read (m x ctx rows of 4 KiB, rounded up to
// whole blocks as the cache holds them).
void PrintAttention(int m, int ctx, double s, bool shuffled) {
  const int bs = 16;
  const double kv_bytes = 2.0 * m * ((ctx + bs - 1) / bs) * bs * 1024 * 4;
  char name[32];
  std::snprintf(name, sizeof name, "attn@%d%s", ctx, shuffled ? "s" : "");
  std::printf("%-9s %5d | %9.1f %8.0f\n", name, m, s * 1e6, kv_bytes / s / 1e9);
}

int Main(int argc, char** argv) {
  std::string why;
  if (!CudaAvailable(&why)) {
    std::printf("no GPU: %s\n", why.c_str());
    return 0;
  }
  const int64_t hidden = 4096, inter = 14336, vocab = 128256, q_dim = 4096, kv_dim = 1024;
  struct Mm {
    const char* name;
    int64_t n, k;
    int per_layer;
  };
  // `cuda_decode_bench attn`: decode attention alone (the block tables in order and, for
  // 1k context, shuffled), for comparing attention kernels quickly.
  if (argc > 1 && std::string(argv[1]) == "attn") {
    DeviceBuffer x = Random(int64_t{64} * q_dim * 4, 1);
    std::printf("%-9s %5s | %9s %8s\n", "op", "m", "us", "GB/s");
    for (int m : {1, 8, 32, 64}) {
      for (int ctx : {160, 1040, 4100}) PrintAttention(m, ctx, TimeAttention(x, m, ctx, false), false);
      PrintAttention(m, 1040, TimeAttention(x, m, 1040, true), true);
    }
    const Status st = Synchronize(kCtx);
    if (!st.ok()) {
      std::printf("device error: %s\n", st.ToString().c_str());
      return 1;
    }
    return 0;
  }
  const Mm mms[] = {{"q", q_dim, hidden, 1},   {"k|v", kv_dim, hidden, 2}, {"o", hidden, q_dim, 1},
                    {"gate|up", inter, hidden, 2}, {"down", hidden, inter, 1}, {"lm_head", vocab, hidden, 0}};
  DeviceBuffer x = Random(int64_t{64} * inter * 4, 1), y = Random(int64_t{64} * vocab * 4, 2);
  std::printf("%-9s %5s | %9s %8s\n", "op", "m", "us", "GB/s");
  for (int m : {1, 8, 32, 64}) {
    double layer_s = 0, head_s = 0;
    for (const Mm& mm : mms) {
      const int64_t bytes = mm.n * mm.k * 2;
      const int copies = static_cast<int>(std::max<int64_t>(2, (int64_t{256} << 20) / bytes + 1));
      std::vector<DeviceBuffer> ws;
      for (int c = 0; c < copies; ++c) ws.push_back(Random(bytes, 10 + c));
      const double s = Time([&](int i) {
        MatmulParams p;
        p.x = x.as<float>();
        p.w = Tensor{DType::kBF16, Shape{mm.n, mm.k}, ws[static_cast<size_t>(i % copies)].data()};
        p.y = y.as<float>();
        p.m = m;
        p.n = mm.n;
        p.k = mm.k;
        Matmul(kCtx, p);
      });
      std::printf("%-9s %5d | %9.1f %8.0f\n", mm.name, m, s * 1e6, static_cast<double>(bytes) / s / 1e9);
      if (mm.per_layer > 0) layer_s += mm.per_layer * s;
      else head_s = s;
    }
    for (int ctx : {160, 1040}) {
      const double s = TimeAttention(x, m, ctx, false);
      PrintAttention(m, ctx, s, false);
      if (ctx == 1040) {
        const double norm = Time([&](int) { RmsNorm(kCtx, RmsNormParams{y.as<float>(), x.as<float>(), x.as<float>() + 8 * hidden, y.as<float>() + 8 * hidden, m, hidden, 1e-5f}); });
        std::printf("%-9s %5d | %9.1f\n", "rms_norm", m, norm * 1e6);
        std::printf("=> m=%d: 32 layers x (matmuls %.0f us + attention@1040 %.0f us) + lm_head %.0f us = %.2f ms of "
                    "the kernels that must read memory\n",
                    m, layer_s * 1e6, s * 1e6, head_s * 1e6, (32 * (layer_s + s) + head_s) * 1e3);
      }
    }
  }
  // The stacked projections the model runs on CUDA ([q; k; v] and [gate; up], one
  // launch each) against the separate launches above.
  const Mm stacked[] = {{"qkv", q_dim + 2 * kv_dim, hidden, 1}, {"gate_up", 2 * inter, hidden, 1}};
  for (int m : {1, 8}) {
    for (const Mm& mm : stacked) {
      const int64_t bytes = mm.n * mm.k * 2;
      const int copies = static_cast<int>(std::max<int64_t>(2, (int64_t{256} << 20) / bytes + 1));
      std::vector<DeviceBuffer> ws;
      for (int c = 0; c < copies; ++c) ws.push_back(Random(bytes, 40 + c));
      const double s = Time([&](int i) {
        MatmulParams p;
        p.x = x.as<float>();
        p.w = Tensor{DType::kBF16, Shape{mm.n, mm.k}, ws[static_cast<size_t>(i % copies)].data()};
        p.y = y.as<float>();
        p.m = m;
        p.n = mm.n;
        p.k = mm.k;
        Matmul(kCtx, p);
      });
      std::printf("%-9s %5d | %9.1f %8.0f  (stacked)\n", mm.name, m, s * 1e6, static_cast<double>(bytes) / s / 1e9);
    }
  }
  // The decode fusions the model runs at m <= kMatmulFusedMaxRows: the pre-norm inside
  // qkv and gate_up, the residual add inside o and down, and (not yet in the model)
  // silu_mul inside down, against the separate rms_norm / silu_mul launches they remove.
  {
    DeviceBuffer g = Random(inter * 4, 60), a = Random(int64_t{8} * inter * 4, 61);
    struct Fused {
      const char* name;
      int64_t n, k;
      bool norm, silu, acc;
    };
    const Fused fused[] = {{"qkv+norm", q_dim + 2 * kv_dim, hidden, true, false, false},
                           {"o+add", hidden, q_dim, false, false, true},
                           {"g_u+norm", 2 * inter, hidden, true, false, false},
                           {"down+add", hidden, inter, false, false, true},
                           {"down+s+a", hidden, inter, false, true, true}};
    for (int m : {1, 8}) {
      for (const Fused& f : fused) {
        const int64_t bytes = f.n * f.k * 2;
        const int copies = static_cast<int>(std::max<int64_t>(2, (int64_t{256} << 20) / bytes + 1));
        std::vector<DeviceBuffer> ws;
        for (int c = 0; c < copies; ++c) ws.push_back(Random(bytes, 70 + c));
        const double s = Time([&](int i) {
          MatmulParams p;
          p.x = x.as<float>();
          p.w = Tensor{DType::kBF16, Shape{f.n, f.k}, ws[static_cast<size_t>(i % copies)].data()};
          p.y = y.as<float>();
          p.m = m;
          p.n = f.n;
          p.k = f.k;
          p.norm_weight = f.norm ? g.as<float>() : nullptr;
          p.norm_eps = 1e-5f;
          p.silu_mul = f.silu;
          p.accumulate = f.acc;
          Matmul(kCtx, p);
        });
        std::printf("%-9s %5d | %9.1f %8.0f  (fused)\n", f.name, m, s * 1e6, static_cast<double>(bytes) / s / 1e9);
      }
      const double sm = Time([&](int) { SiluMul(kCtx, SiluMulParams{x.as<float>(), a.as<float>(), m, inter}); });
      std::printf("%-9s %5d | %9.1f\n", "silu_mul", m, sm * 1e6);
    }
  }
  // Greedy on the GPU (argmax, logsumexp, top-k) against copying the logits to the host.
  {
    DeviceBuffer packed = Random(int64_t{64} * (8 + 20 * 8), 50);
    std::vector<float> host(static_cast<size_t>(64 * vocab));
    for (int rows : {1, 64}) {
      for (int k : {0, 5}) {
        auto* b = static_cast<uint8_t*>(packed.data());
        const SampleGreedyParams sp{y.as<float>(), rows, vocab, k, reinterpret_cast<int32_t*>(b),
                                    reinterpret_cast<float*>(b + rows * 4), reinterpret_cast<int32_t*>(b + rows * 8),
                                    reinterpret_cast<float*>(b + rows * 8 + rows * k * 4)};
        const double s = Time([&](int) { SampleGreedy(kCtx, sp); });
        std::printf("%-9s %5d | %9.1f           (top_k %d)\n", "greedy", rows, s * 1e6, k);
      }
      const double c = Time([&](int) { (void)CopyToHost(kCtx, host.data(), y.data(), int64_t{rows} * vocab * 4); }, 20);
      std::printf("%-9s %5d | %9.1f %8.1f  (logits to the host)\n", "d2h", rows, c * 1e6,
                  static_cast<double>(rows) * vocab * 4 / c / 1e9);
    }
  }
  Status st = Synchronize(kCtx);
  if (!st.ok()) {
    std::printf("device error: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace tide

int main(int argc, char** argv) { return tide::Main(argc, argv); }
