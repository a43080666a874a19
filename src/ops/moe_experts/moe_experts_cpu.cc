// moe_experts on the CPU: each expert in id order runs its MLP on the rows routed to it
// (gathered), through the CPU matmul, silu_mul and add kernels, and adds weight * output
// into each row's sum. The matmul is batch-invariant (a row's result does not depend on
// the other rows), so each token's result depends only on its own routing.
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/add/add.h"
#include "ops/matmul/matmul.h"
#include "ops/moe_experts/moe_experts.h"
#include "ops/silu_mul/silu_mul.h"

namespace tide {
namespace {

void Linear(const Tensor& w, const float* x, int64_t m, float* y, ThreadPool* pool) {
  MatmulParams p;
  p.x = x;
  p.w = w;
  p.y = y;
  p.m = m;
  p.n = w.shape[0];
  p.k = w.shape[1];
  MatmulCpu(p, pool);
}

}  // namespace

void MoeExpertsCpu(const MoeExpertsParams& p, ThreadPool* pool) {
  const int64_t t = p.n_tokens, hd = p.hidden, inter = p.inter;
  if (t == 0) return;
  std::memset(p.out, 0, static_cast<size_t>(t * hd) * sizeof(float));
  std::vector<int64_t> rows;
  std::vector<float> row_w, xe, g, u, gu, act, ye;
  for (int e = 0; e < p.n_experts; ++e) {
    rows.clear();
    row_w.clear();
    for (int64_t i = 0; i < t; ++i)
      for (int j = 0; j < p.top_k; ++j)
        if (p.expert_ids[i * p.top_k + j] == e) {
          rows.push_back(i);
          row_w.push_back(p.weights[i * p.top_k + j]);
        }
    if (rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(rows.size());
    const auto sz = [](int64_t v) { return static_cast<size_t>(v); };
    xe.resize(sz(n * hd));
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(xe.data() + r * hd, p.x + rows[sz(r)] * hd, sz(hd) * sizeof(float));
    const MoeExpertWeights& w = p.experts[e];
    g.resize(sz(n * inter));
    u.resize(sz(n * inter));
    gu.resize(sz(n * 2 * inter));
    act.resize(sz(n * inter));
    ye.resize(sz(n * hd));
    Linear(w.gate, xe.data(), n, g.data(), pool);
    Linear(w.up, xe.data(), n, u.data(), pool);
    for (int64_t r = 0; r < n; ++r) {  // rows of [gate | up], as silu_mul reads them
      std::memcpy(gu.data() + r * 2 * inter, g.data() + r * inter, sz(inter) * sizeof(float));
      std::memcpy(gu.data() + r * 2 * inter + inter, u.data() + r * inter, sz(inter) * sizeof(float));
    }
    SiluMulCpu(SiluMulParams{gu.data(), act.data(), n, inter}, pool);
    Linear(w.down, act.data(), n, ye.data(), pool);
    for (int64_t r = 0; r < n; ++r)
      AddCpu(AddParams{ye.data() + r * hd, p.out + rows[sz(r)] * hd, hd, row_w[sz(r)]}, pool);
  }
  if (p.shared_y != nullptr) {
    for (int64_t i = 0; i < t; ++i) {
      const float s = 1.f / (1.f + std::exp(-p.shared_gate[i]));
      AddCpu(AddParams{p.shared_y + i * hd, p.out + i * hd, hd, s}, pool);
    }
  }
}

}  // namespace tide
