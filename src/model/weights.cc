#include "model/weights.h"

#include <cstdio>

namespace tide {
namespace {

std::string LayerName(int l, const std::string& leaf) {
  return "model.layers." + std::to_string(l) + "." + leaf;
}

void DeclareLinear(std::vector<WeightDecl>& out, const std::string& base, int64_t n_out, int64_t n_in,
                   bool bias, LinearWeights* lw) {
  out.push_back({base + ".weight", Shape{n_out, n_in}, lw ? &lw->w : nullptr, nullptr, false});
  if (bias) out.push_back({base + ".bias", Shape{n_out}, nullptr, lw ? &lw->bias : nullptr, false});
}

void DeclareMlp(std::vector<WeightDecl>& out, const std::string& base, const char* gate, const char* up,
                const char* down, int64_t hidden, int64_t inter, MlpWeights* m) {
  DeclareLinear(out, base + gate, inter, hidden, false, m ? &m->gate : nullptr);
  DeclareLinear(out, base + up, inter, hidden, false, m ? &m->up : nullptr);
  DeclareLinear(out, base + down, hidden, inter, false, m ? &m->down : nullptr);
}

}  // namespace

std::vector<WeightDecl> DeclareWeights(const ModelConfig& c, TransformerWeights* w) {
  std::vector<WeightDecl> out;
  const int64_t h = c.hidden_size, v = c.vocab_size;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  if (w) w->layers.resize(static_cast<size_t>(c.num_layers));
  out.push_back({"model.embed_tokens.weight", Shape{v, h}, w ? &w->embed : nullptr, nullptr, false});
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights* lw = w ? &w->layers[static_cast<size_t>(l)] : nullptr;
    out.push_back({LayerName(l, "input_layernorm.weight"), Shape{h}, nullptr, lw ? &lw->attn_norm : nullptr, true});
    DeclareLinear(out, LayerName(l, "self_attn.q_proj"), q_dim, h, c.qkv_bias, lw ? &lw->q : nullptr);
    DeclareLinear(out, LayerName(l, "self_attn.k_proj"), kv_dim, h, c.qkv_bias, lw ? &lw->k : nullptr);
    DeclareLinear(out, LayerName(l, "self_attn.v_proj"), kv_dim, h, c.qkv_bias, lw ? &lw->v : nullptr);
    DeclareLinear(out, LayerName(l, "self_attn.o_proj"), h, q_dim, c.o_bias, lw ? &lw->o : nullptr);
    if (c.qk_norm) {
      out.push_back({LayerName(l, "self_attn.q_norm.weight"), Shape{c.head_dim}, nullptr, lw ? &lw->q_norm : nullptr, true});
      out.push_back({LayerName(l, "self_attn.k_norm.weight"), Shape{c.head_dim}, nullptr, lw ? &lw->k_norm : nullptr, true});
    }
    out.push_back({LayerName(l, "post_attention_layernorm.weight"), Shape{h}, nullptr, lw ? &lw->ffn_norm : nullptr, true});
    const bool moe = c.IsMoeLayer(l);
    if (lw) lw->moe = moe;
    if (!moe) {
      DeclareMlp(out, LayerName(l, "mlp."), "gate_proj", "up_proj", "down_proj", h, c.intermediate_size,
                 lw ? &lw->mlp : nullptr);
      continue;
    }
    if (lw) lw->experts.resize(static_cast<size_t>(c.num_experts));
    const int64_t e = c.num_experts, inter = c.moe_intermediate_size;
    if (c.arch == ModelArch::kMixtral) {
      out.push_back({LayerName(l, "block_sparse_moe.gate.weight"), Shape{e, h}, lw ? &lw->router : nullptr, nullptr, false});
      for (int x = 0; x < c.num_experts; ++x)
        DeclareMlp(out, LayerName(l, "block_sparse_moe.experts." + std::to_string(x) + "."), "w1", "w3", "w2", h,
                   inter, lw ? &lw->experts[static_cast<size_t>(x)] : nullptr);
    } else {
      out.push_back({LayerName(l, "mlp.gate.weight"), Shape{e, h}, lw ? &lw->router : nullptr, nullptr, false});
      for (int x = 0; x < c.num_experts; ++x)
        DeclareMlp(out, LayerName(l, "mlp.experts." + std::to_string(x) + "."), "gate_proj", "up_proj", "down_proj",
                   h, inter, lw ? &lw->experts[static_cast<size_t>(x)] : nullptr);
      if (c.shared_expert_intermediate_size > 0) {
        DeclareMlp(out, LayerName(l, "mlp.shared_expert."), "gate_proj", "up_proj", "down_proj", h,
                   c.shared_expert_intermediate_size, lw ? &lw->shared_expert : nullptr);
        out.push_back({LayerName(l, "mlp.shared_expert_gate.weight"), Shape{1, h},
                       lw ? &lw->shared_expert_gate : nullptr, nullptr, false});
      }
    }
  }
  out.push_back({"model.norm.weight", Shape{h}, nullptr, w ? &w->final_norm : nullptr, true});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", Shape{v, h}, w ? &w->lm_head : nullptr, nullptr, false});
  return out;
}

std::string GgufTensorName(const std::string& hf) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& [from, to] : kTop)
    if (hf == from) return to;
  static const std::pair<const char*, const char*> kLeaf[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"self_attn.o_proj.bias", "attn_output.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"}, {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  int layer = -1, consumed = 0;
  if (std::sscanf(hf.c_str(), "model.layers.%d.%n", &layer, &consumed) == 1 && consumed > 0) {
    const std::string leaf = hf.substr(static_cast<size_t>(consumed));
    for (const auto& [from, to] : kLeaf)
      if (leaf == from) return "blk." + std::to_string(layer) + "." + to;
  }
  return "";
}

}  // namespace tide
