#include <cmath>
#include <vector>

#include "ops/attention/attention.h"

namespace tide {

// Per query and head: all scores in f64, a two-pass softmax, the weighted sum of V.
void AttentionRef(const AttentionParams& p) {
  const int group = p.n_heads / p.n_kv_heads;
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
  std::vector<double> score, acc(static_cast<size_t>(p.head_dim));
  for (int s = 0; s < p.n_seqs; ++s) {
    const int32_t* table = p.block_table + static_cast<int64_t>(s) * p.max_blocks_per_seq;
    const int64_t q_len = p.q_start[s + 1] - p.q_start[s];
    for (int64_t j = 0; j < q_len; ++j) {
      const int64_t t = p.q_start[s] + j;
      const int64_t pos = p.kv_len[s] - q_len + j;  // attends to keys [0, pos]
      for (int h = 0; h < p.n_heads; ++h) {
        const int g = h / group;
        const float* q = p.q + (t * p.n_heads + h) * p.head_dim;
        auto slot_of = [&](int64_t kp) {
          return static_cast<int64_t>(table[kp / p.block_size]) * p.block_size + kp % p.block_size;
        };
        score.assign(static_cast<size_t>(pos + 1), 0.0);
        double mx = -INFINITY;
        for (int64_t kp = 0; kp <= pos; ++kp) {
          const float* k = p.k_cache + slot_of(kp) * kv_row + static_cast<int64_t>(g) * p.head_dim;
          double dot = 0;
          for (int d = 0; d < p.head_dim; ++d) dot += static_cast<double>(q[d]) * k[d];
          score[static_cast<size_t>(kp)] = dot * p.scale;
          mx = std::max(mx, score[static_cast<size_t>(kp)]);
        }
        double sum = 0;
        for (double& v : score) sum += v = std::exp(v - mx);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t kp = 0; kp <= pos; ++kp) {
          const float* v = p.v_cache + slot_of(kp) * kv_row + static_cast<int64_t>(g) * p.head_dim;
          for (int d = 0; d < p.head_dim; ++d) acc[static_cast<size_t>(d)] += score[static_cast<size_t>(kp)] * v[d];
        }
        float* o = p.out + (t * p.n_heads + h) * p.head_dim;
        for (int d = 0; d < p.head_dim; ++d) o[d] = static_cast<float>(acc[static_cast<size_t>(d)] / sum);
      }
    }
  }
}

}  // namespace tide
