// ModelConfig: the hyper-parameters of a decoder-only transformer, read from a Hugging
// Face config.json or from GGUF metadata, validated once. Architectures differ only by
// the switches below (qkv bias, q/k norm, tied embeddings, rope scaling, MoE layers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "ops/rope/rope.h"

namespace tide {

class GgufFile;

enum class ModelArch { kLlama, kMistral, kQwen2, kQwen3, kMixtral, kQwen2Moe, kQwen3Moe };

struct ModelConfig {
  std::string architecture;   // as named by the source: HF class name or GGUF arch
  ModelArch arch = ModelArch::kLlama;

  // ---- shapes
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;   // dense MLP width
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int64_t max_position_embeddings = 0;

  // ---- math switches
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  RopeStyle rope_style = RopeStyle::kNeox;  // kInterleaved for GGUF llama (permuted Q/K)
  int rotary_dim = 0;                       // == head_dim unless partial rotary
  bool tie_word_embeddings = false;
  bool qkv_bias = false;                    // Qwen2; Llama's attention_bias
  bool o_bias = false;                      // Llama's attention_bias also biases o_proj
  bool qk_norm = false;                     // Qwen3: RMSNorm per head on q and k

  // ---- MoE (num_experts == 0: dense)
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;              // renormalise the top-k router weights
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE shared expert (0: none)
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;         // layers that stay dense in an MoE model

  // ---- tokens
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;

  [[nodiscard]] bool IsMoeLayer(int layer) const;
  // Parameters (weights) in the model, counting tied embeddings once.
  [[nodiscard]] int64_t NumParameters() const;
  // Bytes of K and V per token across all layers at `bytes_per_elem` (4 for f32 cache).
  [[nodiscard]] int64_t KvBytesPerToken(int bytes_per_elem) const;
  // kInvalidArgument naming the first inconsistent field.
  [[nodiscard]] Status Validate() const;
};

// Parses config.json text. Unsupported architectures or math-changing fields (rope
// types other than default/linear/llama3, activations other than silu, mlp bias,
// sliding windows that matter, ...) are kUnimplemented naming the field.
Result<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& path);
// Reads `general.architecture` and its keys; the same refusals as above.
Result<ModelConfig> ConfigFromGguf(const GgufFile& gguf);
// HF class names accepted by ParseHfConfig.
const std::vector<std::string>& SupportedArchitectures();

}  // namespace tide
