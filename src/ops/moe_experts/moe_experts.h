// moe_experts: the routed experts of a mixture-of-experts layer and their weighted
// combine, from the router's choice (ops/moe_route):
//   out[t] = sum_j weights[t, j] * expert_{ids[t, j]}(x[t])   (+ sigmoid(shared_gate[t]) * shared_y[t])
//   expert_e(x) = down_e(silu(gate_e x) * up_e x)
// Each token's experts are summed in expert-id order, then the shared expert's output,
// so a token's result depends only on its own routing, never on the rest of the batch.
//
// On CUDA the slots (token, j) are grouped by expert on the device, then one of two paths:
// * the device path (small groups: decode): the whole layer stays on the device (no host
//   round-trip, so decode steps can be captured in graphs); the expert GEMMs run over a
//   fixed grid sized from n_tokens alone, and CTAs whose group is empty exit. Up to
//   kMoeExpertsGemvMaxTokens tokens each active expert's weight rows stream from memory
//   once per step (see moe_experts_cuda.cu).
// * the matmul path (large groups: prefill, large batches; MoeExpertsUsesMatmul): the
//   per-expert group sizes come back to the host (one copy of n_experts + 1 ints per
//   chunk, which waits for the stream, so such a step cannot be captured) and each
//   expert's gate, up and down GEMMs run through the matmul op on its gathered rows:
//   cuBLASLt on the tensor cores, at the precision Matmul picks for that many rows (as
//   the dense layers), where the device path's kernels are f32 SIMT.
#pragma once

#include <cstdint>

#include "backend/device_memory.h"
#include "backend/exec.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace tide {

// One expert's SwiGLU weights in checkpoint layout. Not owned.
struct MoeExpertWeights {
  Tensor gate;  // [inter, hidden]
  Tensor up;    // [inter, hidden]
  Tensor down;  // [hidden, inter]
};

struct MoeExpertsParams {
  const float* x = nullptr;             // [n_tokens, hidden] f32, the normed hidden states
  const int32_t* expert_ids = nullptr;  // [n_tokens, top_k], distinct per token, in [0, n_experts)
  const float* weights = nullptr;       // [n_tokens, top_k] f32
  // [n_experts] on the host, always (check() reads shapes and dtypes from it); the tensors'
  // data lives on the op's device. CPU: any weight dtype, each tensor its own.
  const MoeExpertWeights* experts = nullptr;
  // CUDA only: the device-resident pointer table MoeExpertsTable built from `experts`
  // (once, at load). Every expert matrix then has one dtype: f32, f16 or bf16.
  const void* const* expert_table = nullptr;
  // The shared expert (Qwen2-MoE), optional: shared_y [n_tokens, hidden] its output and
  // shared_gate [n_tokens] its gate logit, both set or both null.
  const float* shared_y = nullptr;
  const float* shared_gate = nullptr;
  float* out = nullptr;  // [n_tokens, hidden] f32, fully overwritten. Not aliasing the inputs.
  // CUDA only: device scratch of at least MoeExpertsWorkspaceBytes(...) bytes, 256-byte
  // aligned, owned by the caller (the op never allocates). Ignored on the CPU.
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;
  int64_t n_tokens = 0, hidden = 0, inter = 0;
  int n_experts = 0, top_k = 0;

  // kInvalidArgument when a pointer is null, a size is out of range, an expert's shapes
  // disagree with hidden/inter or its dtype's block size does not divide a row.
  [[nodiscard]] Status check() const;
};

// The CUDA op takes the matmul path when its experts average at least
// kMoeExpertsMatmulMinRows rows (n_tokens * top_k / n_experts, n_tokens capped at a
// chunk) and each expert's matrices hold at least kMoeExpertsMatmulMinExpertElems
// (hidden * inter). Below 8 rows most groups would run the matmul op's GEMV, the same
// work the device path does in one launch without waiting for the host. The size floor
// weighs the matmul path's host cost per active expert (three matmul calls, each a few
// launches and a cuBLASLt heuristic query: ~60 us, estimated) against what the device
// path spends on that expert, about hidden * inter * 11-22 ps in either form on an H100:
// the GEMV at 8+ rows runs ~2.2 TFMA/s (Mixtral shape, batch 64: 45 GFMA in 20.4 ms), so
// 8 * 3 FMAs per element; a 64-row f32 tile costs the same whether the group fills it or
// not (~8.6 TFMA/s: Qwen3 shape, prefill of 8192 tokens at 18k tok/s). So large experts
// go to cuBLASLt (Mixtral-8x7B, 14336x4096: from 32 tokens; Qwen2-57B-A14B, GPT-OSS: from
// 64) and many small ones stay on the device (Qwen3-30B-A3B, 768x2048, and
// Qwen1.5-MoE, 1408x2048: always).
// The path also needs hidden and inter to be multiples of kMoeExpertsMatmulAlign, so each
// expert's rows start 256-byte aligned in f32, as cuBLASLt's default algorithms assume
// (every MoE model tide knows qualifies; the rest stay on the device path).
inline constexpr int64_t kMoeExpertsMatmulMinRows = 8;
inline constexpr int64_t kMoeExpertsMatmulMinExpertElems = int64_t{1} << 22;
inline constexpr int64_t kMoeExpertsMatmulAlign = 64;

// Tokens up to which the CUDA op runs its GEMV kernels (each active expert's weight rows
// streamed once, every routed row dotted against them); more tokens take the tiled GEMMs.
inline constexpr int64_t kMoeExpertsGemvMaxTokens = 64;
// The CUDA op works through longer batches in chunks of this many tokens, which bounds
// its workspace.
inline constexpr int64_t kMoeExpertsChunkTokens = 1024;
// The most experts a token may be routed to on CUDA.
inline constexpr int kMoeExpertsMaxTopK = 32;

// Whether MoeExperts on `device` takes the matmul path for a step of n_tokens: then it
// waits for the device mid-step and must not be captured in a CUDA graph. Always false
// on the CPU.
bool MoeExpertsUsesMatmul(DeviceKind device, int64_t n_tokens, int64_t hidden, int64_t inter, int n_experts,
                          int top_k);

// Bytes of CUDA workspace for a step of n_tokens (0 on the CPU), either path.
int64_t MoeExpertsWorkspaceBytes(DeviceKind device, int64_t n_tokens, int64_t hidden, int64_t inter, int n_experts,
                                 int top_k);

// The device-side table of [gate..., up..., down...] data pointers for `experts` (3 *
// n_experts entries), for MoeExpertsParams::expert_table. kInvalidArgument when the
// experts differ in dtype or use one the CUDA kernels do not read (quantised blocks are
// widened to f32 at placement); allocation and copy errors as in device_memory.h.
Result<DeviceBuffer> MoeExpertsTable(const ExecContext& ctx, const MoeExpertWeights* experts, int n_experts);

// f64 reference: each token on its own, weights dequantised by DequantizeRow.
void MoeExpertsRef(const MoeExpertsParams& p);
// The experts one by one over the tokens routed to each (gathered), through the CPU
// matmul, silu_mul and add kernels: results bit-identical to running each expert's MLP
// on its rows and adding weight * output into `out` in expert order.
void MoeExpertsCpu(const MoeExpertsParams& p, ThreadPool* pool);
// The CUDA device path (built with TIDE_CUDA): every pointer except `experts` is device
// memory, and check() must have passed. Runs on `stream` (cudaStream_t) without waiting
// on it.
void MoeExpertsCuda(const MoeExpertsParams& p, void* stream);
// The CUDA matmul path, whatever the group sizes, on ctx.stream at ctx.precision; waits
// for the stream once per chunk. Pointers as for MoeExpertsCuda, the workspace 256-byte
// aligned. kInvalidArgument when hidden or inter is not a multiple of
// kMoeExpertsMatmulAlign; kUnimplemented without TIDE_CUDA; copy errors as in
// device_memory.h.
[[nodiscard]] Status MoeExpertsCudaMatmul(const ExecContext& ctx, const MoeExpertsParams& p);
// Picks the kernel for ctx.device (and on CUDA the path, MoeExpertsUsesMatmul).
// REQUIRES p.check().ok(). Errors only from the matmul path's copy.
[[nodiscard]] Status MoeExperts(const ExecContext& ctx, const MoeExpertsParams& p);

}  // namespace tide
