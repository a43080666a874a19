// CPU paged attention: one work item = (query token, KV head); its query heads share
// every K/V row load. Keys are visited in tiles of kKeyTile consecutive positions,
// aligned to position 0, with the online softmax (running max m, running sum l,
// accumulator rescaled by e^(m_old - m_new) when the max grows).
//
// Batch-invariance: every arithmetic step of a (query, head) depends only on that
// query's position, its sequence's block table and the data; tiles are aligned to
// absolute positions and reductions run in a fixed order over head_dim. Neither the
// other sequences, nor the chunking of the prefill, nor the thread that runs the item,
// nor the number of threads changes a bit of the output.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "backend/cpu/thread_pool.h"
#include "ops/attention/attention.h"

namespace tide {
namespace {

constexpr int kKeyTile = 32;   // keys per softmax tile
constexpr int kHeadTile = 8;   // query heads per pass over the keys

// e^x for 8 floats, ~2 ulp, for x <= 0 (softmax arguments): x = n ln2 + r, degree-6
// polynomial for e^r, 2^n in the exponent bits; below -87 the result is flushed to 0.
// NaN propagates (a NaN in K must poison the output, not vanish).
inline __m256 ExpNonPositive8(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.f), _CMP_NLT_UQ);  // x >= -87 or NaN
  x = _mm256_max_ps(_mm256_set1_ps(-87.f), x);  // MAXPS returns its second operand on NaN
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

inline float HorizontalMax(__m256 v) {
  const __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
}

// q·k for four keys at once (the q loads are shared). Each key's sum has the same order
// as Dot1 below — one 8-lane FMA chain over head_dim, a fixed horizontal sum, then the
// scalar tail — so a score never depends on which keys it was grouped with.
inline void Dot4(const float* q, const float* const* k, int n, float* out) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int d = 0;
  for (; d + 8 <= n; d += 8) {
    const __m256 vq = _mm256_loadu_ps(q + d);
    s0 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(k[0] + d), s0);
    s1 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(k[1] + d), s1);
    s2 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(k[2] + d), s2);
    s3 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(k[3] + d), s3);
  }
  float r[4] = {HorizontalSum(s0), HorizontalSum(s1), HorizontalSum(s2), HorizontalSum(s3)};
  for (; d < n; ++d) {
    for (int j = 0; j < 4; ++j) r[j] += q[d] * k[j][d];
  }
  for (int j = 0; j < 4; ++j) out[j] = r[j];
}

inline float Dot1(const float* q, const float* k, int n) {
  __m256 s0 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= n; d += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), s0);
  float r = HorizontalSum(s0);
  for (; d < n; ++d) r += q[d] * k[d];
  return r;
}

// acc = acc * alpha (skipped when alpha == 1, the common case once the max settles).
inline void Scale(float* acc, float alpha, int n) {
  if (alpha == 1.f) return;
  const __m256 va = _mm256_set1_ps(alpha);
  int d = 0;
  for (; d + 8 <= n; d += 8) _mm256_storeu_ps(acc + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), va));
  for (; d < n; ++d) acc[d] *= alpha;
}

// acc[d0, d0 + 8·NV) += sum over keys j of prob[j] * v_rows[j][...], keeping the NV
// accumulator vectors in registers across the whole key tile. Per element this is the
// same FMA sequence in key order as a plain loop, only without reloading acc.
template <int NV>
inline void AccumulateV(float* acc, const float* const* v_rows, const float* prob, int nk, int d0) {
  __m256 a[NV];
  for (int c = 0; c < NV; ++c) a[c] = _mm256_loadu_ps(acc + d0 + 8 * c);
  for (int j = 0; j < nk; ++j) {
    const __m256 w = _mm256_set1_ps(prob[j]);
    const float* v = v_rows[j] + d0;
    for (int c = 0; c < NV; ++c) a[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8 * c), a[c]);
  }
  for (int c = 0; c < NV; ++c) _mm256_storeu_ps(acc + d0 + 8 * c, a[c]);
}

void AccumulateTile(float* acc, const float* const* v_rows, const float* prob, int nk, int hd) {
  int d0 = 0;
  for (; d0 + 64 <= hd; d0 += 64) AccumulateV<8>(acc, v_rows, prob, nk, d0);
  switch ((hd - d0) / 8) {
    case 7: AccumulateV<7>(acc, v_rows, prob, nk, d0); break;
    case 6: AccumulateV<6>(acc, v_rows, prob, nk, d0); break;
    case 5: AccumulateV<5>(acc, v_rows, prob, nk, d0); break;
    case 4: AccumulateV<4>(acc, v_rows, prob, nk, d0); break;
    case 3: AccumulateV<3>(acc, v_rows, prob, nk, d0); break;
    case 2: AccumulateV<2>(acc, v_rows, prob, nk, d0); break;
    case 1: AccumulateV<1>(acc, v_rows, prob, nk, d0); break;
    default: break;
  }
  for (int d = hd / 8 * 8; d < hd; ++d) {
    float a = acc[d];
    for (int j = 0; j < nk; ++j) a += prob[j] * v_rows[j][d];
    acc[d] = a;
  }
}

struct Item {
  int64_t token;    // row of q / out
  int64_t n_keys;   // keys [0, n_keys) are visible (position + 1)
  const int32_t* table;
  int kv_head;
};

// Query heads [h0, h0 + nh) of one item (all reading KV head item.kv_head).
void AttendHeads(const AttentionParams& p, const Item& item, int h0, int nh) {
  const int hd = p.head_dim;
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * hd;
  const int64_t kv_off = static_cast<int64_t>(item.kv_head) * hd;
  const float* q[kHeadTile];
  for (int i = 0; i < nh; ++i) q[i] = p.q + (item.token * p.n_heads + h0 + i) * hd;

  alignas(32) float acc[kHeadTile][kAttentionMaxHeadDim];
  alignas(32) float prob[kHeadTile][kKeyTile];
  float m[kHeadTile], l[kHeadTile];
  for (int i = 0; i < nh; ++i) {
    std::fill(acc[i], acc[i] + hd, 0.f);
    m[i] = -INFINITY;
    l[i] = 0.f;
  }
  const float* k_rows[kKeyTile];
  const float* v_rows[kKeyTile];

  for (int64_t t0 = 0; t0 < item.n_keys; t0 += kKeyTile) {
    const int nk = static_cast<int>(std::min<int64_t>(kKeyTile, item.n_keys - t0));
    for (int j = 0; j < nk; ++j) {
      const int64_t kp = t0 + j;
      const int64_t slot = static_cast<int64_t>(item.table[kp / p.block_size]) * p.block_size + kp % p.block_size;
      k_rows[j] = p.k_cache + slot * kv_row + kv_off;
      v_rows[j] = p.v_cache + slot * kv_row + kv_off;
    }
    for (int i = 0; i < nh; ++i) {
      float* s = prob[i];
      int j = 0;
      for (; j + 4 <= nk; j += 4) Dot4(q[i], k_rows + j, hd, s + j);
      for (; j < nk; ++j) s[j] = Dot1(q[i], k_rows[j], hd);
      for (j = 0; j < nk; ++j) s[j] *= p.scale;
      // Padding lanes get -inf: they never win the max and their e^x is flushed to 0.
      for (int j = nk; j < kKeyTile; ++j) s[j] = -INFINITY;
      __m256 vmax = _mm256_loadu_ps(s);
      for (int j = 8; j < kKeyTile; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
      const float m_new = std::max(m[i], HorizontalMax(vmax));
      const float alpha = std::exp(m[i] - m_new);  // e^-inf = 0 on the first tile
      const __m256 vm = _mm256_set1_ps(m_new);
      __m256 vsum = _mm256_setzero_ps();
      for (int j = 0; j < kKeyTile; j += 8) {
        const __m256 e = ExpNonPositive8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
      }
      l[i] = l[i] * alpha + HorizontalSum(vsum);
      m[i] = m_new;
      Scale(acc[i], alpha, hd);
    }
    for (int i = 0; i < nh; ++i) AccumulateTile(acc[i], v_rows, prob[i], nk, hd);
  }

  for (int i = 0; i < nh; ++i) {
    float* o = p.out + (item.token * p.n_heads + h0 + i) * hd;
    const __m256 inv = _mm256_set1_ps(1.f / l[i]);
    int d = 0;
    for (; d + 8 <= hd; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(acc[i] + d), inv));
    for (; d < hd; ++d) o[d] = acc[i][d] * (1.f / l[i]);
  }
}

// Item index -> (token, KV head); the token's sequence by binary search in q_start.
Item MakeItem(const AttentionParams& p, int64_t index) {
  Item item;
  item.token = index / p.n_kv_heads;
  item.kv_head = static_cast<int>(index % p.n_kv_heads);
  const int s = static_cast<int>(std::upper_bound(p.q_start, p.q_start + p.n_seqs + 1, item.token) - p.q_start) - 1;
  const int64_t q_len = p.q_start[s + 1] - p.q_start[s];
  item.n_keys = p.kv_len[s] - q_len + (item.token - p.q_start[s]) + 1;
  item.table = p.block_table + static_cast<int64_t>(s) * p.max_blocks_per_seq;
  return item;
}

void RunItem(const AttentionParams& p, int64_t index) {
  const Item item = MakeItem(p, index);
  const int group = p.n_heads / p.n_kv_heads;
  for (int h = 0; h < group; h += kHeadTile) {
    AttendHeads(p, item, item.kv_head * group + h, std::min(kHeadTile, group - h));
  }
}

}  // namespace

void AttentionCpu(const AttentionParams& p, ThreadPool* pool) {
  const int64_t n_items = p.n_tokens * p.n_kv_heads;
  if (n_items == 0) return;
  if (pool == nullptr || pool->num_threads() == 1 || n_items == 1) {
    for (int64_t i = 0; i < n_items; ++i) RunItem(p, i);
    return;
  }
  // Items differ in cost (a prefill's last query sees all its keys, its first sees one),
  // so threads claim small batches from a shared counter instead of fixed ranges.
  std::atomic<int64_t> next{0};
  const int64_t batch = std::max<int64_t>(1, n_items / (8 * pool->num_threads()));
  pool->Run([&](int, int) {
    for (;;) {
      const int64_t begin = next.fetch_add(batch, std::memory_order_relaxed);
      if (begin >= n_items) return;
      const int64_t end = std::min(n_items, begin + batch);
      for (int64_t i = begin; i < end; ++i) RunItem(p, i);
    }
  });
}

}  // namespace tide
