// CPU matmul for AVX2 + FMA + F16C (x86-64-v3).
//
// The reduction order is a contract (batch invariance, see DESIGN.md "--deterministic"):
// y[i, j] = Hsum(acc) (+ bias[j]), where acc is 8 f32 lanes, lane l holds the products
// x[i, kk] * w[j, kk] for kk ≡ l (mod 8), added by FMA in increasing kk; when k % 8 != 0
// the last partial vector is one more FMA with zero-padded x and w; Hsum adds the lanes
// in one fixed tree. Every path below (decode or prefill, any tile shape, any k block,
// any thread) follows that order, so row i of y depends only on row i of x: the same
// bits whether x has 1 row or 1000. This is also why the kernel uses dot-product tiles
// (a vector of k per output) instead of the usual broadcast-x outer-product GEMM tile,
// whose order (one scalar chain per output) a bandwidth-bound GEMV cannot match cheaply.
//
// Weights are converted to f32 with exactly the arithmetic of DequantizeRow (exact for
// f16/bf16; d * q for q8_0/q4_0), so the only difference from MatmulRef is f32 rounding.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "backend/cpu/thread_pool.h"
#include "ops/matmul/matmul.h"

namespace tide {
namespace {

// ---- The fixed lane reduction -------------------------------------------------------

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // l + (l+4)
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                           // + (l+2)
  s = _mm_add_ss(s, _mm_movehdup_ps(s));                                            // + (l+1)
  return _mm_cvtss_f32(s);
}

// ---- Weight loaders: 8 consecutive weights of a row -> one f32 vector --------------
// Load(row, k, s) converts elements [k + 8s, k + 8s + 8) of the row at `row`; k is a
// multiple of kStep (one quantised block for q*) and s < kStep / 8. kRowStepBytes is
// how many bytes of a row one kStep covers (used to pace software prefetch).

struct WF32 {
  static constexpr int kStep = 8;
  static constexpr int kElemBytes = 4;
  static constexpr int kStepBytes = 32;
  static __m256 Load(const uint8_t* row, int64_t k, int) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
};

struct WBf16 {
  static constexpr int kStep = 8;
  static constexpr int kElemBytes = 2;
  static constexpr int kStepBytes = 16;
  static __m256 Load(const uint8_t* row, int64_t k, int) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

struct WF16 {
  static constexpr int kStep = 8;
  static constexpr int kElemBytes = 2;
  static constexpr int kStepBytes = 16;
  static __m256 Load(const uint8_t* row, int64_t k, int) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
};

// Blocks sit at a 34- or 18-byte stride, so the f16 scale is read with memcpy (no
// alignment assumption about the mapped file).
inline __m256 BlockScale(const uint8_t* block) {
  uint16_t d;
  std::memcpy(&d, block, 2);
  return _mm256_set1_ps(_cvtsh_ss(d));
}

struct WQ8_0 {
  static constexpr int kStep = kQK8_0;
  static constexpr int kElemBytes = 0;  // no partial chunks: check() makes k % 32 == 0
  static constexpr int kStepBytes = sizeof(BlockQ8_0);
  static __m256 Load(const uint8_t* row, int64_t k, int s) {
    const uint8_t* b = row + k / kQK8_0 * kStepBytes;
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * s));
    return _mm256_mul_ps(BlockScale(b), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
  }
};

struct WQ4_0 {
  static constexpr int kStep = kQK4_0;
  static constexpr int kElemBytes = 0;
  static constexpr int kStepBytes = sizeof(BlockQ4_0);
  // Values 8s..8s+7 of a block: low nibbles of bytes 0-7 (s=0) or 8-15 (s=1), high
  // nibbles of the same bytes for s=2, 3. q - 8 is formed in int8 (one op per 16 values).
  static __m256 Load(const uint8_t* row, int64_t k, int s) {
    const uint8_t* b = row + k / kQK4_0 * kStepBytes;
    __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * (s & 1)));
    if (s >= 2) q = _mm_srli_epi16(q, 4);
    q = _mm_sub_epi8(_mm_and_si128(q, _mm_set1_epi8(0x0f)), _mm_set1_epi8(8));
    return _mm256_mul_ps(BlockScale(b), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
  }
};

// The partial last chunk (k % 8 elements, plain types only), zero-padded to 8.
template <class L>
inline __m256 LoadTail(const uint8_t* row, int64_t k, int tail) {
  static_assert(L::kStep == 8);
  alignas(32) uint8_t buf[8 * 4] = {};
  std::memcpy(buf, row + k * L::kElemBytes, static_cast<size_t>(tail) * L::kElemBytes);
  return L::Load(buf, 0, 0);
}

inline __m256i TailMask(int tail) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// ---- The micro-kernel ------------------------------------------------------------------
// Accumulates an R x C tile: rows x[0..R) (row stride ldx floats) against weight rows
// w[0..C) (row stride ldw bytes), over `len` elements (a multiple of kStep) plus `tail`
// (0..7) zero-padded ones. The R*C lane vectors live in `state` ([R][C][8] f32) between
// calls, so a long k can be split into blocks without changing the order.
//
// pf_dist > 0 (decode, where the tile's rows are contiguous and the next tile's rows
// follow them) software-prefetches each row pf_dist bytes ahead; past the row's end the
// stream continues into row c of the next tile. The hardware prefetcher alone keeps too
// few lines in flight when C short rows are walked in parallel.

constexpr int kMaxR = 4;
constexpr int kMaxC = 4;

using TileFn = void (*)(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, int64_t len,
                        int tail, bool zero_init, float* state, int64_t pf_dist);

template <int R, int C, class L>
void Tile(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, int64_t len, int tail,
          bool zero_init, float* state, int64_t pf_dist) {
  constexpr int kSub = L::kStep / 8;
  // Prefetch every kPfEvery steps: the largest power of two whose bytes fit in a 64-byte
  // line, so no line of a row is skipped (q8_0's 34-byte steps need one every step).
  constexpr int kPfEvery = 4 * L::kStepBytes <= 64 ? 4 : 2 * L::kStepBytes <= 64 ? 2 : 1;
  __m256 acc[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      acc[r][c] = zero_init ? _mm256_setzero_ps() : _mm256_loadu_ps(state + (r * C + c) * 8);
    }
  }
  // Prefetch cursor: row c of the cursor's tile is at pf_tile + c * ldw, offset pf_off.
  const uint8_t* pf_tile = w;
  int64_t pf_off = pf_dist;
  while (pf_off >= ldw) {
    pf_off -= ldw;
    pf_tile += C * ldw;
  }
  for (int64_t kk = 0, step = 0; kk < len; kk += L::kStep, ++step) {
    if (pf_dist > 0 && (step & (kPfEvery - 1)) == 0) {
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(pf_tile + c * ldw + pf_off), _MM_HINT_T0);
      }
      pf_off += kPfEvery * L::kStepBytes;
      if (pf_off >= ldw) {
        pf_off -= ldw;
        pf_tile += C * ldw;
      }
    }
#pragma GCC unroll 4
    for (int s = 0; s < kSub; ++s) {
      __m256 wv[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) wv[c] = L::Load(w + c * ldw, kk, s);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_loadu_ps(x + r * ldx + kk + 8 * s);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
  }
  if constexpr (L::kStep == 8) {
    if (tail != 0) {
      const __m256i mask = TailMask(tail);
      __m256 wv[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) wv[c] = LoadTail<L>(w + c * ldw, len, tail);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_maskload_ps(x + r * ldx + len, mask);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(state + (r * C + c) * 8, acc[r][c]);
  }
}

template <class L, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> MakeTileTable(std::index_sequence<I...>) {
  return {&Tile<static_cast<int>(I) / kMaxC + 1, static_cast<int>(I) % kMaxC + 1, L>...};
}

template <class L>
TileFn GetTile(int r, int c) {
  static constexpr auto kTable = MakeTileTable<L>(std::make_index_sequence<kMaxR * kMaxC>());
  return kTable[static_cast<size_t>((r - 1) * kMaxC + (c - 1))];
}

// Writes an r x c tile of finished outputs: y[ri, ci] = Hsum(state[ri][ci]) (+ bias[ci]).
void Finish(const float* state, int r, int c, float* y, int64_t ldy, const float* bias) {
  for (int ri = 0; ri < r; ++ri) {
    for (int ci = 0; ci < c; ++ci) {
      float v = Hsum(_mm256_loadu_ps(state + (ri * c + ci) * 8));
      if (bias != nullptr) v += bias[ci];
      y[ri * ldy + ci] = v;
    }
  }
}

// ---- Running a function on the pool ----------------------------------------------------

template <class F>
void RunOnPool(ThreadPool* pool, const F& fn) {
  if (pool == nullptr || pool->num_threads() == 1) {
    fn(0, 1);
    return;
  }
  pool->Run([&](int t, int nt) { fn(t, nt); });
}

// ---- Decode (small m): stream each weight row once, convert in registers ---------------
// Bandwidth-bound at m = 1: every weight byte is read from memory once and used against
// all m rows of x, which stay in cache (L1/L2 at small m, L3 at the largest). Threads take chunks of weight rows from a shared counter so
// a thread delayed by another process does not hold up the whole op; chunks are long
// (~256 KiB) so each is one long prefetched stream, but many per thread.

constexpr int64_t kDecodeChunkBytes = 256 << 10;
constexpr int64_t kDecodeChunksPerThread = 8;
constexpr int64_t kDecodePrefetchBytes = 2048;

template <class L>
void DecodeRows(const MatmulParams& p, int64_t row_bytes, int64_t j0, int64_t j1) {
  const int64_t len = p.k / L::kStep * L::kStep;
  const int tail = static_cast<int>(p.k - len);
  const int tile_c = p.m <= 3 ? 4 : 3;
  const auto* w = p.w.as<const uint8_t>();
  const int64_t pf_dist = kDecodePrefetchBytes;
  alignas(32) float state[kMaxR * kMaxC * 8];
  // The tiles prefetch pf_dist ahead of themselves; start the stream for the first one.
  for (int64_t jj = j0; jj < std::min(j1, j0 + tile_c); ++jj) {
    for (int64_t off = 0; off < std::min(pf_dist, row_bytes); off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(w + jj * row_bytes + off), _MM_HINT_T0);
    }
  }
  for (int64_t j = j0; j < j1; j += tile_c) {
    const int c = static_cast<int>(std::min<int64_t>(tile_c, j1 - j));
    for (int64_t i = 0; i < p.m; i += kMaxR) {
      const int r = static_cast<int>(std::min<int64_t>(kMaxR, p.m - i));
      GetTile<L>(r, c)(p.x + i * p.k, p.k, w + j * row_bytes, row_bytes, len, tail,
                       /*zero_init=*/true, state, i == 0 ? pf_dist : 0);
      Finish(state, r, c, p.y + i * p.n + j, p.n, p.bias != nullptr ? p.bias + j : nullptr);
    }
  }
}

template <class L>
void Decode(const MatmulParams& p, ThreadPool* pool) {
  const auto row_bytes = static_cast<int64_t>(DTypeBytes(p.w.dtype, static_cast<uint64_t>(p.k)));
  const int64_t nt = pool != nullptr ? pool->num_threads() : 1;
  const int64_t chunk_rows = std::clamp<int64_t>(
      std::min(kDecodeChunkBytes / row_bytes, p.n / (nt * kDecodeChunksPerThread)) / 12 * 12, 12, 1200);
  const int64_t num_chunks = (p.n + chunk_rows - 1) / chunk_rows;
  std::atomic<int64_t> next{0};
  RunOnPool(pool, [&](int, int) {
    for (int64_t ch = next.fetch_add(1, std::memory_order_relaxed); ch < num_chunks;
         ch = next.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t j0 = ch * chunk_rows;
      DecodeRows<L>(p, row_bytes, j0, std::min(p.n, j0 + chunk_rows));
    }
  });
}

// ---- Prefill (large m): convert a weight panel once, reuse it across many rows --------
// Work item = (block of kMB rows of x) x (block of kNB weight rows). For each k block of
// kKB elements the item converts its kNB x kKB weight panel to f32 (thread-local, L2) and
// runs 4x3 tiles over it: the 3 weight rows of a tile (6 KiB) stay in L1 while the x rows
// stream from L2. Partial lane sums are kept per tile between k blocks.

constexpr int kTileR = 4;
constexpr int kTileC = 3;
constexpr int64_t kMB = 64;   // multiple of kTileR
constexpr int64_t kNB = 48;   // multiple of kTileC
constexpr int64_t kKB = 512;  // multiple of 32, so blocks never split a q8_0/q4_0 block

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

// Per-thread scratch, allocated on first use and reused by every later call.
struct PrefillScratch {
  std::unique_ptr<float[], AlignedFree> panel;  // [kNB][kKB] converted weights
  std::unique_ptr<float[], AlignedFree> state;  // [kMB/kTileR][kNB/kTileC][R][C][8]

  void Ensure() {
    if (panel != nullptr) return;
    panel.reset(static_cast<float*>(std::aligned_alloc(64, kNB * kKB * sizeof(float))));
    state.reset(static_cast<float*>(std::aligned_alloc(64, kMB * kNB * 8 * sizeof(float))));
  }
};

PrefillScratch& ThreadScratch() {
  thread_local PrefillScratch scratch;
  scratch.Ensure();
  return scratch;
}

// Converts elements [k0, k0 + len + tail) of one weight row into dst, zero-padding to 8.
template <class L>
void PackRow(const uint8_t* row, int64_t k0, int64_t len, int tail, float* dst) {
  for (int64_t kk = 0; kk < len; kk += L::kStep) {
    for (int s = 0; s < L::kStep / 8; ++s) _mm256_storeu_ps(dst + kk + 8 * s, L::Load(row, k0 + kk, s));
  }
  if constexpr (L::kStep == 8) {
    if (tail != 0) _mm256_storeu_ps(dst + len, LoadTail<L>(row, k0 + len, tail));
  }
}

template <class L>
void PrefillItem(const MatmulParams& p, int64_t row_bytes, int64_t i0, int64_t mb, int64_t j0,
                 int64_t nb, PrefillScratch& scratch) {
  const auto* w = p.w.as<const uint8_t>();
  const int64_t c_tiles = (nb + kTileC - 1) / kTileC;
  for (int64_t k0 = 0; k0 < p.k; k0 += kKB) {
    const int64_t block = std::min(kKB, p.k - k0);
    const int64_t len = block / L::kStep * L::kStep;
    const int tail = static_cast<int>(block - len);
    const int64_t ldp = (block + 7) / 8 * 8;
    const bool first = k0 == 0;
    const bool last = k0 + kKB >= p.k;
    for (int64_t jj = 0; jj < nb; ++jj) {
      PackRow<L>(w + (j0 + jj) * row_bytes, k0, len, tail, scratch.panel.get() + jj * ldp);
    }
    const auto* panel = reinterpret_cast<const uint8_t*>(scratch.panel.get());
    for (int64_t jj = 0; jj < nb; jj += kTileC) {
      const int c = static_cast<int>(std::min<int64_t>(kTileC, nb - jj));
      for (int64_t ii = 0; ii < mb; ii += kTileR) {
        const int r = static_cast<int>(std::min<int64_t>(kTileR, mb - ii));
        float* st = scratch.state.get() + ((ii / kTileR) * c_tiles + jj / kTileC) * kTileR * kTileC * 8;
        // The panel holds f32 rows whatever w's dtype, so len is re-rounded to 8.
        const int64_t len8 = block / 8 * 8;
        GetTile<WF32>(r, c)(p.x + (i0 + ii) * p.k + k0, p.k, panel + jj * ldp * 4, ldp * 4, len8,
                            static_cast<int>(block - len8), first, st, /*pf_dist=*/0);
        if (last) {
          Finish(st, r, c, p.y + (i0 + ii) * p.n + j0 + jj, p.n,
                 p.bias != nullptr ? p.bias + j0 + jj : nullptr);
        }
      }
    }
  }
}

template <class L>
void Prefill(const MatmulParams& p, ThreadPool* pool) {
  const auto row_bytes = static_cast<int64_t>(DTypeBytes(p.w.dtype, static_cast<uint64_t>(p.k)));
  const int64_t m_blocks = (p.m + kMB - 1) / kMB;
  const int64_t n_blocks = (p.n + kNB - 1) / kNB;
  const int64_t items = m_blocks * n_blocks;
  std::atomic<int64_t> next{0};
  RunOnPool(pool, [&](int, int) {
    PrefillScratch& scratch = ThreadScratch();
    for (int64_t it = next.fetch_add(1, std::memory_order_relaxed); it < items;
         it = next.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t i0 = it % m_blocks * kMB;
      const int64_t j0 = it / m_blocks * kNB;
      PrefillItem<L>(p, row_bytes, i0, std::min(kMB, p.m - i0), j0, std::min(kNB, p.n - j0), scratch);
    }
  });
}

// Up to this many rows of x, the decode loop (convert weights in registers, reuse them
// across all rows from L1) beats converting panels to memory first: measured on Zen 5,
// bf16 at m = 8..128 runs at 80-85% of FMA peak that way, the panel path at m = 8 at a
// third of it. q8_0/q4_0 cost more to convert per use, so they switch over sooner.
template <class L>
constexpr int64_t kDecodeMaxM = L::kElemBytes == 0 ? 16 : 64;

template <class L>
void MatmulTyped(const MatmulParams& p, ThreadPool* pool) {
  if (p.m <= kDecodeMaxM<L>) {
    Decode<L>(p, pool);
  } else {
    Prefill<L>(p, pool);
  }
}

}  // namespace

void MatmulCpu(const MatmulParams& p, ThreadPool* pool) {
  switch (p.w.dtype) {
    case DType::kF32: return MatmulTyped<WF32>(p, pool);
    case DType::kF16: return MatmulTyped<WF16>(p, pool);
    case DType::kBF16: return MatmulTyped<WBf16>(p, pool);
    case DType::kQ8_0: return MatmulTyped<WQ8_0>(p, pool);
    case DType::kQ4_0: return MatmulTyped<WQ4_0>(p, pool);
    case DType::kI32: break;
  }
}

}  // namespace tide
