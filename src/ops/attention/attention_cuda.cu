// Paged attention on CUDA: a FlashAttention-style kernel for any mix of prefill chunks
// and decode tokens, f32 throughout.
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
// Decode with long contexts gets one block per (sequence, KV head): correct, but it
// leaves most SMs idle at small batch; a split-K (flash-decoding) pass is the next step.
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

}  // namespace

void AttentionCuda(const AttentionParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  cudaStream_t s = cuda::AsStream(stream);
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
