// The weights of a decoder-only transformer, declared once by checkpoint name and shape.
// The same declaration drives loading (Model) and random generation (`tide synth`).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/tensor.h"

namespace tide {

struct LinearWeights {
  Tensor w;                 // [out, in], any weight dtype
  std::vector<float> bias;  // [out] or empty
};

struct MlpWeights {
  LinearWeights gate, up, down;  // SwiGLU: down(silu(gate(x)) * up(x))
  // On CUDA only (Model::PlaceOn): [gate; up] as one [2 * inter, hidden] matrix, so one
  // matmul yields each row's [gate | up] as silu_mul reads it; gate and up then view its
  // halves. Empty on the CPU, whose kernels stay as they were (bit for bit).
  LinearWeights gate_up;
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [hidden]
  LinearWeights q, k, v, o;
  // On CUDA only (Model::PlaceOn): [q; k; v] as one [q_dim + 2 * kv_dim, hidden] matrix
  // (one longer GEMV instead of three short ones); q, k and v then view its rows.
  LinearWeights qkv;
  std::vector<float> q_norm, k_norm;       // [head_dim] (Qwen3)
  bool moe = false;
  MlpWeights mlp;                          // dense layers
  Tensor router;                           // [n_experts, hidden]
  std::vector<MlpWeights> experts;
  MlpWeights shared_expert;                // Qwen2-MoE (empty tensors when absent)
  Tensor shared_expert_gate;               // [1, hidden]
};

struct TransformerWeights {
  Tensor embed;                  // [vocab, hidden]
  std::vector<float> final_norm; // [hidden]
  Tensor lm_head;                // [vocab, hidden] (== embed when tied)
  std::vector<LayerWeights> layers;
};

// One declared weight. `matrix` receives a view of a 2-D tensor; `vector` a 1-D tensor
// widened to f32. For synthesis both are null.
struct WeightDecl {
  std::string name;   // Hugging Face checkpoint name
  Shape shape;
  Tensor* matrix = nullptr;
  std::vector<float>* vector = nullptr;
  bool is_norm = false;  // norm weights are synthesised near 1, not near 0
};

// Lists every weight of `config` in checkpoint naming, wiring each to its slot in
// `w` (when non-null; `w->layers` is sized here). Mixture-of-experts layers are
// declared per expert (the layout transformers writes by default).
std::vector<WeightDecl> DeclareWeights(const ModelConfig& config, TransformerWeights* w);

// llama.cpp's GGUF tensor name for a Hugging Face name ("" when it has none).
std::string GgufTensorName(const std::string& hf_name);

}  // namespace tide
