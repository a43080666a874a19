// moe_experts on CUDA, all on the device, per chunk of up to kMoeExpertsChunkTokens tokens:
//
// 1. GroupKernel (one block): per-expert counts of the chunk's S = tokens * top_k slots,
//    their exclusive scan (each expert's group of rows), the active experts in id order,
//    the tile list of the tiled GEMM, and a stable permutation of the slots grouped by
//    expert (token order within a group).
// 2. gate/up: h[row] = silu(gate_e x) * up_e x for every grouped row, x read in place
//    from the token's row (no gather copy).
// 3. down: y[row] = down_e h[row].
// 4. CombineKernel: out[t] = sum over t's experts in id order of w * y[row], then
//    + sigmoid(shared_gate[t]) * shared_y[t].
//
// Grids depend on n_tokens alone (never on device-side counts), so a step can be captured
// in a CUDA graph: a GEMM grid spans the most groups or tiles the chunk could need and a
// block whose group or tile does not exist exits at once.
//
// That is the device path. The matmul path (moe_experts.cc, for large groups) reuses 1
// and 4 and replaces 2-3: GatherKernel copies the tokens' rows into grouped order, the
// group sizes go to the host, each expert's gate, up and down run through the matmul op,
// and SiluMulKernel joins gate and up between them.
//
// Steps 2-3 have two forms. Up to kMoeExpertsGemvMaxTokens tokens (decode): GEMV kernels,
// grid (output-row blocks, active-expert index); each warp streams one weight row (gate
// and up rows together) and dots it with min(tokens, 8) of the group's rows per pass (a
// larger group passes again over the row it just read, so from cache), in f32 with
// 16-byte weight loads; lane l owns the 8-element columns l, l + 32, ... and the lanes
// meet in a fixed shuffle tree. Larger batches: a 64x64 f32 SIMT tiled GEMM over the
// tile list (each element one thread's k-ordered FMA chain). Either way a row's result
// does not depend on where in its group it lands, so each token's result depends only on
// its own routing. Accumulation is f32 throughout (bf16 and f16 weights are exact in
// f32). Neither form uses the tensor cores yet: groups of many rows (Mixtral-like, 8
// experts, from ~32 tokens) and prefill are bound by the f32 FMA pipes.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/kernel_util.cuh"
#include "ops/moe_experts/moe_experts.h"
#include "ops/moe_experts/moe_experts_workspace.h"

namespace tide {
namespace {

using moe_experts::kTileM;
using moe_experts::Layout;

constexpr int kMaxExperts = 512;  // as moe_route
constexpr int kGroupThreads = 1024;
constexpr int kGroupWarps = kGroupThreads / 32;

// Exclusive scan of one int per thread over the block; `tmp` is 32 ints of shared memory.
// Every thread of the block must call it.
__device__ int BlockExclusiveScan(int v, int* tmp) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  if (lane == 31) tmp[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const int t = lane < static_cast<int>(blockDim.x / 32) ? tmp[lane] : 0;
    int ti = t;
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(0xffffffffu, ti, o);
      if (lane >= o) ti += n;
    }
    tmp[lane] = ti - t;
  }
  __syncthreads();
  const int out = incl - v + tmp[warp];
  __syncthreads();  // tmp is reused by the next scan
  return out;
}

__global__ void __launch_bounds__(kGroupThreads)
    GroupKernel(const int32_t* __restrict__ ids, int slots, int n_experts, int32_t* __restrict__ offsets,
                int32_t* __restrict__ header, int32_t* __restrict__ sorted_slot, int32_t* __restrict__ row_of_slot,
                int32_t* __restrict__ active, int32_t* __restrict__ tile_expert, int32_t* __restrict__ tile_row0) {
  __shared__ int count[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  __shared__ int tmp[32];
  // Per warp of the current 1024 slots: how many go to each expert, then the prefix over
  // warps (at most 1024, so 16 bits).
  __shared__ uint16_t warp_count[kGroupWarps][kMaxExperts];
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  for (int e = tid; e < n_experts; e += kGroupThreads) count[e] = 0;
  __syncthreads();
  for (int s = tid; s < slots; s += kGroupThreads) atomicAdd(&count[ids[s]], 1);
  __syncthreads();

  const int n = tid < n_experts ? count[tid] : 0;
  const int is_active = n > 0 ? 1 : 0;
  const int tiles = static_cast<int>((n + kTileM - 1) / kTileM);
  const int off = BlockExclusiveScan(n, tmp);
  const int active_at = BlockExclusiveScan(is_active, tmp);
  const int tile_at = BlockExclusiveScan(tiles, tmp);
  if (tid < n_experts) {
    offsets[tid] = off;
    cursor[tid] = off;
    if (is_active) active[active_at] = tid;
    for (int i = 0; i < tiles; ++i) {
      tile_expert[tile_at + i] = tid;
      tile_row0[tile_at + i] = off + i * static_cast<int>(kTileM);
    }
    if (tid == n_experts - 1) {
      offsets[n_experts] = off + n;
      header[0] = active_at + is_active;
      header[1] = tile_at + tiles;
    }
  }
  __syncthreads();

  // Stable placement, 1024 slots at a time: a slot's row is its expert's cursor + the
  // slots of that expert in earlier warps + those in earlier lanes of its own warp.
  const unsigned lanes_below = (1u << lane) - 1u;
  for (int base = 0; base < slots; base += kGroupThreads) {
    for (int i = tid; i < kGroupWarps * n_experts; i += kGroupThreads) warp_count[i / n_experts][i % n_experts] = 0;
    __syncthreads();
    const int s = base + tid;
    const int e = s < slots ? ids[s] : -1;
    const unsigned same = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(same & lanes_below);
    if (e >= 0 && rank == 0) warp_count[warp][e] = static_cast<uint16_t>(__popc(same));
    __syncthreads();
    int total = 0;
    if (tid < n_experts) {
      for (int w = 0; w < kGroupWarps; ++w) {
        const int c = warp_count[w][tid];
        warp_count[w][tid] = static_cast<uint16_t>(total);
        total += c;
      }
    }
    __syncthreads();
    if (e >= 0) {
      const int row = cursor[e] + warp_count[warp][e] + rank;
      sorted_slot[row] = s;
      row_of_slot[s] = row;
    }
    __syncthreads();
    if (tid < n_experts) cursor[tid] += total;
    __syncthreads();
  }
}

__device__ __forceinline__ float Silu(float g) { return g / (1.f + expf(-g)); }

// 8 consecutive weights as f32 (16-byte aligned).
template <typename W>
__device__ __forceinline__ void Load8(const W* p, float* out) {
  if constexpr (sizeof(W) == 4) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p));
    const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
  } else {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    const W* h = reinterpret_cast<const W*>(&v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = cuda::ToF32<W>(h[i]);
  }
}

__device__ __forceinline__ void LoadX8(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *(reinterpret_cast<const float4*>(p) + 1);
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}

constexpr int kGemvWarps = 8;

struct GemmArgs {
  const void* const* table;  // [3, n_experts]: gate, up, down
  int n_experts, top_k;
  const float* x;  // gate/up: the tokens' rows [tokens, hidden]; down: h [S, inter]
  const int32_t* offsets;
  const int32_t* header;
  const int32_t* active;
  const int32_t* sorted_slot;
  const int32_t* tile_expert;
  const int32_t* tile_row0;
  float* out;  // gate/up: h [S, inter]; down: y [S, hidden]
  int n, k;    // output columns, reduction length
};

// The A-row of grouped row r: the token's row of x (gate/up) or row r of h (down).
template <bool kGateUp>
__device__ __forceinline__ const float* RowOf(const GemmArgs& a, int r) {
  if constexpr (kGateUp) return a.x + static_cast<int64_t>(a.sorted_slot[r] / a.top_k) * a.k;
  return a.x + static_cast<int64_t>(r) * a.k;
}

// R: rows of the group per pass over the weight rows (a token adds at most one row to an
// expert's group, so min(tokens, 8) suffices). With few rows each lane issues U 16-byte
// loads per matrix before their first use, so enough bytes are in flight; the per-lane
// order of the FMAs (chunks ascending) is the same for every R and U, so a row's result
// does not depend on them.
template <typename W, bool kGateUp, int R>
__global__ void __launch_bounds__(kGemvWarps * 32) GemvKernel(GemmArgs a) {
  constexpr int U = R <= 2 ? 4 : R <= 4 ? 2 : 1;
  if (static_cast<int>(blockIdx.y) >= a.header[0]) return;
  const int e = a.active[blockIdx.y];
  const int r0 = a.offsets[e], r1 = a.offsets[e + 1];
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int col = static_cast<int>(blockIdx.x) * kGemvWarps + static_cast<int>(threadIdx.x) / 32;
  if (col >= a.n) return;
  const int64_t k = a.k;
  const W* w0 = static_cast<const W*>(a.table[(kGateUp ? 0 : 2) * a.n_experts + e]) + col * k;
  const W* w1 = kGateUp ? static_cast<const W*>(a.table[a.n_experts + e]) + col * k : w0;
  const bool vec = k % 8 == 0 && reinterpret_cast<uintptr_t>(w0) % 16 == 0 && reinterpret_cast<uintptr_t>(w1) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  const int64_t k_vec = vec ? k : 0;
  for (int rb = r0; rb < r1; rb += R) {
    const int m = min(R, r1 - rb);
    const float* xr[R];
#pragma unroll
    for (int i = 0; i < R; ++i) xr[i] = RowOf<kGateUp>(a, rb + min(i, m - 1));
    float acc0[R] = {}, acc1[R] = {};
    for (int64_t c0 = int64_t{lane} * 8; c0 < k_vec; c0 += 32 * 8 * U) {
      float wa[U][8], wb[U][8];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t c = c0 + u * 32 * 8;
        if (c >= k_vec) continue;
        Load8<W>(w0 + c, wa[u]);
        if constexpr (kGateUp) Load8<W>(w1 + c, wb[u]);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t c = c0 + u * 32 * 8;
        if (c >= k_vec) continue;
#pragma unroll
        for (int i = 0; i < R; ++i) {
          if (i >= m) continue;
          float xv[8];
          LoadX8(xr[i] + c, xv);
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            acc0[i] = fmaf(wa[u][j], xv[j], acc0[i]);
            if constexpr (kGateUp) acc1[i] = fmaf(wb[u][j], xv[j], acc1[i]);
          }
        }
      }
    }
    for (int64_t c = k_vec + lane; c < k; c += 32) {  // rows without 16-byte alignment
      const float wa = cuda::ToF32<W>(w0[c]);
      const float wb = kGateUp ? cuda::ToF32<W>(w1[c]) : 0.f;
#pragma unroll
      for (int i = 0; i < R; ++i) {
        if (i >= m) continue;
        acc0[i] = fmaf(wa, xr[i][c], acc0[i]);
        if constexpr (kGateUp) acc1[i] = fmaf(wb, xr[i][c], acc1[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < R; ++i) {
      if (i >= m) continue;
      const float g = cuda::WarpSum(acc0[i]);
      const float u = kGateUp ? cuda::WarpSum(acc1[i]) : 0.f;
      if (lane == 0) a.out[static_cast<int64_t>(rb + i) * a.n + col] = kGateUp ? Silu(g) * u : g;
    }
  }
}

constexpr int kTileN = 64, kTileK = 16, kTileThreads = 256;
static_assert(kTileM == 64, "the tile kernel's thread layout assumes 64-row tiles");

// One 64x64 output tile of one expert's group: 16x16 threads, 4x4 elements each.
template <typename W, bool kGateUp>
__global__ void __launch_bounds__(kTileThreads) TileKernel(GemmArgs a) {
  if (static_cast<int>(blockIdx.y) >= a.header[1]) return;
  const int e = a.tile_expert[blockIdx.y];
  const int row0 = a.tile_row0[blockIdx.y];
  const int m = min(static_cast<int>(kTileM), a.offsets[e + 1] - row0);
  const int col0 = static_cast<int>(blockIdx.x) * kTileN;
  const int64_t k = a.k;
  const W* w0 = static_cast<const W*>(a.table[(kGateUp ? 0 : 2) * a.n_experts + e]);
  const W* w1 = kGateUp ? static_cast<const W*>(a.table[a.n_experts + e]) : w0;
  __shared__ float xs[kTileK][kTileM + 4];
  __shared__ float ws0[kTileK][kTileN + 4];
  __shared__ float ws1[kGateUp ? kTileK : 1][kTileN + 4];
  __shared__ const float* rows[kTileM];
  const int tid = static_cast<int>(threadIdx.x);
  if (tid < kTileM) rows[tid] = tid < m ? RowOf<kGateUp>(a, row0 + tid) : nullptr;
  __syncthreads();
  const int tx = tid % 16, ty = tid / 16;
  float acc0[4][4] = {}, acc1[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    for (int i = tid; i < kTileM * kTileK; i += kTileThreads) {
      const int r = i / kTileK, c = i % kTileK;
      xs[c][r] = rows[r] != nullptr && k0 + c < k ? rows[r][k0 + c] : 0.f;
    }
    for (int i = tid; i < kTileN * kTileK; i += kTileThreads) {
      const int n = i / kTileK, c = i % kTileK;
      const bool in = col0 + n < a.n && k0 + c < k;
      const int64_t at = static_cast<int64_t>(col0 + n) * k + k0 + c;
      ws0[c][n] = in ? cuda::ToF32<W>(w0[at]) : 0.f;
      if constexpr (kGateUp) ws1[c][n] = in ? cuda::ToF32<W>(w1[at]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kTileK; ++c) {
      float xv[4], wa[4], wb[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        xv[i] = xs[c][ty * 4 + i];
        wa[i] = ws0[c][tx * 4 + i];
        if constexpr (kGateUp) wb[i] = ws1[c][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          acc0[i][j] = fmaf(xv[i], wa[j], acc0[i][j]);
          if constexpr (kGateUp) acc1[i][j] = fmaf(xv[i], wb[j], acc1[i][j]);
        }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty * 4 + i;
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = col0 + tx * 4 + j;
      if (n >= a.n) continue;
      a.out[static_cast<int64_t>(row0 + r) * a.n + n] = kGateUp ? Silu(acc0[i][j]) * acc1[i][j] : acc0[i][j];
    }
  }
}

// One block per token: its experts sorted by id, then the weighted sum, product and sum
// rounded separately as the add kernel does.
__global__ void CombineKernel(const int32_t* __restrict__ ids, const float* __restrict__ weights,
                              const int32_t* __restrict__ row_of_slot, const float* __restrict__ y,
                              const float* __restrict__ shared_y, const float* __restrict__ shared_gate,
                              float* __restrict__ out, int top_k, int64_t hidden) {
  __shared__ int32_t row[kMoeExpertsMaxTopK];
  __shared__ float wt[kMoeExpertsMaxTopK];
  const int64_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    int32_t id[kMoeExpertsMaxTopK];
    for (int j = 0; j < top_k; ++j) {
      const int64_t s = t * top_k + j;
      int i = j;
      for (; i > 0 && id[i - 1] > ids[s]; --i) {
        id[i] = id[i - 1];
        row[i] = row[i - 1];
        wt[i] = wt[i - 1];
      }
      id[i] = ids[s];
      row[i] = row_of_slot[s];
      wt[i] = weights[s];
    }
  }
  __syncthreads();
  const float s = shared_y != nullptr ? 1.f / (1.f + expf(-shared_gate[t])) : 0.f;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < top_k; ++j) acc = __fadd_rn(acc, __fmul_rn(wt[j], y[static_cast<int64_t>(row[j]) * hidden + c]));
    if (shared_y != nullptr) acc = __fadd_rn(acc, __fmul_rn(s, shared_y[t * hidden + c]));
    out[t * hidden + c] = acc;
  }
}

template <typename W, int R>
void LaunchGemvs(const GemmArgs& gate_up, const GemmArgs& down, const Layout& l, cudaStream_t st) {
  const dim3 block(kGemvWarps * 32);
  const auto grid = [&](const GemmArgs& g) {
    return dim3(static_cast<unsigned>(cuda::CeilDiv(g.n, kGemvWarps)), static_cast<unsigned>(l.max_active));
  };
  GemvKernel<W, true, R><<<grid(gate_up), block, 0, st>>>(gate_up);
  TIDE_CUDA_LAUNCHED("moe_experts (gate/up gemv)");
  GemvKernel<W, false, R><<<grid(down), block, 0, st>>>(down);
  TIDE_CUDA_LAUNCHED("moe_experts (down gemv)");
}

template <typename W>
void LaunchGemms(const GemmArgs& gate_up, const GemmArgs& down, int64_t tokens, bool gemv, const Layout& l,
                 cudaStream_t st) {
  if (gemv) {
    if (tokens == 1) {
      LaunchGemvs<W, 1>(gate_up, down, l, st);
    } else if (tokens == 2) {
      LaunchGemvs<W, 2>(gate_up, down, l, st);
    } else if (tokens <= 4) {
      LaunchGemvs<W, 4>(gate_up, down, l, st);
    } else {
      LaunchGemvs<W, 8>(gate_up, down, l, st);
    }
    return;
  }
  const auto grid = [&](const GemmArgs& g) {
    return dim3(static_cast<unsigned>(cuda::CeilDiv(g.n, kTileN)), static_cast<unsigned>(l.max_tiles));
  };
  TileKernel<W, true><<<grid(gate_up), kTileThreads, 0, st>>>(gate_up);
  TIDE_CUDA_LAUNCHED("moe_experts (gate/up tiles)");
  TileKernel<W, false><<<grid(down), kTileThreads, 0, st>>>(down);
  TIDE_CUDA_LAUNCHED("moe_experts (down tiles)");
}

void LaunchGroup(const int32_t* ids, int slots, int n_experts, uint8_t* ws, const Layout& l, cudaStream_t st) {
  auto i32 = [&](int64_t off) { return reinterpret_cast<int32_t*>(ws + off); };
  GroupKernel<<<1, kGroupThreads, 0, st>>>(ids, slots, n_experts, i32(l.offsets), i32(l.header), i32(l.sorted_slot),
                                          i32(l.row_of_slot), i32(l.active), i32(l.tile_expert), i32(l.tile_row0));
  TIDE_CUDA_LAUNCHED("moe_experts (group)");
}

void LaunchCombine(const MoeExpertsParams& p, int64_t t0, int64_t tokens, uint8_t* ws, const Layout& l,
                   cudaStream_t st) {
  CombineKernel<<<static_cast<unsigned>(tokens), 256, 0, st>>>(
      p.expert_ids + t0 * p.top_k, p.weights + t0 * p.top_k, reinterpret_cast<const int32_t*>(ws + l.row_of_slot),
      reinterpret_cast<const float*>(ws + l.y), p.shared_y != nullptr ? p.shared_y + t0 * p.hidden : nullptr,
      p.shared_gate != nullptr ? p.shared_gate + t0 : nullptr, p.out + t0 * p.hidden, p.top_k, p.hidden);
  TIDE_CUDA_LAUNCHED("moe_experts (combine)");
}

// The matmul path: grouped row r = the token row of slot sorted_slot[r], one block per row.
__global__ void GatherKernel(const float* __restrict__ x, const int32_t* __restrict__ sorted_slot, int top_k,
                             int64_t hidden, float* __restrict__ xg) {
  const int64_t r = blockIdx.x;
  const float* src = x + static_cast<int64_t>(sorted_slot[r] / top_k) * hidden;
  float* dst = xg + r * hidden;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) dst[c] = src[c];
}

// The matmul path: h = silu(h) * u elementwise, as the device path's gate/up kernels
// finish each row.
__global__ void SiluMulKernel(float* __restrict__ h, const float* __restrict__ u, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    h[i] = Silu(h[i]) * u[i];
}

}  // namespace

namespace moe_experts {

void CudaGroupGather(const MoeExpertsParams& p, int64_t t0, int64_t tokens, void* stream) {
  TIDE_CHECK(p.n_experts <= kMaxExperts && p.top_k <= kMoeExpertsMaxTopK);
  const Layout l = MakeLayout(p.n_tokens, p.hidden, p.inter, p.n_experts, p.top_k);
  const cudaStream_t st = cuda::AsStream(stream);
  auto* ws = static_cast<uint8_t*>(p.workspace);
  const int slots = static_cast<int>(tokens * p.top_k);
  LaunchGroup(p.expert_ids + t0 * p.top_k, slots, p.n_experts, ws, l, st);
  GatherKernel<<<static_cast<unsigned>(slots), 256, 0, st>>>(p.x + t0 * p.hidden,
                                                             reinterpret_cast<const int32_t*>(ws + l.sorted_slot),
                                                             p.top_k, p.hidden, reinterpret_cast<float*>(ws + l.y));
  TIDE_CUDA_LAUNCHED("moe_experts (gather)");
}

void CudaSiluMul(const MoeExpertsParams& p, int64_t tokens, void* stream) {
  const Layout l = MakeLayout(p.n_tokens, p.hidden, p.inter, p.n_experts, p.top_k);
  auto* ws = static_cast<uint8_t*>(p.workspace);
  const int64_t n = tokens * p.top_k * p.inter;
  const int64_t blocks = std::min<int64_t>(cuda::CeilDiv(n, int64_t{256}), int64_t{cuda::NumSms()} * 16);
  SiluMulKernel<<<static_cast<unsigned>(blocks), 256, 0, cuda::AsStream(stream)>>>(
      reinterpret_cast<float*>(ws + l.h), reinterpret_cast<const float*>(ws + l.u), n);
  TIDE_CUDA_LAUNCHED("moe_experts (silu_mul)");
}

void CudaCombine(const MoeExpertsParams& p, int64_t t0, int64_t tokens, void* stream) {
  const Layout l = MakeLayout(p.n_tokens, p.hidden, p.inter, p.n_experts, p.top_k);
  LaunchCombine(p, t0, tokens, static_cast<uint8_t*>(p.workspace), l, cuda::AsStream(stream));
}

}  // namespace moe_experts

void MoeExpertsCuda(const MoeExpertsParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  TIDE_CHECK(p.n_experts <= kMaxExperts && p.top_k <= kMoeExpertsMaxTopK && p.expert_table != nullptr);
  const Layout l = moe_experts::MakeLayout(p.n_tokens, p.hidden, p.inter, p.n_experts, p.top_k);
  TIDE_CHECK(p.workspace != nullptr && p.workspace_bytes >= l.bytes);
  const cudaStream_t st = cuda::AsStream(stream);
  auto* ws = static_cast<uint8_t*>(p.workspace);
  auto i32 = [&](int64_t off) { return reinterpret_cast<int32_t*>(ws + off); };
  auto* h = reinterpret_cast<float*>(ws + l.h);
  auto* y = reinterpret_cast<float*>(ws + l.y);
  const bool gemv = p.n_tokens <= kMoeExpertsGemvMaxTokens;
  const DType dtype = p.experts[0].gate.dtype;
  for (int64_t t0 = 0; t0 < p.n_tokens; t0 += kMoeExpertsChunkTokens) {
    const int64_t tokens = std::min(kMoeExpertsChunkTokens, p.n_tokens - t0);
    const int slots = static_cast<int>(tokens * p.top_k);
    const int32_t* ids = p.expert_ids + t0 * p.top_k;
    LaunchGroup(ids, slots, p.n_experts, ws, l, st);
    GemmArgs gate_up{p.expert_table,    p.n_experts,       p.top_k,          p.x + t0 * p.hidden,
                     i32(l.offsets),    i32(l.header),     i32(l.active),    i32(l.sorted_slot),
                     i32(l.tile_expert), i32(l.tile_row0), h,                static_cast<int>(p.inter),
                     static_cast<int>(p.hidden)};
    GemmArgs down = gate_up;
    down.x = h;
    down.out = y;
    down.n = static_cast<int>(p.hidden);
    down.k = static_cast<int>(p.inter);
    switch (dtype) {
      case DType::kF32:
        LaunchGemms<float>(gate_up, down, tokens, gemv, l, st);
        break;
      case DType::kF16:
        LaunchGemms<__half>(gate_up, down, tokens, gemv, l, st);
        break;
      case DType::kBF16:
        LaunchGemms<__nv_bfloat16>(gate_up, down, tokens, gemv, l, st);
        break;
      default:
        TIDE_CHECK(false && "moe_experts: CUDA expert weights must be f32, f16 or bf16");
    }
    LaunchCombine(p, t0, tokens, ws, l, st);
  }
}

}  // namespace tide
