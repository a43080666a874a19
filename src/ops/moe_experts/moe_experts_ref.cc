// The reference: each token on its own, every product in f64 from weights dequantised
// with the loaders' DequantizeRow, so its own rounding is far below the kernels'.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "ops/moe_experts/moe_experts.h"

namespace tide {
namespace {

// y[r] = W[r, :] . x for every row r of W [rows, cols], in f64.
void MatVec(const Tensor& w, const double* x, int64_t rows, int64_t cols, std::vector<float>& row, double* y) {
  const uint64_t row_bytes = DTypeBytes(w.dtype, static_cast<uint64_t>(cols));
  row.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(w.dtype, w.as<const uint8_t>() + static_cast<uint64_t>(r) * row_bytes, row.data(), cols);
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += x[c] * static_cast<double>(row[static_cast<size_t>(c)]);
    y[r] = acc;
  }
}

}  // namespace

void MoeExpertsRef(const MoeExpertsParams& p) {
  const auto hd = static_cast<size_t>(p.hidden), in = static_cast<size_t>(p.inter);
  std::vector<double> x(hd), g(in), u(in), h(in), y(hd), acc(hd);
  std::vector<float> row;
  std::vector<std::pair<int32_t, float>> routes;
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    for (size_t c = 0; c < hd; ++c) x[c] = p.x[static_cast<size_t>(t) * hd + c];
    routes.clear();
    for (int j = 0; j < p.top_k; ++j) routes.emplace_back(p.expert_ids[t * p.top_k + j], p.weights[t * p.top_k + j]);
    std::sort(routes.begin(), routes.end());
    std::fill(acc.begin(), acc.end(), 0.0);
    for (const auto& [e, wt] : routes) {
      const MoeExpertWeights& ew = p.experts[e];
      MatVec(ew.gate, x.data(), p.inter, p.hidden, row, g.data());
      MatVec(ew.up, x.data(), p.inter, p.hidden, row, u.data());
      for (size_t i = 0; i < in; ++i) h[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      MatVec(ew.down, h.data(), p.hidden, p.inter, row, y.data());
      for (size_t c = 0; c < hd; ++c) acc[c] += static_cast<double>(wt) * y[c];
    }
    if (p.shared_y != nullptr) {
      const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(p.shared_gate[t])));
      for (size_t c = 0; c < hd; ++c) acc[c] += s * p.shared_y[static_cast<size_t>(t) * hd + c];
    }
    for (size_t c = 0; c < hd; ++c) p.out[static_cast<size_t>(t) * hd + c] = static_cast<float>(acc[c]);
  }
}

}  // namespace tide
