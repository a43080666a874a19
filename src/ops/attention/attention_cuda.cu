// Paged attention on CUDA: a FlashAttention-style kernel for any mix of prefill chunks
// and decode tokens, f32 throughout (Precision::kExact, and head sizes the tensor-core
// kernel below does not take); by default batches other than pure decode go to the
// tensor-core (bf16) FlashAttention kernel further down.
//
// Work split: a block owns up to kRows = 32 query rows that share one KV head: a tile of
// consecutive query tokens of one sequence times the query heads of that KV head's
// group (GQA), so every K/V tile it loads serves all of them. Tiles are numbered over
// the sequences in order; each block finds its tile by walking q_start (a few hundred
// sequences at most), so no host-side tile map is needed.
//
// Per tile of kKeys = 32 context positions: K and V are gathered through the block
// table into shared memory (rows past kv_len are zero-filled, so stale or NaN cache
// contents are never multiplied, even by 0); each warp owns 4 rows; lane j scores key j
// for the warp's 4 rows at once, then the online softmax (running max m, running sum l,
// accumulator rescaled by e^(m_old - m_new)) folds the tile in, with lanes now owning
// head_dim slices of the accumulator. Causality masks key positions past each row's
// own position. A row's arithmetic depends only on its own query and context, never on
// the rest of the batch.
//
// Decode batches (one query token per sequence, n_tokens == n_seqs) take a separate
// flash-decoding path, below: the context is split into chunks handled by different
// warps (head_dim 64/128) or blocks (other head sizes), and a combine kernel merges the
// chunks' softmax states.
#include <cstdlib>

#include "backend/cuda/blas_lt.h"
#include "backend/cuda/kernel_util.cuh"
#include "ops/attention/attention.h"

namespace tide {
namespace {

constexpr int kRows = 32;          // query rows per block
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = kRows / kWarps;
constexpr int kKeys = 32;          // keys per tile (one per lane when scoring)

struct Geometry {
  int heads_per_block;   // query heads of one KV group handled together
  int tokens_per_block;  // query tokens per tile
  int head_chunks;       // blocks needed to cover one KV group's heads
};

Geometry Plan(const AttentionParams& p) {
  const int group = p.n_heads / p.n_kv_heads;
  Geometry g;
  g.heads_per_block = group < kRows ? group : kRows;
  g.tokens_per_block = kRows / g.heads_per_block;
  g.head_chunks = (group + g.heads_per_block - 1) / g.heads_per_block;
  return g;
}

size_t SmemBytes(int head_dim) {
  // Q [kRows][hd], K [kKeys][hd + 1] (padded: lanes read different keys' same column),
  // V [kKeys][hd] (lanes read one key's consecutive columns).
  return sizeof(float) * (static_cast<size_t>(kRows) * head_dim + kKeys * (head_dim + 1) + kKeys * head_dim);
}

// kDL = accumulator floats per lane = ceil(head_dim / 32), rounded up to 1, 2, 4, 8, 16.
template <int kDL>
__global__ void __launch_bounds__(kWarps * 32)
    AttentionKernel(AttentionParams p, Geometry geo) {
  extern __shared__ float smem[];
  const int hd = p.head_dim;
  float* sq = smem;
  float* sk = sq + kRows * hd;
  float* sv = sk + kKeys * (hd + 1);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  // Which sequence and token tile this block owns.
  int seq = -1, tile_start = 0;
  {
    int64_t remaining = blockIdx.x;
    for (int s = 0; s < p.n_seqs; ++s) {
      const int q_len = p.q_start[s + 1] - p.q_start[s];
      const int tiles = (q_len + geo.tokens_per_block - 1) / geo.tokens_per_block;
      if (remaining < tiles) {
        seq = s;
        tile_start = static_cast<int>(remaining) * geo.tokens_per_block;
        break;
      }
      remaining -= tiles;
    }
  }
  if (seq < 0) return;  // the grid is an upper bound on the tile count
  const int group = p.n_heads / p.n_kv_heads;
  const int kvh = blockIdx.y / geo.head_chunks;
  const int head0 = kvh * group + (blockIdx.y % geo.head_chunks) * geo.heads_per_block;
  const int heads_here = min(geo.heads_per_block, kvh * group + group - head0);
  const int q0 = p.q_start[seq];
  const int q_len = p.q_start[seq + 1] - q0;
  const int kv_len = p.kv_len[seq];
  const int tokens_here = min(geo.tokens_per_block, q_len - tile_start);
  const int32_t* table = p.block_table + static_cast<int64_t>(seq) * p.max_blocks_per_seq;

  // Row r = token (r / heads_per_block) x head (r % heads_per_block) of the tile.
  auto row_valid = [&](int r) { return r / geo.heads_per_block < tokens_here && r % geo.heads_per_block < heads_here; };
  auto row_pos = [&](int r) { return kv_len - q_len + tile_start + r / geo.heads_per_block; };
  auto row_q = [&](int r) {
    const int64_t t = q0 + tile_start + r / geo.heads_per_block;
    return (t * p.n_heads + head0 + r % geo.heads_per_block) * hd;
  };

  for (int i = threadIdx.x; i < kRows * hd; i += kWarps * 32) {
    const int r = i / hd, d = i % hd;
    sq[i] = row_valid(r) ? p.q[row_q(r) + d] : 0.f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kDL];
  int pos[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr;
    m[rr] = -INFINITY;
    l[rr] = 0.f;
    pos[rr] = row_valid(r) ? row_pos(r) : -1;  // -1: every key masked
#pragma unroll
    for (int i = 0; i < kDL; ++i) acc[rr][i] = 0.f;
  }

  const int last_pos = kv_len - q_len + tile_start + tokens_here - 1;  // the tile's furthest row
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * hd;
  for (int k0 = 0; k0 <= last_pos; k0 += kKeys) {
    __syncthreads();  // the previous tile is consumed (and sq is written, first time)
    for (int i = threadIdx.x; i < kKeys * hd; i += kWarps * 32) {
      const int j = i / hd, d = i % hd;
      const int kp = k0 + j;
      float kv = 0.f, vv = 0.f;
      if (kp < kv_len) {
        const int64_t slot = static_cast<int64_t>(table[kp / p.block_size]) * p.block_size + kp % p.block_size;
        const int64_t off = slot * kv_row + static_cast<int64_t>(kvh) * hd + d;
        kv = p.k_cache[off];
        vv = p.v_cache[off];
      }
      sk[j * (hd + 1) + d] = kv;
      sv[j * hd + d] = vv;
    }
    __syncthreads();

    // Scores: lane = key, the warp's rows together (one K read, kRowsPerWarp FMAs).
    float s[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) s[rr] = 0.f;
    const float* kr = sk + lane * (hd + 1);
    const float* q_base = sq + warp * kRowsPerWarp * hd;
    for (int d = 0; d < hd; ++d) {
      const float kd = kr[d];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) s[rr] = fmaf(q_base[rr * hd + d], kd, s[rr]);
    }
    float pj[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const bool live = k0 + lane <= pos[rr];
      const float sc = live ? s[rr] * p.scale : -INFINITY;
      const float m_new = fmaxf(m[rr], cuda::WarpMax(sc));
      if (m_new == -INFINITY) {  // nothing visible yet (or an invalid row)
        pj[rr] = 0.f;
        continue;
      }
      const float alpha = expf(m[rr] - m_new);  // e^-inf = 0 on the first visible tile
      pj[rr] = live ? expf(sc - m_new) : 0.f;
      l[rr] = l[rr] * alpha + cuda::WarpSum(pj[rr]);
      m[rr] = m_new;
#pragma unroll
      for (int i = 0; i < kDL; ++i) acc[rr][i] *= alpha;
    }
    // P·V: lanes own head_dim columns; key j's weight comes from lane j.
    const int keys = min(kKeys, last_pos + 1 - k0);
    for (int j = 0; j < keys; ++j) {
      float pw[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) pw[rr] = __shfl_sync(0xffffffffu, pj[rr], j);
#pragma unroll
      for (int i = 0; i < kDL; ++i) {
        const int d = i * 32 + lane;
        if (d < hd) {
          const float vd = sv[j * hd + d];
#pragma unroll
          for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr][i] = fmaf(pw[rr], vd, acc[rr][i]);
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr;
    if (!row_valid(r)) continue;
    float* o = p.out + row_q(r);
    const float inv = 1.f / l[rr];
#pragma unroll
    for (int i = 0; i < kDL; ++i) {
      const int d = i * 32 + lane;
      if (d < hd) o[d] = acc[rr][i] * inv;
    }
  }
}

template <int kDL>
void Launch(const AttentionParams& p, cudaStream_t s) {
  const Geometry geo = Plan(p);
  const size_t smem = SmemBytes(p.head_dim);
  static bool raised = false;  // one attribute call per instantiation
  if (!raised) {
    // Fails on devices with less shared memory than head_dim 512 needs (pre-Hopper);
    // the launch then fails too and the forward pass returns the error.
    const cudaError_t e = cudaFuncSetAttribute(AttentionKernel<kDL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(SmemBytes(kDL * 32)));
    if (e != cudaSuccess) cuda::NoteLaunchError(e, "attention (shared memory limit)");
    raised = true;
  }
  // Upper bound on the tiles: each sequence wastes at most one partial tile.
  const int64_t tiles = p.n_tokens / geo.tokens_per_block + p.n_seqs;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.n_kv_heads * geo.head_chunks));
  AttentionKernel<kDL><<<grid, kWarps * 32, smem, s>>>(p, geo);
  TIDE_CUDA_LAUNCHED("attention");
}


// ---- prefill on the tensor cores (Precision::kFast / kBf16) ------------------------
//
// The same work split as above (a block owns 16·W query rows sharing one KV head:
// consecutive tokens of one sequence x the heads of that KV head's GQA group), but Q,
// K and V are rounded to bf16 as they enter shared memory and both products run on
// mma.sync m16n8k16 (bf16 in, f32 accumulate): warp w owns rows [16w, 16w + 16) and
// keeps their Q fragments, scores (16 x kFaKeys) and output accumulator (16 x D) in
// registers. The online softmax runs in f32 on the score fragments, in base 2 (scale
// folded with log2 e); each of a row's four lanes keeps a partial row sum, added
// together at the end (the running max is shared across the four, so their rescaling
// agrees). P goes from the score accumulators straight into A fragments (the
// m16n8k16 C layout of two adjacent key tiles is the A layout of one 16-key step).
//
// Shared memory: Q [16·W][D + 8], K [kFaKeys][D + 8] and V transposed [D][kFaKeys + 8]
// in bf16, so the B fragments of both products are single 32-bit loads of two adjacent
// k-elements; the 16-byte row padding spreads the 8 rows a fragment load touches over
// all 32 banks. The next K/V tile streams in as f32 (cp.async, through the block table)
// into a staging area while the current one is multiplied; rows past kv_len are
// zero-filled there (stale or NaN cache contents are never multiplied), and causal
// masking sets scores past a row's position to -inf.
// Blocks are issued heaviest tile first (the last tiles of a sequence see the most
// keys), so the short tiles fill the tail of the grid.
//
// Error: bf16 rounding of q, k (scores off by ~2^-8 |q||k| scale), of the probabilities
// and of v (2^-9 relative each); sums and softmax in f32. Against f64, outputs (convex
// combinations of v) are off by ~1e-3 of max |v| typically.

constexpr int kFaKeys = 64;  // keys per tile

Geometry PlanFlash(const AttentionParams& p, int rows) {
  const int group = p.n_heads / p.n_kv_heads;
  Geometry g;
  g.heads_per_block = group < rows ? group : rows;
  g.tokens_per_block = rows / g.heads_per_block;
  g.head_chunks = (group + g.heads_per_block - 1) / g.heads_per_block;
  return g;
}

// W warps, 16 query rows each. Shared memory: K, Vᵀ (bf16), then one region that first
// holds the Q tile (bf16, only until its fragments are in registers) and then the f32
// staging of K and V.
template <int D, int W>
struct FaLayout {
  static constexpr int kRows = 16 * W;
  static constexpr int kQStride = D + 8;        // bf16 elements per Q / K row in shared memory
  static constexpr int kVStride = kFaKeys + 8;  // per row of Vᵀ
  static constexpr int kFStride = D + 4;        // f32 elements per staged K / V row
  static constexpr size_t kKvBytes = 2 * (static_cast<size_t>(kFaKeys) * kQStride + D * kVStride);
  static constexpr size_t kQBytes = 2 * static_cast<size_t>(kRows) * kQStride;
  static constexpr size_t kStageBytes = 4 * 2 * static_cast<size_t>(kFaKeys) * kFStride;
  static constexpr size_t kBytes = kKvBytes + (kQBytes > kStageBytes ? kQBytes : kStageBytes);
};

// 16 bytes global -> shared without passing through registers; src_bytes 0 zero-fills.
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, int src_bytes) {
  const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;"); }
__device__ __forceinline__ void CpAsyncWaitAll() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t Lds32(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// c (16x8, f32) += a (16x16 bf16, row-major fragment) · b (16x8 bf16, column fragment).
__device__ __forceinline__ void MmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// REQUIRES: head_dim == D; q, out, k_cache, v_cache 16-byte aligned.
template <int D, int W>
__global__ void __launch_bounds__(W * 32)
    FlashPrefillKernel(AttentionParams p, Geometry geo, int64_t n_tiles) {
  using L = FaLayout<D, W>;
  constexpr int kFaRows = L::kRows, kFaThreads = W * 32;
  extern __shared__ float4 fa_smem4[];
  __nv_bfloat16* sk = reinterpret_cast<__nv_bfloat16*>(fa_smem4);
  __nv_bfloat16* svt = sk + kFaKeys * L::kQStride;
  __nv_bfloat16* sq = reinterpret_cast<__nv_bfloat16*>(reinterpret_cast<unsigned char*>(fa_smem4) + L::kKvBytes);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t = lane % 4;  // fragment row (and key/dim) group, and lane within it

  // Block b: KV-head slot b % slots, tile n_tiles - 1 - b / slots (heaviest first).
  const int slots = p.n_kv_heads * geo.head_chunks;
  const int slot = static_cast<int>(blockIdx.x % slots);
  int64_t remaining = n_tiles - 1 - static_cast<int64_t>(blockIdx.x / slots);
  int seq = -1, tile_start = 0;
  for (int s = 0; s < p.n_seqs; ++s) {
    const int q_len = p.q_start[s + 1] - p.q_start[s];
    const int tiles = (q_len + geo.tokens_per_block - 1) / geo.tokens_per_block;
    if (remaining < tiles) {
      seq = s;
      tile_start = static_cast<int>(remaining) * geo.tokens_per_block;
      break;
    }
    remaining -= tiles;
  }
  if (seq < 0) return;  // n_tiles is an upper bound on the tile count
  const int group = p.n_heads / p.n_kv_heads;
  const int kvh = slot / geo.head_chunks;
  const int head0 = kvh * group + (slot % geo.head_chunks) * geo.heads_per_block;
  const int heads_here = min(geo.heads_per_block, kvh * group + group - head0);
  const int q0 = p.q_start[seq];
  const int q_len = p.q_start[seq + 1] - q0;
  const int kv_len = p.kv_len[seq];
  const int tokens_here = min(geo.tokens_per_block, q_len - tile_start);
  const int32_t* table = p.block_table + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  const int hpb = geo.heads_per_block;

  auto row_valid = [&](int r) { return r / hpb < tokens_here && r % hpb < heads_here; };
  auto row_q = [&](int r) {
    const int64_t tok = q0 + tile_start + r / hpb;
    return (tok * p.n_heads + head0 + r % hpb) * D;
  };

  // Q tile -> bf16 in shared memory (invalid rows zero).
  constexpr int kVecs = D / 4;  // float4s per row
  for (int i = tid; i < kFaRows * kVecs; i += kFaThreads) {
    const int r = i / kVecs, c = (i % kVecs) * 4;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row_valid(r)) v = *reinterpret_cast<const float4*>(p.q + row_q(r) + c);
    *reinterpret_cast<uint2*>(sq + r * L::kQStride + c) = make_uint2(PackBf16(v.x, v.y), PackBf16(v.z, v.w));
  }
  __syncthreads();
  const int r0 = warp * 16 + g, r1 = r0 + 8;  // this lane's two rows
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    qf[kk][0] = Lds32(sq + r0 * L::kQStride + kk * 16 + 2 * t);
    qf[kk][1] = Lds32(sq + r1 * L::kQStride + kk * 16 + 2 * t);
    qf[kk][2] = Lds32(sq + r0 * L::kQStride + kk * 16 + 8 + 2 * t);
    qf[kk][3] = Lds32(sq + r1 * L::kQStride + kk * 16 + 8 + 2 * t);
  }
  const int base_pos = kv_len - q_len + tile_start;
  const int pos0 = row_valid(r0) ? base_pos + r0 / hpb : -1;  // -1: every key masked
  const int pos1 = row_valid(r1) ? base_pos + r1 / hpb : -1;
  const float scale2 = p.scale * 1.4426950408889634f;  // scores in base 2

  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;

  const int last_pos = base_pos + tokens_here - 1;  // the tile's furthest row
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * D;
  const int64_t head_off = static_cast<int64_t>(kvh) * D;
  auto cache_off = [&](int kp) {
    return (static_cast<int64_t>(table[kp / p.block_size]) * p.block_size + kp % p.block_size) * kv_row + head_off;
  };
  // K/V tiles arrive as f32 in a staging area by cp.async, one tile ahead: tile i+1 is
  // in flight while tile i is multiplied. Rows past kv_len are zero-filled.
  float* stk = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(fa_smem4) + L::kKvBytes);  // over Q
  float* stv = stk + kFaKeys * L::kFStride;
  auto stage = [&](int k0) {
    for (int i = tid; i < kFaKeys * kVecs; i += kFaThreads) {
      const int j = i / kVecs, c = (i % kVecs) * 4;
      const int kp = k0 + j;
      const int64_t off = kp < kv_len ? cache_off(kp) + c : 0;
      const int bytes = kp < kv_len ? 16 : 0;
      CpAsync16(stk + j * L::kFStride + c, p.k_cache + off, bytes);
      CpAsync16(stv + j * L::kFStride + c, p.v_cache + off, bytes);
    }
    CpAsyncCommit();
  };
  __syncthreads();  // every warp has its Q fragments: the staging area may overwrite Q
  stage(0);
  for (int k0 = 0; k0 <= last_pos; k0 += kFaKeys) {
    CpAsyncWaitAll();
    __syncthreads();  // the staged tile is complete, and the previous bf16 tile is consumed
    // K rows -> bf16, as stored.
    for (int i = tid; i < kFaKeys * kVecs; i += kFaThreads) {
      const int j = i / kVecs, c = (i % kVecs) * 4;
      const float4 v = *reinterpret_cast<const float4*>(stk + j * L::kFStride + c);
      *reinterpret_cast<uint2*>(sk + j * L::kQStride + c) = make_uint2(PackBf16(v.x, v.y), PackBf16(v.z, v.w));
    }
    // V -> bf16, transposed: each thread takes two adjacent keys so its stores are key
    // pairs, and a warp's lanes take consecutive pairs, so its stores hit 32 banks.
    for (int i = tid; i < kFaKeys / 2 * kVecs; i += kFaThreads) {
      const int j = (i % (kFaKeys / 2)) * 2, c = (i / (kFaKeys / 2)) * 4;
      const float4 a = *reinterpret_cast<const float4*>(stv + j * L::kFStride + c);
      const float4 b = *reinterpret_cast<const float4*>(stv + (j + 1) * L::kFStride + c);
      __nv_bfloat16* dst = svt + c * L::kVStride + j;
      *reinterpret_cast<uint32_t*>(dst) = PackBf16(a.x, b.x);
      *reinterpret_cast<uint32_t*>(dst + L::kVStride) = PackBf16(a.y, b.y);
      *reinterpret_cast<uint32_t*>(dst + 2 * L::kVStride) = PackBf16(a.z, b.z);
      *reinterpret_cast<uint32_t*>(dst + 3 * L::kVStride) = PackBf16(a.w, b.w);
    }
    __syncthreads();  // bf16 tile written; the staging area is free again
    if (k0 + kFaKeys <= last_pos) stage(k0 + kFaKeys);

    // S = Q Kᵀ for this warp's 16 rows: kFaKeys / 8 key tiles of 8.
    float sc[kFaKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kFaKeys / 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nt = 0; nt < kFaKeys / 8; ++nt) {
        const __nv_bfloat16* kr = sk + (nt * 8 + g) * L::kQStride + kk * 16 + 2 * t;
        MmaBf16(sc[nt], qf[kk], Lds32(kr), Lds32(kr + 8));
      }
    }
    // Mask, scale, running max. Element e of key tile nt: row (e < 2 ? r0 : r1),
    // key k0 + nt * 8 + 2t + (e & 1).
    // Only tiles reaching past the block's first row position need the causal mask
    // (rows past the tile's end have pos -1, but their scores are never stored).
    const bool masked = k0 + kFaKeys - 1 > base_pos;
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kFaKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int kp = k0 + nt * 8 + 2 * t + (e & 1);
        const bool live = !masked || kp <= (e < 2 ? pos0 : pos1);
        sc[nt][e] = live ? sc[nt][e] * scale2 : -INFINITY;
      }
      mx0 = fmaxf(mx0, fmaxf(sc[nt][0], sc[nt][1]));
      mx1 = fmaxf(mx1, fmaxf(sc[nt][2], sc[nt][3]));
    }
#pragma unroll
    for (int o_ = 1; o_ < 4; o_ <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, o_));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, o_));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    // A row with nothing visible yet keeps m = -inf: subtract 0 instead, so every
    // exponent is exp2(-inf) = 0 and nothing becomes NaN.
    const float ms0 = mn0 == -INFINITY ? 0.f : mn0, ms1 = mn1 == -INFINITY ? 0.f : mn1;
    const float alpha0 = exp2f(m0 - ms0), alpha1 = exp2f(m1 - ms1);
    m0 = mn0;
    m1 = mn1;
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int nt = 0; nt < kFaKeys / 8; ++nt) {
      sc[nt][0] = exp2f(sc[nt][0] - ms0);
      sc[nt][1] = exp2f(sc[nt][1] - ms0);
      sc[nt][2] = exp2f(sc[nt][2] - ms1);
      sc[nt][3] = exp2f(sc[nt][3] - ms1);
      sum0 += sc[nt][0] + sc[nt][1];
      sum1 += sc[nt][2] + sc[nt][3];
    }
    l0 = l0 * alpha0 + sum0;
    l1 = l1 * alpha1 + sum1;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= alpha0;
      o[dt][1] *= alpha0;
      o[dt][2] *= alpha1;
      o[dt][3] *= alpha1;
    }
    // O += P V, 16 keys per step.
#pragma unroll
    for (int kk = 0; kk < kFaKeys / 16; ++kk) {
      const uint32_t pa[4] = {PackBf16(sc[2 * kk][0], sc[2 * kk][1]), PackBf16(sc[2 * kk][2], sc[2 * kk][3]),
                              PackBf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                              PackBf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const __nv_bfloat16* vr = svt + (dt * 8 + g) * L::kVStride + kk * 16 + 2 * t;
        MmaBf16(o[dt], pa, Lds32(vr), Lds32(vr + 8));
      }
    }
  }

#pragma unroll
  for (int o_ = 1; o_ < 4; o_ <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, o_);
    l1 += __shfl_xor_sync(0xffffffffu, l1, o_);
  }
  if (row_valid(r0)) {
    float* out = p.out + row_q(r0) + 2 * t;
    const float inv = 1.f / l0;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) *reinterpret_cast<float2*>(out + dt * 8) = make_float2(o[dt][0] * inv, o[dt][1] * inv);
  }
  if (row_valid(r1)) {
    float* out = p.out + row_q(r1) + 2 * t;
    const float inv = 1.f / l1;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) *reinterpret_cast<float2*>(out + dt * 8) = make_float2(o[dt][2] * inv, o[dt][3] * inv);
  }
}

template <int D, int W>
void LaunchFlash(const AttentionParams& p, cudaStream_t s) {
  using L = FaLayout<D, W>;
  const Geometry geo = PlanFlash(p, L::kRows);
  static bool raised = false;
  if (!raised) {
    const cudaError_t e = cudaFuncSetAttribute(FlashPrefillKernel<D, W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(L::kBytes));
    if (e != cudaSuccess) cuda::NoteLaunchError(e, "attention (flash shared memory limit)");
    raised = true;
  }
  const int64_t tiles = p.n_tokens / geo.tokens_per_block + p.n_seqs;
  const int64_t blocks = tiles * p.n_kv_heads * geo.head_chunks;
  FlashPrefillKernel<D, W><<<static_cast<unsigned>(blocks), W * 32, L::kBytes, s>>>(p, geo, tiles);
  TIDE_CUDA_LAUNCHED("attention (flash prefill)");
}

int g_flash_warps = 0;  // SetAttentionCudaFlashWarps; 0 = kFlashWarps

// 8 warps (128 query rows) share each K/V tile between more rows (half the conversion
// work per FLOP of 4 warps) and fit one block per multiprocessor; 4 warps fit two
// blocks, so one block's loads and conversion can overlap the other's products.
constexpr int kFlashWarps = 8;

// True when the tensor-core kernel took the batch: head_dim 64 or 128, 16-byte aligned
// tensors.
bool TryFlash(const AttentionParams& p, cudaStream_t s) {
  auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  if (!aligned(p.q) || !aligned(p.out) || !aligned(p.k_cache) || !aligned(p.v_cache)) return false;
  // TIDE_FLASH_WARPS=4|8 overrides the default for a whole process (benchmarking).
  static const int env_warps = [] {
    const char* e = std::getenv("TIDE_FLASH_WARPS");
    return e != nullptr ? std::atoi(e) : 0;
  }();
  const int warps = g_flash_warps != 0 ? g_flash_warps : env_warps != 0 ? env_warps : kFlashWarps;
  const bool four = warps == 4;
  if (p.head_dim == 64) {
    four ? LaunchFlash<64, 4>(p, s) : LaunchFlash<64, 8>(p, s);
    return true;
  }
  if (p.head_dim == 128) {
    four ? LaunchFlash<128, 4>(p, s) : LaunchFlash<128, 8>(p, s);
    return true;
  }
  return false;
}

// ---- decode: flash-decoding --------------------------------------------------------
//
// Grid (sequence, KV head, chunk). A block of kDecWarps warps takes one chunk of one
// sequence's context for the G query heads of one KV head. The block's threads form
// subgroups of L = head_dim / DPL lanes; a subgroup owns one key at a time (lane i holds
// dims [i*DPL, (i+1)*DPL) of K and V, read as 16-byte vectors: a key's row is one
// contiguous run), scores it against the G queries (partial dots meet in a shuffle tree
// over the L lanes) and folds it into its own online-softmax state; subgroups take keys
// kSub apart, two at a time so that four K/V loads per lane are in flight. The
// subgroups' states then merge in shared memory in subgroup order.
//
// Chunk length depends only on the sequence's own kv_len (ChunkKeys), as does the
// merge order, so a sequence's output is bit-identical alone or batched. With one chunk
// the block writes the output; otherwise it writes (m, l, unnormalised o) per head and
// chunk, and DecodeCombineKernel merges the chunks in chunk order.
//
// A decode batch may contain sequences with no query token (q_len 0) and, in principle,
// one with q_len > 1 next to one with 0; rows are looped over, each with its own causal
// limit, so any batch with n_tokens == n_seqs is computed correctly.

constexpr int kDecWarps = 4;
constexpr int kDecThreads = kDecWarps * 32;
constexpr int kDecMinChunks = 16;  // chunks a long enough sequence is split into
constexpr int kDecMaxChunkKeys = 256;

// Keys per chunk for a sequence of kv_len: about kv_len / min_chunks, a multiple of 32,
// in [32, 256]. So with 16, up to 4096 keys give at most 16 chunks, longer contexts
// kv_len / 256.
__host__ __device__ inline int ChunkKeys(int kv_len, int min_chunks = kDecMinChunks) {
  int c = (kv_len + min_chunks - 1) / min_chunks;
  c = (c + 31) / 32 * 32;
  return c < 32 ? 32 : (c > kDecMaxChunkKeys ? kDecMaxChunkKeys : c);
}

// The grid's chunk dimension: enough for any kv_len <= max_ctx.
inline int MaxChunks(int64_t max_ctx, int min_chunks = kDecMinChunks) {
  const int64_t long_chunks = (max_ctx + kDecMaxChunkKeys - 1) / kDecMaxChunkKeys;
  return static_cast<int>(long_chunks > min_chunks ? long_chunks : min_chunks);
}

template <int G, int DPL>
__global__ void __launch_bounds__(kDecThreads)
    DecodeAttentionKernel(AttentionParams p, int max_chunks, float* __restrict__ part_o, float2* __restrict__ part_ml) {
  extern __shared__ float dsm[];
  const int seq = blockIdx.x, kvh = blockIdx.y, chunk = blockIdx.z;
  const int kv_len = p.kv_len[seq];
  const int ck = ChunkKeys(kv_len);
  const int n_chunks = (kv_len + ck - 1) / ck;
  if (chunk >= n_chunks) return;
  const int q0 = p.q_start[seq], q_len = p.q_start[seq + 1] - q0;
  const int hd = p.head_dim;
  const int L = hd / DPL;  // lanes per key: 1..32, a power of two
  const int n_sub = kDecThreads / L;
  const int sub = threadIdx.x / L, sl = threadIdx.x % L;
  // Subgroups of one warp may walk different numbers of keys, so each shuffles within
  // its own lanes only (xor offsets < L never leave the subgroup).
  const unsigned sub_mask = L == 32 ? 0xffffffffu : ((1u << L) - 1) << (threadIdx.x % 32 / L * L);
  const int group = p.n_heads / p.n_kv_heads;
  const int lo = chunk * ck;
  const int hi = min(lo + ck, kv_len);
  const int32_t* table = p.block_table + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * hd;
  const int64_t col = static_cast<int64_t>(kvh) * hd + sl * DPL;
  // Shared: per subgroup, G heads x (hd accumulators), then G x (m, l).
  float* s_acc = dsm;                                   // [n_sub][G][hd]
  float* s_ml = dsm + static_cast<size_t>(n_sub) * G * hd;  // [n_sub][G][2]

  for (int t = 0; t < q_len; ++t) {
    const int64_t tok = q0 + t;
    const int end = min(hi, kv_len - q_len + t + 1);  // keys [lo, end) are visible to this row
    float q[G][DPL];
#pragma unroll
    for (int h = 0; h < G; ++h) {
      if (h < group) {
        const float* qp = p.q + (tok * p.n_heads + kvh * group + h) * hd + sl * DPL;
#pragma unroll
        for (int d = 0; d < DPL; d += 4) {
          const float4 v = *reinterpret_cast<const float4*>(qp + d);
          q[h][d] = v.x * p.scale, q[h][d + 1] = v.y * p.scale, q[h][d + 2] = v.z * p.scale, q[h][d + 3] = v.w * p.scale;
        }
      } else {
#pragma unroll
        for (int d = 0; d < DPL; ++d) q[h][d] = 0.f;
      }
    }
    float m[G], l[G], acc[G][DPL];
#pragma unroll
    for (int h = 0; h < G; ++h) {
      m[h] = -INFINITY;
      l[h] = 0.f;
#pragma unroll
      for (int d = 0; d < DPL; ++d) acc[h][d] = 0.f;
    }
    auto row_of = [&](int kp) {
      return (static_cast<int64_t>(table[kp / p.block_size]) * p.block_size + kp % p.block_size) * kv_row + col;
    };
    auto fold = [&](const float (&kr)[DPL], const float (&vr)[DPL]) {
#pragma unroll
      for (int h = 0; h < G; ++h) {
        float sc = 0.f;
#pragma unroll
        for (int d = 0; d < DPL; ++d) sc = fmaf(q[h][d], kr[d], sc);
        for (int o = L / 2; o > 0; o >>= 1) sc += __shfl_xor_sync(sub_mask, sc, o);
        const float m_new = fmaxf(m[h], sc);
        const float alpha = expf(m[h] - m_new);  // 0 on the first key (m = -inf)
        const float pe = expf(sc - m_new);
        l[h] = fmaf(l[h], alpha, pe);
        m[h] = m_new;
#pragma unroll
        for (int d = 0; d < DPL; ++d) acc[h][d] = fmaf(acc[h][d], alpha, pe * vr[d]);
      }
    };
    auto load = [&](int64_t off, float (&kr)[DPL], float (&vr)[DPL]) {
#pragma unroll
      for (int d = 0; d < DPL; d += 4) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(p.k_cache + off + d));
        const float4 b = __ldg(reinterpret_cast<const float4*>(p.v_cache + off + d));
        kr[d] = a.x, kr[d + 1] = a.y, kr[d + 2] = a.z, kr[d + 3] = a.w;
        vr[d] = b.x, vr[d + 1] = b.y, vr[d + 2] = b.z, vr[d + 3] = b.w;
      }
    };
    int kp = lo + sub;
    for (; kp + n_sub < end; kp += 2 * n_sub) {
      float k0[DPL], v0[DPL], k1[DPL], v1[DPL];
      load(row_of(kp), k0, v0);
      load(row_of(kp + n_sub), k1, v1);
      fold(k0, v0);
      fold(k1, v1);
    }
    if (kp < end) {
      float k0[DPL], v0[DPL];
      load(row_of(kp), k0, v0);
      fold(k0, v0);
    }

    // Merge the subgroups' states (subgroup order), one thread per (head, dim).
    __syncthreads();  // the previous row's merge has read shared memory
#pragma unroll
    for (int h = 0; h < G; ++h) {
#pragma unroll
      for (int d = 0; d < DPL; ++d) s_acc[(static_cast<size_t>(sub) * G + h) * hd + sl * DPL + d] = acc[h][d];
      if (sl == 0) {
        s_ml[(sub * G + h) * 2] = m[h];
        s_ml[(sub * G + h) * 2 + 1] = l[h];
      }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < group * hd && i < G * hd; i += kDecThreads) {
      const int h = i / hd, d = i % hd;
      float mm = -INFINITY;
      for (int sg = 0; sg < n_sub; ++sg) mm = fmaxf(mm, s_ml[(sg * G + h) * 2]);
      float ll = 0.f, oo = 0.f;
      if (mm != -INFINITY) {
        for (int sg = 0; sg < n_sub; ++sg) {
          const float w = expf(s_ml[(sg * G + h) * 2] - mm);  // 0 for subgroups with no keys
          ll = fmaf(s_ml[(sg * G + h) * 2 + 1], w, ll);
          oo = fmaf(s_acc[(static_cast<size_t>(sg) * G + h) * hd + d], w, oo);
        }
      }
      const int64_t head = tok * p.n_heads + kvh * group + h;
      if (n_chunks == 1) {
        p.out[head * hd + d] = oo / ll;
      } else {
        const int64_t pc = head * max_chunks + chunk;
        part_o[pc * hd + d] = oo;  // 0 when the chunk has no visible key for this row
        if (d == 0) part_ml[pc] = make_float2(mm, ll);
      }
    }
  }
}

// One block per (query row, head): merges the chunks' states in chunk order.
__global__ void DecodeCombineKernel(AttentionParams p, int min_chunks, int max_chunks, const float* __restrict__ part_o,
                                    const float2* __restrict__ part_ml) {
  const int64_t tok = blockIdx.x;
  const int head = blockIdx.y;
  // The row's sequence: n_tokens == n_seqs, but a sequence may own 0 or several rows.
  int seq = 0;
  while (seq + 1 < p.n_seqs && p.q_start[seq + 1] <= tok) ++seq;
  const int kv_len = p.kv_len[seq];
  const int ck = ChunkKeys(kv_len, min_chunks);
  const int n_chunks = (kv_len + ck - 1) / ck;
  if (n_chunks <= 1) return;  // written directly
  const int64_t base = (tok * p.n_heads + head) * max_chunks;
  float mm = -INFINITY;
  for (int c = 0; c < n_chunks; ++c) mm = fmaxf(mm, part_ml[base + c].x);
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float ll = 0.f, oo = 0.f;
    for (int c = 0; c < n_chunks; ++c) {
      const float2 ml = part_ml[base + c];
      const float w = expf(ml.x - mm);
      ll = fmaf(ml.y, w, ll);
      oo = fmaf(part_o[(base + c) * p.head_dim + d], w, oo);
    }
    p.out[(tok * p.n_heads + head) * p.head_dim + d] = oo / ll;
  }
}

// ---- decode, one warp per chunk: the path for head_dim 64 and 128, groups up to 8 ----
//
// The kernel above keeps two keys per lane in flight and folds every key on its own
// (a 16-lane shuffle reduction and two exponentials per key and head); its blocks live
// for a few loads, then merge through shared memory. On an H100 at batch 64 and 1k
// context it read KV at 1.44 TB/s, under half of what the card reads.
//
// Here one warp owns one chunk (the same ChunkKeys chunks, so the same partials and
// combine) and streams it through its own ring of kWdStages shared-memory tiles of
// kWdTile keys, copied with cp.async kWdStages - 1 tiles ahead of the tile it folds.
// A block is kWdWarps independent warps (the same chunk of kWdWarps consecutive KV heads
// where the head count allows: their rows lie side by side in the cache; otherwise
// consecutive chunks of one KV head) and has no block barrier, so a warp waiting on
// memory never holds the others up, and at two blocks per multiprocessor ~128 KB of
// reads are in flight on each. Per tile:
//   - scores: lane (g, j) takes key j against the query heads of head group g: whole
//     dot products from shared memory (K and q rows padded by 4 floats, so the 8 rows
//     a load instruction touches sit on different banks), no shuffle per key;
//   - one online-softmax step per head: the tile's max and sum over its 8 key lanes;
//   - P.V: lane i owns dims [i * hd/32, (i+1) * hd/32) of every head of the group and
//     reads each V row once.
// Each K and V byte is read from memory once per GQA group. Rows past the visible
// context are zero-filled by the copy, masked to -inf and left out of P.V, so stale
// cache contents are never multiplied. A chunk's arithmetic depends on its own keys
// alone (one warp, a fixed tile order), so outputs stay bit-identical alone or batched.
// On an H100 at batch 64 and 1k context this reads KV at 2.36 TB/s (77% of the measured
// read bandwidth; 2.68 TB/s at 4k), against 1.44 TB/s for the kernel above
// (docs/perf.md).

constexpr int kWdTile = 8;  // keys per tile: 8 key lanes x 4 head groups = one warp

template <int HD, int G, int S>
struct WdLayout {
  static constexpr int kStride = HD + 4;                   // padded K and q rows (floats)
  static constexpr int kStage = kWdTile * (kStride + HD);  // K tile, then V tile
  static constexpr int kQ = S * kStage;                    // [G][kStride] query rows
  static constexpr int kP = kQ + G * kStride;              // [kWdTile][G] probabilities; at the end (m, l)
  static constexpr int kAlpha = kP + kWdTile * G;          // [G] this tile's rescale factors
  static constexpr int kFloats = (kAlpha + G + 3) / 4 * 4;  // per warp, a multiple of 16 bytes
};

template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Loads N consecutive floats (N = 1, 2, 4 or a multiple of 4) from aligned shared or
// global memory in the widest accesses.
template <int N>
__device__ __forceinline__ void LoadVec(const float* src, float (&dst)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      const float4 v = *reinterpret_cast<const float4*>(src + i);
      dst[i] = v.x, dst[i + 1] = v.y, dst[i + 2] = v.z, dst[i + 3] = v.w;
    }
  } else if constexpr (N == 2) {
    const float2 v = *reinterpret_cast<const float2*>(src);
    dst[0] = v.x, dst[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) dst[i] = src[i];
  }
}

template <int N>
__device__ __forceinline__ void StoreVec(float* dst, const float (&src)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) *reinterpret_cast<float4*>(dst + i) = make_float4(src[i], src[i + 1], src[i + 2], src[i + 3]);
  } else if constexpr (N == 2) {
    *reinterpret_cast<float2*>(dst) = make_float2(src[0], src[1]);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) dst[i] = src[i];
  }
}

// Grid (sequence, KV head, chunk / W): warp w of a block takes chunk blockIdx.z * W + w;
// with kHeadsInBlock, grid (sequence, KV head / W, chunk): the warps of a block take W
// consecutive KV heads of one chunk (the same cache rows, side by side).
template <int HD, int G, int S, int W, bool kHeadsInBlock>
__global__ void __launch_bounds__(W * 32)
    DecodeWarpKernel(AttentionParams p, int min_chunks, int max_chunks, float* __restrict__ part_o,
                     float2* __restrict__ part_ml) {
  using Lay = WdLayout<HD, G, S>;
  constexpr int kGroups = G < 4 ? G : 4;   // head groups in the score phase
  constexpr int kHpl = G / kGroups;        // heads per lane in the score phase
  constexpr int kDpl = HD / 32;            // dims per lane in the P.V phase
  constexpr int kPieces = HD / 4;          // 16-byte pieces per K/V row
  constexpr int kRowsPerCopy = 32 / kPieces;  // rows one warp-wide copy instruction covers
  static_assert(kWdTile * kGroups <= 32 && kWdTile % kRowsPerCopy == 0 && HD % 32 == 0);
  extern __shared__ float4 wd_smem4[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* const sw = reinterpret_cast<float*>(wd_smem4) + warp * Lay::kFloats;
  const int seq = blockIdx.x;
  const int kvh = kHeadsInBlock ? blockIdx.y * W + warp : blockIdx.y;
  const int chunk = kHeadsInBlock ? blockIdx.z : blockIdx.z * W + warp;
  const int kv_len = p.kv_len[seq];
  const int ck = ChunkKeys(kv_len, min_chunks);
  const int n_chunks = (kv_len + ck - 1) / ck;
  // The whole warp leaves; nothing here waits for other warps.
  if (chunk >= n_chunks || kvh >= p.n_kv_heads) return;
  const int q0 = p.q_start[seq], q_len = p.q_start[seq + 1] - q0;
  const int group = p.n_heads / p.n_kv_heads;
  const int lo = chunk * ck;
  const int hi = min(lo + ck, kv_len);
  const int bs = p.block_size;
  const int32_t* table = p.block_table + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * HD;
  const int piece = lane % kPieces * 4;  // this lane's floats within a row, for copies
  const float* k_src = p.k_cache + static_cast<int64_t>(kvh) * HD + piece;
  const float* v_src = p.v_cache + static_cast<int64_t>(kvh) * HD + piece;
  // Score-phase role. With G < 4 the lanes past kGroups * kWdTile repeat the first
  // groups' work and write nothing.
  const int j = lane % kWdTile;
  const int g = lane / kWdTile % kGroups;
  const bool writer = lane / kWdTile < kGroups;

  for (int t = 0; t < q_len; ++t) {
    const int64_t tok = q0 + t;
    const int end = min(hi, kv_len - q_len + t + 1);  // keys [lo, end) are visible to this row
    const int n_tiles = end > lo ? (end - lo + kWdTile - 1) / kWdTile : 0;
    __syncwarp();  // the previous row is done with this warp's shared memory
    for (int i = lane; i < G * kPieces; i += 32) {
      const int h = i / kPieces, c = i % kPieces * 4;
      const bool live = h < group;
      const float* src = live ? p.q + (tok * p.n_heads + kvh * group + h) * HD + c : p.q;
      CpAsync16(sw + Lay::kQ + h * Lay::kStride + c, src, live ? 16 : 0);
    }
    // Lane j < kWdTile: the cache row offset of key j of `tile` (0 past the context).
    auto row_of = [&](int tile) -> long long {
      const int kp = lo + tile * kWdTile + lane;
      if (lane >= kWdTile || kp >= end) return 0;
      return (static_cast<long long>(table[kp / bs]) * bs + kp % bs) * kv_row;
    };
    auto issue = [&](int tile, long long my_row) {
      float* sk = sw + (tile % S) * Lay::kStage;
      float* sv = sk + kWdTile * Lay::kStride;
      const int kb = lo + tile * kWdTile;
#pragma unroll
      for (int i = 0; i < kWdTile / kRowsPerCopy; ++i) {
        const int r = i * kRowsPerCopy + lane / kPieces;
        const long long off = __shfl_sync(0xffffffffu, my_row, r);
        const int bytes = kb + r < end ? 16 : 0;
        CpAsync16(sk + r * Lay::kStride + piece, k_src + off, bytes);
        CpAsync16(sv + r * HD + piece, v_src + off, bytes);
      }
    };
    // Commit groups: q with tile 0, then one per tile (empty past the end, so that the
    // count waited for stays the same).
    long long rows[S];
#pragma unroll
    for (int st = 0; st < S; ++st) rows[st] = row_of(st);
#pragma unroll
    for (int st = 0; st < S - 1; ++st) {
      if (st < n_tiles) issue(st, rows[st]);
      CpAsyncCommit();
    }
    long long next_row = rows[S - 1];  // block-table entries are read a tile ahead

    float m[kHpl], l[kHpl], acc[G][kDpl];
#pragma unroll
    for (int hh = 0; hh < kHpl; ++hh) m[hh] = -INFINITY, l[hh] = 0.f;
#pragma unroll
    for (int h = 0; h < G; ++h)
#pragma unroll
      for (int d = 0; d < kDpl; ++d) acc[h][d] = 0.f;

    for (int tile = 0; tile < n_tiles; ++tile) {
      CpAsyncWait<S - 2>();  // this lane's copies of `tile` have landed
      __syncwarp();          // and every lane's; the buffer refilled next is no longer read
      if (tile + S - 1 < n_tiles) issue(tile + S - 1, next_row);
      CpAsyncCommit();
      next_row = row_of(tile + S);
      const float* sk = sw + (tile % S) * Lay::kStage;
      const float* sv = sk + kWdTile * Lay::kStride;
      const int n_valid = min(kWdTile, end - (lo + tile * kWdTile));

      // Scores of key j against the group's heads, four partial sums each.
      float4 a[kHpl];
#pragma unroll
      for (int hh = 0; hh < kHpl; ++hh) a[hh] = make_float4(0.f, 0.f, 0.f, 0.f);
      const float4* kr = reinterpret_cast<const float4*>(sk + j * Lay::kStride);
      const float4* qr = reinterpret_cast<const float4*>(sw + Lay::kQ + g * kHpl * Lay::kStride);
#pragma unroll
      for (int c = 0; c < kPieces; ++c) {
        const float4 kv = kr[c];
#pragma unroll
        for (int hh = 0; hh < kHpl; ++hh) {
          const float4 qv = qr[hh * (Lay::kStride / 4) + c];
          a[hh].x = fmaf(qv.x, kv.x, a[hh].x);
          a[hh].y = fmaf(qv.y, kv.y, a[hh].y);
          a[hh].z = fmaf(qv.z, kv.z, a[hh].z);
          a[hh].w = fmaf(qv.w, kv.w, a[hh].w);
        }
      }
      const bool live = j < n_valid;
#pragma unroll
      for (int hh = 0; hh < kHpl; ++hh) {
        const float sc = live ? ((a[hh].x + a[hh].y) + (a[hh].z + a[hh].w)) * p.scale : -INFINITY;
        float mx = sc;
#pragma unroll
        for (int o = 1; o < kWdTile; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float m_new = fmaxf(m[hh], mx);    // finite: the tile has a visible key
        const float alpha = expf(m[hh] - m_new);  // 0 on the first tile (m = -inf)
        const float pe = live ? expf(sc - m_new) : 0.f;
        float sum = pe;
#pragma unroll
        for (int o = 1; o < kWdTile; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        l[hh] = fmaf(l[hh], alpha, sum);
        m[hh] = m_new;
        if (writer) {
          sw[Lay::kP + j * G + g * kHpl + hh] = pe;
          if (j == 0) sw[Lay::kAlpha + g * kHpl + hh] = alpha;
        }
      }
      __syncwarp();

      // P.V over the tile's visible keys.
      float al[G];
      LoadVec<G>(sw + Lay::kAlpha, al);
#pragma unroll
      for (int h = 0; h < G; ++h)
#pragma unroll
        for (int d = 0; d < kDpl; ++d) acc[h][d] *= al[h];
#pragma unroll
      for (int jj = 0; jj < kWdTile; ++jj) {
        if (jj < n_valid) {
          float v[kDpl], pw[G];
          LoadVec<kDpl>(sv + jj * HD + lane * kDpl, v);
          LoadVec<G>(sw + Lay::kP + jj * G, pw);
#pragma unroll
          for (int h = 0; h < G; ++h)
#pragma unroll
            for (int d = 0; d < kDpl; ++d) acc[h][d] = fmaf(pw[h], v[d], acc[h][d]);
        }
      }
    }
    CpAsyncWaitAll();  // nothing of this row is still landing when the next row starts

    // (m, l) of every head to every lane, through shared memory.
    __syncwarp();
    if (writer && j == 0) {
#pragma unroll
      for (int hh = 0; hh < kHpl; ++hh) {
        sw[Lay::kP + 2 * (g * kHpl + hh)] = m[hh];
        sw[Lay::kP + 2 * (g * kHpl + hh) + 1] = l[hh];
      }
    }
    __syncwarp();
#pragma unroll
    for (int h = 0; h < G; ++h) {
      if (h >= group) continue;
      const float mh = sw[Lay::kP + 2 * h], lh = sw[Lay::kP + 2 * h + 1];
      const int64_t head = tok * p.n_heads + kvh * group + h;
      if (n_chunks == 1) {
        float o[kDpl];
#pragma unroll
        for (int d = 0; d < kDpl; ++d) o[d] = acc[h][d] / lh;
        StoreVec<kDpl>(p.out + head * HD + lane * kDpl, o);
      } else {
        const int64_t pc = head * max_chunks + chunk;
        StoreVec<kDpl>(part_o + pc * HD + lane * kDpl, acc[h]);  // 0 when the chunk has no visible key
        if (lane == 0) part_ml[pc] = make_float2(mh, lh);
      }
    }
  }
}

constexpr int kWdStages = 3;  // tiles per warp ring: two in flight while one is folded
constexpr int kWdWarps = 4;   // warps per block: two blocks (27 KB a warp) per multiprocessor
// Chunks are at least 32 keys, so up to 1024 keys this makes 32-key chunks, up to 8192
// keys at most 32 chunks, longer contexts 256-key chunks: a warp folds a chunk alone, so
// small batches need more of them than the register-fed kernel's 16 to fill the card
// (batch 1 at 1k context on an H100: 17.7 against 22.7 us with 16), while batch 64 is
// the same within noise.
constexpr int kWdMinChunks = 32;

template <int HD, int G, int S, int W, bool kHeadsInBlock = false>
void LaunchDecodeWarp(const AttentionParams& p, cudaStream_t s, int min_chunks) {
  const int max_ctx = p.max_blocks_per_seq * p.block_size;
  const int max_chunks = MaxChunks(max_ctx, min_chunks);
  const int64_t rows = p.n_tokens * p.n_heads * max_chunks;
  auto* part = static_cast<float*>(cuda::Scratch(rows * (HD + 2) * 4, cuda::ScratchSlot::kAttention));
  float* part_o = part;
  auto* part_ml = reinterpret_cast<float2*>(part + rows * HD);  // 8-byte aligned: HD is even
  const size_t smem = sizeof(float) * WdLayout<HD, G, S>::kFloats * W;
  static bool raised = false;
  if (!raised) {
    cudaError_t e = cudaFuncSetAttribute(DecodeWarpKernel<HD, G, S, W, kHeadsInBlock>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    // All of the unified L1/shared array as shared memory: the copies bypass L1.
    if (e == cudaSuccess)
      e = cudaFuncSetAttribute(DecodeWarpKernel<HD, G, S, W, kHeadsInBlock>,
                               cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
    if (e != cudaSuccess) cuda::NoteLaunchError(e, "attention decode (shared memory limit)");
    raised = true;
  }
  const dim3 grid = kHeadsInBlock ? dim3(static_cast<unsigned>(p.n_seqs), static_cast<unsigned>((p.n_kv_heads + W - 1) / W),
                                         static_cast<unsigned>(max_chunks))
                                  : dim3(static_cast<unsigned>(p.n_seqs), static_cast<unsigned>(p.n_kv_heads),
                                         static_cast<unsigned>((max_chunks + W - 1) / W));
  DecodeWarpKernel<HD, G, S, W, kHeadsInBlock><<<grid, W * 32, smem, s>>>(p, min_chunks, max_chunks, part_o, part_ml);
  TIDE_CUDA_LAUNCHED("attention (decode, warp per chunk)");
  if (max_ctx > 32) {  // otherwise every sequence fits one chunk
    const dim3 cgrid(static_cast<unsigned>(p.n_tokens), static_cast<unsigned>(p.n_heads));
    DecodeCombineKernel<<<cgrid, HD, 0, s>>>(p, min_chunks, max_chunks, part_o, part_ml);
    TIDE_CUDA_LAUNCHED("attention (decode combine)");
  }
}

// Benchmarking knobs, read once per process: TIDE_DECODE_ATTN=0 sends decode batches to
// the register-fed kernel above, 2 makes the warp kernel's blocks span chunks whatever
// the head count; for head_dim 128 and group 4, 3 selects 4-stage rings and 2 warps per
// block, 4 3-stage rings and 2 warps per block (blocks spanning KV heads);
// TIDE_DECODE_MIN_CHUNKS=n chunks the warp kernel's contexts into at least n pieces
// (default kWdMinChunks).
struct DecodeKnobs {
  int kernel = 1;
  int min_chunks = kWdMinChunks;
};

const DecodeKnobs& GetDecodeKnobs() {
  static const DecodeKnobs knobs = [] {
    DecodeKnobs k;
    if (const char* e = std::getenv("TIDE_DECODE_ATTN")) k.kernel = std::atoi(e);
    if (const char* e = std::getenv("TIDE_DECODE_MIN_CHUNKS")) {
      const int n = std::atoi(e);
      if (n >= 1 && n <= 256) k.min_chunks = n;
    }
    return k;
  }();
  return knobs;
}

template <int HD, int G>
void LaunchDecodeWarpDefault(const AttentionParams& p, cudaStream_t s, const DecodeKnobs& knobs) {
  if (knobs.kernel != 2 && p.n_kv_heads % kWdWarps == 0) {
    LaunchDecodeWarp<HD, G, kWdStages, kWdWarps, true>(p, s, knobs.min_chunks);
  } else {
    LaunchDecodeWarp<HD, G, kWdStages, kWdWarps, false>(p, s, knobs.min_chunks);
  }
}

// True when the warp kernel took the batch: head_dim 64 or 128, a GQA group of at most
// 8, 16-byte aligned tensors.
bool TryDecodeWarp(const AttentionParams& p, cudaStream_t s) {
  const DecodeKnobs& knobs = GetDecodeKnobs();
  if (knobs.kernel == 0) return false;
  auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  if (!aligned(p.q) || !aligned(p.out) || !aligned(p.k_cache) || !aligned(p.v_cache)) return false;
  const int group = p.n_heads / p.n_kv_heads;
  const int g = group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : group <= 8 ? 8 : 0;
  if (p.head_dim == 128) {
    if (g == 4 && knobs.kernel == 3) {
      LaunchDecodeWarp<128, 4, 4, 2, true>(p, s, knobs.min_chunks);
      return true;
    }
    if (g == 4 && knobs.kernel == 4) {
      LaunchDecodeWarp<128, 4, 3, 2, true>(p, s, knobs.min_chunks);
      return true;
    }
    switch (g) {
      case 1: LaunchDecodeWarpDefault<128, 1>(p, s, knobs); return true;
      case 2: LaunchDecodeWarpDefault<128, 2>(p, s, knobs); return true;
      case 4: LaunchDecodeWarpDefault<128, 4>(p, s, knobs); return true;
      case 8: LaunchDecodeWarpDefault<128, 8>(p, s, knobs); return true;
      default: return false;
    }
  }
  if (p.head_dim == 64) {
    switch (g) {
      case 1: LaunchDecodeWarpDefault<64, 1>(p, s, knobs); return true;
      case 2: LaunchDecodeWarpDefault<64, 2>(p, s, knobs); return true;
      case 4: LaunchDecodeWarpDefault<64, 4>(p, s, knobs); return true;
      case 8: LaunchDecodeWarpDefault<64, 8>(p, s, knobs); return true;
      default: return false;
    }
  }
  return false;
}

template <int G, int DPL>
void LaunchDecode(const AttentionParams& p, cudaStream_t s) {
  const int max_ctx = p.max_blocks_per_seq * p.block_size;
  const int max_chunks = MaxChunks(max_ctx);
  const int64_t rows = p.n_tokens * p.n_heads * max_chunks;
  auto* part = static_cast<float*>(cuda::Scratch(rows * (p.head_dim + 2) * 4, cuda::ScratchSlot::kAttention));
  float* part_o = part;
  auto* part_ml = reinterpret_cast<float2*>(part + rows * p.head_dim);  // 8-byte aligned: rows * hd is even
  const int n_sub = kDecThreads / (p.head_dim / DPL);
  const size_t smem = static_cast<size_t>(n_sub) * G * (p.head_dim + 2) * 4;
  static bool raised = false;
  if (!raised) {
    const cudaError_t e = cudaFuncSetAttribute(DecodeAttentionKernel<G, DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               64 << 10);
    if (e != cudaSuccess) cuda::NoteLaunchError(e, "attention decode (shared memory limit)");
    raised = true;
  }
  const dim3 grid(static_cast<unsigned>(p.n_seqs), static_cast<unsigned>(p.n_kv_heads), static_cast<unsigned>(max_chunks));
  DecodeAttentionKernel<G, DPL><<<grid, kDecThreads, smem, s>>>(p, max_chunks, part_o, part_ml);
  TIDE_CUDA_LAUNCHED("attention (decode)");
  if (max_ctx > 32) {  // otherwise every sequence fits one chunk
    const dim3 cgrid(static_cast<unsigned>(p.n_tokens), static_cast<unsigned>(p.n_heads));
    DecodeCombineKernel<<<cgrid, p.head_dim < 128 ? p.head_dim : 128, 0, s>>>(p, kDecMinChunks, max_chunks, part_o,
                                                                               part_ml);
    TIDE_CUDA_LAUNCHED("attention (decode combine)");
  }
}

// True when a decode path took the batch: one query row per sequence on average
// (n_tokens == n_seqs), a head_dim that splits into 16-byte lane slices, and a GQA group
// of at most 8 query heads per KV head; the warp kernel first, the register-fed one for
// the head sizes it does not take.
bool TryDecode(const AttentionParams& p, cudaStream_t s) {
  if (p.n_tokens != p.n_seqs || p.head_dim % 4 != 0) return false;
  if (TryDecodeWarp(p, s)) return true;
  const int group = p.n_heads / p.n_kv_heads;
  const int g = group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : group <= 8 ? 8 : 0;
  if (g == 0) return false;
  // Dims per lane: 16 keeps a key on 8 lanes; more heads share the lane's registers, so
  // fewer dims each (G x DPL <= 32 accumulators).
  int dpl = 32 / g < 16 ? 32 / g : 16;
  if (dpl < 4) dpl = 4;
  while (p.head_dim / dpl > 32) dpl *= 2;  // at most a warp per key
  if (dpl > 16 || p.head_dim % dpl != 0) return false;
  const int lanes = p.head_dim / dpl;
  if (lanes < 1 || (lanes & (lanes - 1)) != 0) return false;
#define TIDE_DECODE_CASE(G_, D_) \
  if (g == G_ && dpl == D_) {    \
    LaunchDecode<G_, D_>(p, s);  \
    return true;                 \
  }
  TIDE_DECODE_CASE(1, 16)
  TIDE_DECODE_CASE(2, 16)
  TIDE_DECODE_CASE(4, 8)
  TIDE_DECODE_CASE(4, 16)
  TIDE_DECODE_CASE(8, 4)
  TIDE_DECODE_CASE(8, 8)
#undef TIDE_DECODE_CASE
  return false;
}

}  // namespace

void SetAttentionCudaFlashWarps(int warps) { g_flash_warps = warps; }

void AttentionCuda(const AttentionParams& p, void* stream, Precision precision) {
  if (p.n_tokens == 0) return;
  cudaStream_t s = cuda::AsStream(stream);
  if (TryDecode(p, s)) return;
  if (precision != Precision::kExact && TryFlash(p, s)) return;
  const int dl = (p.head_dim + 31) / 32;
  if (dl <= 1) {
    Launch<1>(p, s);
  } else if (dl <= 2) {
    Launch<2>(p, s);
  } else if (dl <= 4) {
    Launch<4>(p, s);
  } else if (dl <= 8) {
    Launch<8>(p, s);
  } else {
    Launch<16>(p, s);
  }
}

}  // namespace tide
