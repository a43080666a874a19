// moe_route on CUDA: one thread per token, in f64 like the reference (router logits are
// a few hundred values at most, and f64 keeps near-tied experts in the reference's
// order). Ties keep the lower expert id, as torch.topk on CPU does.
#include "backend/cuda/kernel_util.cuh"
#include "ops/moe_route/moe_route.h"

namespace tide {
namespace {

// The most experts any supported model routes over (Qwen3-MoE: 128; DeepSeek: 256).
constexpr int kMaxExperts = 512;

__global__ void MoeRouteKernel(const float* __restrict__ logits, int32_t* __restrict__ expert_ids,
                               float* __restrict__ weights, int64_t n_tokens, int n_experts, int top_k,
                               bool renormalize) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n_tokens) return;
  const float* x = logits + t * n_experts;
  double mx = x[0];
  for (int e = 1; e < n_experts; ++e) mx = fmax(mx, static_cast<double>(x[e]));
  double sum = 0;
  for (int e = 0; e < n_experts; ++e) sum += exp(static_cast<double>(x[e]) - mx);
  // Selection by repeated arg-max over the experts not yet taken (k is small); the
  // `taken` bitmap lives in registers/local memory of this thread.
  uint32_t taken[kMaxExperts / 32] = {};
  double chosen = 0;
  int32_t* ids = expert_ids + t * top_k;
  for (int k = 0; k < top_k; ++k) {
    int best = -1;
    float best_x = 0.f;
    for (int e = 0; e < n_experts; ++e) {
      if ((taken[e / 32] >> (e % 32)) & 1u) continue;
      // exp is monotonic: the largest logit is the largest probability (strict '>' keeps
      // the lower id on ties, as the reference does on equal probabilities).
      if (best < 0 || x[e] > best_x) {
        best = e;
        best_x = x[e];
      }
    }
    taken[best / 32] |= 1u << (best % 32);
    ids[k] = best;
    chosen += exp(static_cast<double>(best_x) - mx) / sum;
  }
  for (int k = 0; k < top_k; ++k) {
    const double w = exp(static_cast<double>(x[ids[k]]) - mx) / sum;
    weights[t * top_k + k] = static_cast<float>(renormalize ? w / chosen : w);
  }
}

}  // namespace

void MoeRouteCuda(const MoeRouteParams& p, void* stream) {
  if (p.n_tokens == 0) return;
  TIDE_CHECK(p.n_experts <= kMaxExperts);
  constexpr int kThreads = 128;
  MoeRouteKernel<<<static_cast<unsigned>(cuda::CeilDiv(p.n_tokens, kThreads)), kThreads, 0, cuda::AsStream(stream)>>>(
      p.logits, p.expert_ids, p.weights, p.n_tokens, p.n_experts, p.top_k, p.renormalize);
  TIDE_CUDA_LAUNCHED("moe_route");
}

}  // namespace tide
