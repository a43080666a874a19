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
// Decode batches (one query token per sequence, n_tokens == n_seqs) take a separate
// flash-decoding path, below: the context is split into chunks handled by different
// blocks, and a combine kernel merges the chunks' softmax states.
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

// Keys per chunk for a sequence of kv_len: about kv_len / 16, a multiple of 32, in
// [32, 256]. So up to 4096 keys give at most 16 chunks, longer contexts kv_len / 256.
__host__ __device__ inline int ChunkKeys(int kv_len) {
  int c = (kv_len + kDecMinChunks - 1) / kDecMinChunks;
  c = (c + 31) / 32 * 32;
  return c < 32 ? 32 : (c > kDecMaxChunkKeys ? kDecMaxChunkKeys : c);
}

// The grid's chunk dimension: enough for any kv_len <= max_ctx.
inline int MaxChunks(int64_t max_ctx) {
  const int64_t long_chunks = (max_ctx + kDecMaxChunkKeys - 1) / kDecMaxChunkKeys;
  return static_cast<int>(long_chunks > kDecMinChunks ? long_chunks : kDecMinChunks);
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
__global__ void DecodeCombineKernel(AttentionParams p, int max_chunks, const float* __restrict__ part_o,
                                    const float2* __restrict__ part_ml) {
  const int64_t tok = blockIdx.x;
  const int head = blockIdx.y;
  // The row's sequence: n_tokens == n_seqs, but a sequence may own 0 or several rows.
  int seq = 0;
  while (seq + 1 < p.n_seqs && p.q_start[seq + 1] <= tok) ++seq;
  const int kv_len = p.kv_len[seq];
  const int ck = ChunkKeys(kv_len);
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
    DecodeCombineKernel<<<cgrid, p.head_dim < 128 ? p.head_dim : 128, 0, s>>>(p, max_chunks, part_o, part_ml);
    TIDE_CUDA_LAUNCHED("attention (decode combine)");
  }
}

// True when the decode path took the batch: one query row per sequence on average
// (n_tokens == n_seqs), a head_dim that splits into 16-byte lane slices, and a GQA group
// of at most 8 query heads per KV head.
bool TryDecode(const AttentionParams& p, cudaStream_t s) {
  if (p.n_tokens != p.n_seqs || p.head_dim % 4 != 0) return false;
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

void AttentionCuda(const AttentionParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  cudaStream_t s = cuda::AsStream(stream);
  if (TryDecode(p, s)) return;
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
