// Random moe_experts problems and the per-element error bound, shared by the CPU and CUDA
// tests (test-only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "base/rng.h"
#include "ops/moe_experts/moe_experts.h"

namespace tide::moe_experts_test {

// How tokens pick their experts.
enum class Routing {
  kRandom,  // top_k distinct experts uniformly at random
  kSkewed,  // from the first top_k + 2 experts only (most experts get no token)
  kOneSet,  // every token the same experts 0..top_k-1 (top_k 1: all on expert 0)
};

struct Problem {
  int64_t t, hidden, inter;
  int n_experts, top_k;
  DType dtype;
  bool shared;
  std::vector<std::vector<uint8_t>> gate, up, down;  // per expert, in dtype
  std::vector<MoeExpertWeights> experts;             // views of the host bytes
  std::vector<float> x, weights, shared_y, shared_gate;
  std::vector<int32_t> ids;

  Problem(int64_t t_in, int64_t hidden_in, int64_t inter_in, int n_experts_in, int top_k_in, DType dtype_in,
          Routing routing, bool shared_in, uint64_t seed)
      : t(t_in), hidden(hidden_in), inter(inter_in), n_experts(n_experts_in), top_k(top_k_in), dtype(dtype_in),
        shared(shared_in) {
    Rng rng(seed);
    auto matrix = [&](int64_t rows, int64_t cols, float scale) {
      const uint64_t row_bytes = DTypeBytes(dtype, static_cast<uint64_t>(cols));
      std::vector<uint8_t> m(row_bytes * static_cast<uint64_t>(rows));
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; ++r) {
        for (float& v : row) v = rng.Uniform(-scale, scale);
        QuantizeRow(dtype, row.data(), m.data() + static_cast<uint64_t>(r) * row_bytes, cols);
      }
      return m;
    };
    for (int e = 0; e < n_experts; ++e) {
      gate.push_back(matrix(inter, hidden, 0.3f));
      up.push_back(matrix(inter, hidden, 0.3f));
      down.push_back(matrix(hidden, inter, 0.3f));
    }
    for (int e = 0; e < n_experts; ++e) {
      const auto at = static_cast<size_t>(e);
      experts.push_back(MoeExpertWeights{Tensor{dtype, Shape{inter, hidden}, gate[at].data()},
                                         Tensor{dtype, Shape{inter, hidden}, up[at].data()},
                                         Tensor{dtype, Shape{hidden, inter}, down[at].data()}});
    }
    x.resize(static_cast<size_t>(t * hidden));
    for (float& v : x) v = rng.Uniform(-2.f, 2.f);
    const int pool = routing == Routing::kRandom ? n_experts
                     : routing == Routing::kSkewed ? std::min(n_experts, top_k + 2)
                                                   : top_k;
    std::vector<int32_t> order(static_cast<size_t>(pool));
    for (int64_t i = 0; i < t; ++i) {
      std::iota(order.begin(), order.end(), 0);
      for (int j = 0; j < top_k; ++j) {  // partial Fisher-Yates: top_k distinct experts
        const auto pick = static_cast<size_t>(j) + rng.NextU64() % static_cast<uint64_t>(pool - j);
        std::swap(order[static_cast<size_t>(j)], order[pick]);
        ids.push_back(order[static_cast<size_t>(j)]);
        weights.push_back(rng.Uniform(0.05f, 1.f));
      }
    }
    if (shared) {
      shared_y.resize(static_cast<size_t>(t * hidden));
      for (float& v : shared_y) v = rng.Uniform(-3.f, 3.f);
      shared_gate.resize(static_cast<size_t>(t));
      for (float& v : shared_gate) v = rng.Uniform(-4.f, 4.f);
    }
  }

  // Host pointers throughout; callers on a device swap in their copies.
  MoeExpertsParams Params(float* out) const {
    MoeExpertsParams p;
    p.x = x.data();
    p.expert_ids = ids.data();
    p.weights = weights.data();
    p.experts = experts.data();
    p.shared_y = shared ? shared_y.data() : nullptr;
    p.shared_gate = shared ? shared_gate.data() : nullptr;
    p.out = out;
    p.n_tokens = t;
    p.hidden = hidden;
    p.inter = inter;
    p.n_experts = n_experts;
    p.top_k = top_k;
    return p;
  }

  std::string Name() const {
    return "t=" + std::to_string(t) + " E=" + std::to_string(n_experts) + " k=" + std::to_string(top_k) +
           " hidden=" + std::to_string(hidden) + " inter=" + std::to_string(inter) + " " + std::string(DTypeName(dtype)) +
           (shared ? " shared" : "");
  }

  // Per output element, a bound on the f32 kernels' error against the f64 reference,
  // propagated through the stages with the classic gamma_n = n * 2^-24 bound for a sum
  // of n rounded additions (n = the reduction length + 8 covers every kernel's lane
  // chains plus its reduction tree): gate and up rows err by gamma * sum |x||w|; h =
  // silu(g) * u by |silu'(g)| <= 1.1 times g's error times |u|, |silu(g)| times u's, and
  // a few ulps of its own (expf); the down row by sum |down| * h's error plus gamma *
  // sum |down||h|; the combine by the weights times those plus top_k + 2 roundings of
  // each term. A missing or duplicated term errs by about sum / length, far above it.
  // act_rel: a relative error the GEMMs may add to each product on top of that (the CUDA
  // matmul path's cuBLASLt GEMMs: the split terms' tensor-core accumulation, or x
  // rounded to bf16), as act_rel * sum |x||w| per gate/up row and * sum |down||h| per
  // down row.
  std::vector<double> Tolerance(double act_rel = 0) const {
    const double u24 = std::ldexp(1.0, -24);
    const auto hd = static_cast<size_t>(hidden), in = static_cast<size_t>(inter);
    std::vector<double> tol(static_cast<size_t>(t) * hd, 0.0);
    std::vector<float> row;
    auto dq = [&](const std::vector<uint8_t>& m, int64_t r, int64_t cols) {
      row.resize(static_cast<size_t>(cols));
      const uint64_t row_bytes = DTypeBytes(dtype, static_cast<uint64_t>(cols));
      DequantizeRow(dtype, m.data() + static_cast<uint64_t>(r) * row_bytes, row.data(), cols);
      return row;
    };
    std::vector<double> h(in), h_err(in), h_abs(in);
    for (int64_t i = 0; i < t; ++i) {
      double* tl = tol.data() + static_cast<size_t>(i) * hd;
      for (int j = 0; j < top_k; ++j) {
        const auto s = static_cast<size_t>(i * top_k + j);
        const auto e = static_cast<size_t>(ids[s]);
        const double w = std::fabs(weights[s]);
        const double gamma_h = (static_cast<double>(hidden) + 8) * u24 + act_rel;
        for (size_t r = 0; r < in; ++r) {
          double g = 0, g_abs = 0, uu = 0, u_abs = 0;
          const std::vector<float> gr = dq(gate[e], static_cast<int64_t>(r), hidden);
          for (size_t c = 0; c < hd; ++c) {
            g += double{x[static_cast<size_t>(i) * hd + c]} * gr[c];
            g_abs += std::fabs(double{x[static_cast<size_t>(i) * hd + c]} * gr[c]);
          }
          const std::vector<float> ur = dq(up[e], static_cast<int64_t>(r), hidden);
          for (size_t c = 0; c < hd; ++c) {
            uu += double{x[static_cast<size_t>(i) * hd + c]} * ur[c];
            u_abs += std::fabs(double{x[static_cast<size_t>(i) * hd + c]} * ur[c]);
          }
          const double silu = g / (1 + std::exp(-g));
          h[r] = silu * uu;
          h_abs[r] = std::fabs(h[r]);
          h_err[r] = 1.1 * gamma_h * g_abs * std::fabs(uu) + std::fabs(silu) * gamma_h * u_abs + 8 * u24 * h_abs[r];
        }
        const double gamma_d = (static_cast<double>(inter) + 8) * u24 + act_rel;
        for (size_t c = 0; c < hd; ++c) {
          const std::vector<float> dr = dq(down[e], static_cast<int64_t>(c), inter);
          double err = 0, y_abs = 0;
          for (size_t r = 0; r < in; ++r) {
            err += std::fabs(dr[r]) * h_err[r];
            y_abs += std::fabs(dr[r]) * h_abs[r];
          }
          err += gamma_d * y_abs;
          tl[c] += w * (err + (top_k + 3) * u24 * y_abs * 1.01);
        }
      }
      if (shared) {
        for (size_t c = 0; c < hd; ++c) tl[c] += 8 * u24 * std::fabs(shared_y[static_cast<size_t>(i) * hd + c]);
      }
      for (size_t c = 0; c < hd; ++c) tl[c] = 1.5 * tl[c] + 1e-30;
    }
    return tol;
  }
};

inline std::vector<float> Poisoned(size_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

}  // namespace tide::moe_experts_test
