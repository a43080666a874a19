// The CUDA workspace of moe_experts, carved the same way by the size query (moe_experts.cc)
// and the kernels (moe_experts_cuda.cu). Internal to the op.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/moe_experts/moe_experts.h"

namespace tide::moe_experts {

// Rows of one tile of the tiled grouped GEMM: an expert's group of g rows takes
// ceil(g / kTileM) tiles, so a chunk of S slots never takes more than ceil(S / kTileM)
// + (active experts) tiles.
inline constexpr int64_t kTileM = 64;

struct Layout {
  int64_t slots = 0;      // S = chunk tokens * top_k
  int64_t max_active = 0; // min(n_experts, S)
  int64_t max_tiles = 0;  // ceil(S / kTileM) + max_active
  // Offsets in bytes from the workspace start.
  int64_t offsets = 0;      // int32 [n_experts + 1]: group starts (exclusive scan of the counts)
  int64_t header = 0;       // int32 [2]: active experts, tiles
  int64_t sorted_slot = 0;  // int32 [S]: the slot (token * top_k + j) of each grouped row
  int64_t row_of_slot = 0;  // int32 [S]: the grouped row of each slot
  int64_t active = 0;       // int32 [max_active]: the experts with rows, ascending
  int64_t tile_expert = 0;  // int32 [max_tiles]
  int64_t tile_row0 = 0;    // int32 [max_tiles]: the tile's first grouped row
  int64_t h = 0;            // f32 [S, inter]: silu(gate x) * up x per grouped row
                            // (the matmul path: gate x first)
  int64_t u = 0;            // f32 [S, inter]: the matmul path's up x per grouped row
  int64_t y = 0;            // f32 [S, hidden]: the expert's output per grouped row (the
                            // matmul path: first the tokens' rows of x in grouped order)
  int64_t bytes = 0;
};

inline Layout MakeLayout(int64_t n_tokens, int64_t hidden, int64_t inter, int n_experts, int top_k) {
  Layout l;
  const int64_t tokens = std::min(n_tokens, kMoeExpertsChunkTokens);
  l.slots = tokens * top_k;
  l.max_active = std::min<int64_t>(n_experts, l.slots);
  l.max_tiles = (l.slots + kTileM - 1) / kTileM + l.max_active;
  int64_t at = 0;
  // 256-byte starts: the matmul path hands rows of h, u and y to cuBLASLt, whose default
  // algorithms assume 256-byte aligned matrices (the workspace itself comes from
  // cudaMalloc, so it starts 256-byte aligned).
  auto take = [&](int64_t bytes) {
    const int64_t start = at;
    at += (bytes + 255) / 256 * 256;
    return start;
  };
  l.offsets = take(4 * (int64_t{n_experts} + 1));
  l.header = take(4 * 2);
  l.sorted_slot = take(4 * l.slots);
  l.row_of_slot = take(4 * l.slots);
  l.active = take(4 * l.max_active);
  l.tile_expert = take(4 * l.max_tiles);
  l.tile_row0 = take(4 * l.max_tiles);
  l.h = take(4 * l.slots * inter);
  l.u = take(4 * l.slots * inter);
  l.y = take(4 * l.slots * hidden);
  l.bytes = at;
  return l;
}

// The matmul path's device steps (moe_experts_cuda.cu) for the chunk of `tokens` tokens
// from token t0 of p, on `stream`, in p.workspace carved by MakeLayout(p.n_tokens, ...);
// moe_experts.cc runs the expert GEMMs between them.
// Grouping as the device path, then x's rows copied to y in grouped order.
void CudaGroupGather(const MoeExpertsParams& p, int64_t t0, int64_t tokens, void* stream);
// h = silu(h) * u over the chunk's tokens * top_k rows.
void CudaSiluMul(const MoeExpertsParams& p, int64_t tokens, void* stream);
// out = the weighted sum of y's rows in expert-id order (+ the shared expert), as the
// device path.
void CudaCombine(const MoeExpertsParams& p, int64_t t0, int64_t tokens, void* stream);

}  // namespace tide::moe_experts
