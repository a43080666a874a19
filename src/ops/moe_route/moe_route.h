// moe_route: the MoE router's choice of experts per token from the router logits.
//   scoring: softmax over all experts (Mixtral, Qwen2-MoE, Qwen3-MoE)
//   top-k by probability (ties -> lower expert id first, as torch.topk on CPU does)
//   renormalize: divide the chosen k weights by their sum (Mixtral always;
//                Qwen-MoE when norm_topk_prob).
#pragma once

#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

struct MoeRouteParams {
  const float* logits = nullptr;  // [n_tokens, n_experts]
  int32_t* expert_ids = nullptr;  // [n_tokens, top_k], most probable first
  float* weights = nullptr;       // [n_tokens, top_k]
  int64_t n_tokens = 0;
  int n_experts = 0, top_k = 0;
  bool renormalize = false;
  [[nodiscard]] Status check() const;
};

void MoeRouteRef(const MoeRouteParams& p);
void MoeRouteCpu(const MoeRouteParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void MoeRouteCuda(const MoeRouteParams& p, void* stream);
void MoeRoute(const ExecContext& ctx, const MoeRouteParams& p);

}  // namespace tide
