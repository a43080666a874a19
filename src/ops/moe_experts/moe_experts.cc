#include "ops/moe_experts/moe_experts.h"

#include <algorithm>
#include <string>
#include <vector>

#include "base/check.h"
#include "ops/matmul/matmul.h"
#include "ops/moe_experts/moe_experts_workspace.h"

namespace tide {

Status MoeExpertsParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("moe_experts: " + what); };
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + std::to_string(n_tokens));
  if (hidden <= 0 || inter <= 0)
    return bad("hidden and inter must be > 0, got " + std::to_string(hidden) + " and " + std::to_string(inter));
  if (n_experts <= 0) return bad("n_experts must be > 0, got " + std::to_string(n_experts));
  if (top_k <= 0 || top_k > n_experts)
    return bad("top_k must be in [1, n_experts = " + std::to_string(n_experts) + "], got " + std::to_string(top_k));
  if (experts == nullptr) return bad("experts is null");
  if ((shared_y == nullptr) != (shared_gate == nullptr)) return bad("shared_y and shared_gate must be set together");
  for (int e = 0; e < n_experts; ++e) {
    const MoeExpertWeights& w = experts[e];
    const std::string at = "expert " + std::to_string(e) + " ";
    const std::pair<const Tensor*, const char*> mats[] = {{&w.gate, "gate"}, {&w.up, "up"}, {&w.down, "down"}};
    for (const auto& [t, name] : mats) {
      const int64_t rows = t == &w.down ? hidden : inter, cols = t == &w.down ? inter : hidden;
      if (t->data == nullptr) return bad(at + name + " is null");
      if (t->shape.ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return bad(at + name + " must be [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
      if (t->dtype == DType::kI32) return bad(at + name + " has integer dtype");
      if (cols % GetDTypeInfo(t->dtype).block_elems != 0)
        return bad(at + name + " rows are not whole " + std::string(DTypeName(t->dtype)) + " blocks");
    }
  }
  if (n_tokens == 0) return OkStatus();
  if (x == nullptr) return bad("x is null");
  if (expert_ids == nullptr) return bad("expert_ids is null");
  if (weights == nullptr) return bad("weights is null");
  if (out == nullptr) return bad("out is null");
  return OkStatus();
}

bool MoeExpertsUsesMatmul(DeviceKind device, int64_t n_tokens, int64_t hidden, int64_t inter, int n_experts,
                          int top_k) {
  if (device == DeviceKind::kCpu || n_tokens <= 0 || n_experts <= 0) return false;
  if (hidden % kMoeExpertsMatmulAlign != 0 || inter % kMoeExpertsMatmulAlign != 0) return false;
  // Rows per expert = slots / n_experts, compared without division.
  const int64_t slots = std::min(n_tokens, kMoeExpertsChunkTokens) * top_k;
  return slots >= kMoeExpertsMatmulMinRows * n_experts && hidden * inter >= kMoeExpertsMatmulMinExpertElems;
}

int64_t MoeExpertsWorkspaceBytes(DeviceKind device, int64_t n_tokens, int64_t hidden, int64_t inter, int n_experts,
                                 int top_k) {
  if (device == DeviceKind::kCpu || n_tokens <= 0) return 0;
  return moe_experts::MakeLayout(n_tokens, hidden, inter, n_experts, top_k).bytes;
}

Result<DeviceBuffer> MoeExpertsTable(const ExecContext& ctx, const MoeExpertWeights* experts, int n_experts) {
  if (n_experts <= 0 || experts == nullptr) return InvalidArgument("moe_experts: table of no experts");
  const DType dtype = experts[0].gate.dtype;
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return InvalidArgument(std::string("moe_experts: CUDA expert weights must be f32, f16 or bf16, got ") +
                           std::string(DTypeName(dtype)));
  const auto n = static_cast<size_t>(n_experts);
  std::vector<const void*> table(3 * n);
  for (size_t e = 0; e < n; ++e) {
    const MoeExpertWeights& w = experts[e];
    if (w.gate.dtype != dtype || w.up.dtype != dtype || w.down.dtype != dtype)
      return InvalidArgument("moe_experts: expert " + std::to_string(e) + " differs in dtype from expert 0");
    table[e] = w.gate.data;
    table[n + e] = w.up.data;
    table[2 * n + e] = w.down.data;
  }
  const auto bytes = static_cast<int64_t>(table.size() * sizeof(void*));
  ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Allocate(ctx.device, bytes));
  RETURN_IF_ERROR(CopyToDevice(ctx, buf.data(), table.data(), bytes));
  RETURN_IF_ERROR(Synchronize(ctx));  // `table` is a host temporary
  return buf;
}

Status MoeExpertsCudaMatmul(const ExecContext& ctx, const MoeExpertsParams& p) {
#if TIDE_HAVE_CUDA
  if (p.hidden % kMoeExpertsMatmulAlign != 0 || p.inter % kMoeExpertsMatmulAlign != 0)
    return InvalidArgument("moe_experts: the matmul path needs hidden and inter in multiples of " +
                           std::to_string(kMoeExpertsMatmulAlign) + ", got " + std::to_string(p.hidden) + " and " +
                           std::to_string(p.inter));
  if (p.n_tokens == 0) return OkStatus();
  TIDE_CHECK(reinterpret_cast<uintptr_t>(p.workspace) % 256 == 0);
  const moe_experts::Layout l = moe_experts::MakeLayout(p.n_tokens, p.hidden, p.inter, p.n_experts, p.top_k);
  TIDE_CHECK(p.workspace != nullptr && p.workspace_bytes >= l.bytes);
  auto* ws = static_cast<uint8_t*>(p.workspace);
  auto* g = reinterpret_cast<float*>(ws + l.h);
  auto* u = reinterpret_cast<float*>(ws + l.u);
  auto* y = reinterpret_cast<float*>(ws + l.y);  // first the gathered x, then the experts' outputs
  std::vector<int32_t> offsets(static_cast<size_t>(p.n_experts) + 1);
  auto gemm = [&](const Tensor& w, const float* x, float* out, int64_t row0, int64_t rows) {
    MatmulParams mp;
    mp.x = x + row0 * w.shape[1];
    mp.w = w;
    mp.y = out + row0 * w.shape[0];
    mp.m = rows;
    mp.n = w.shape[0];
    mp.k = w.shape[1];
    Matmul(ctx, mp);
  };
  for (int64_t t0 = 0; t0 < p.n_tokens; t0 += kMoeExpertsChunkTokens) {
    const int64_t tokens = std::min(kMoeExpertsChunkTokens, p.n_tokens - t0);
    moe_experts::CudaGroupGather(p, t0, tokens, ctx.stream);
    RETURN_IF_ERROR(CopyToHost(ctx, offsets.data(), ws + l.offsets, static_cast<int64_t>(offsets.size()) * 4));
    // Every expert's gate and up before any down: the down outputs overwrite the gathered x.
    for (int e = 0; e < p.n_experts; ++e) {
      const auto at = static_cast<size_t>(e);
      const int64_t row0 = offsets[at], rows = offsets[at + 1] - offsets[at];
      if (rows == 0) continue;
      gemm(p.experts[e].gate, y, g, row0, rows);
      gemm(p.experts[e].up, y, u, row0, rows);
    }
    moe_experts::CudaSiluMul(p, tokens, ctx.stream);
    for (int e = 0; e < p.n_experts; ++e) {
      const auto at = static_cast<size_t>(e);
      const int64_t row0 = offsets[at], rows = offsets[at + 1] - offsets[at];
      if (rows > 0) gemm(p.experts[e].down, g, y, row0, rows);
    }
    moe_experts::CudaCombine(p, t0, tokens, ctx.stream);
  }
  return OkStatus();
#else
  (void)ctx;
  (void)p;
  return Unimplemented("moe_experts: built without CUDA");
#endif
}

Status MoeExperts(const ExecContext& ctx, const MoeExpertsParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      MoeExpertsCpu(p, ctx.pool);
      return OkStatus();
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      if (MoeExpertsUsesMatmul(ctx.device, p.n_tokens, p.hidden, p.inter, p.n_experts, p.top_k))
        return MoeExpertsCudaMatmul(ctx, p);
      MoeExpertsCuda(p, ctx.stream);
      return OkStatus();
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "moe_experts: no kernel for this device");
  return Internal("moe_experts: no kernel for this device");
}

}  // namespace tide
