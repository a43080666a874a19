// rope: rotary position embedding applied in place to q and k.
// Pairs are (i, i + rotary_dim/2) in the "rotate half" (NeoX / Hugging Face) style, or
// (2i, 2i+1) in the interleaved (GPT-J / original llama) style. Pair i at position p
// rotates by angle p * inv_freq[i]. Dimensions past rotary_dim are left untouched.
// Frequency scaling (Llama 3.1 "llama3", linear) is folded into inv_freq by
// RopeInvFreq, once at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

enum class RopeStyle { kNeox, kInterleaved };

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 } type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

// inv_freq[i] = 1 / theta^(2i / rotary_dim), then scaled. Computed step by step in f32
// as Hugging Face does (each step correctly rounded), so values match HF's inv_freq
// to the last ulp (torch's powf is not always correctly rounded).
// REQUIRES: rotary_dim even and > 0; factor > 0; for llama3 also
// high_freq_factor > low_freq_factor > 0 (the model config loader validates these).
std::vector<float> RopeInvFreq(double theta, int rotary_dim, const RopeScaling& scaling);

struct RopeParams {
  float* q = nullptr;                // [n_tokens, n_heads, head_dim], rotated in place
  float* k = nullptr;                // [n_tokens, n_kv_heads, head_dim], rotated in place (may be null)
  const int32_t* positions = nullptr;  // [n_tokens]
  const float* inv_freq = nullptr;   // [rotary_dim / 2]
  int64_t n_tokens = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, rotary_dim = 0;
  RopeStyle style = RopeStyle::kNeox;
  [[nodiscard]] Status check() const;
};

void RopeRef(const RopeParams& p);
void RopeCpu(const RopeParams& p, ThreadPool* pool);
// CUDA kernel (built with TIDE_CUDA): every pointer in p is device memory, except
// that check() must have passed on host copies first. Runs on `stream` (cudaStream_t).
void RopeCuda(const RopeParams& p, void* stream);
void Rope(const ExecContext& ctx, const RopeParams& p);

}  // namespace tide
