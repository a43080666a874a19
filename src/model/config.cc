#include "model/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "formats/gguf.h"

namespace tide {
namespace {

using json = nlohmann::json;

struct ArchEntry {
  const char* hf_name;
  ModelArch arch;
};
constexpr ArchEntry kArchs[] = {
    {"LlamaForCausalLM", ModelArch::kLlama},     {"MistralForCausalLM", ModelArch::kMistral},
    {"Qwen2ForCausalLM", ModelArch::kQwen2},     {"Qwen3ForCausalLM", ModelArch::kQwen3},
    {"MixtralForCausalLM", ModelArch::kMixtral}, {"Qwen2MoeForCausalLM", ModelArch::kQwen2Moe},
    {"Qwen3MoeForCausalLM", ModelArch::kQwen3Moe},
};

// Field readers that turn type mismatches into errors instead of nlohmann exceptions.
class Fields {
 public:
  Fields(const json& j, const std::string& path) : j_(j), path_(path) {}

  Status Int(const char* key, int64_t* out, bool required) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      return required ? InvalidArgument(path_ + ": missing field '" + key + "'") : OkStatus();
    }
    if (!it->is_number_integer()) return InvalidArgument(path_ + ": field '" + key + "' must be an integer");
    *out = it->get<int64_t>();
    return OkStatus();
  }
  Status Int(const char* key, int* out, bool required) const {
    int64_t v = *out;
    RETURN_IF_ERROR(Int(key, &v, required));
    if (v < INT32_MIN || v > INT32_MAX) return InvalidArgument(path_ + ": field '" + key + "' out of range");
    *out = static_cast<int>(v);
    return OkStatus();
  }
  Status Double(const char* key, double* out, bool required) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      return required ? InvalidArgument(path_ + ": missing field '" + key + "'") : OkStatus();
    }
    if (!it->is_number()) return InvalidArgument(path_ + ": field '" + key + "' must be a number");
    *out = it->get<double>();
    return OkStatus();
  }
  Status Bool(const char* key, bool* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return OkStatus();
    if (!it->is_boolean()) return InvalidArgument(path_ + ": field '" + key + "' must be true or false");
    *out = it->get<bool>();
    return OkStatus();
  }
  std::string String(const char* key) const {
    auto it = j_.find(key);
    return it != j_.end() && it->is_string() ? it->get<std::string>() : std::string();
  }

 private:
  const json& j_;
  const std::string& path_;
};

Status ParseRope(const json& j, const std::string& path, ModelConfig* c) {
  // transformers 5 folds rope_theta and rope_scaling into rope_parameters; older files
  // have them apart. Read both so either generation of config.json loads.
  const json* params = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) params = &*it;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) params = &*it;
  Fields top(j, path);
  RETURN_IF_ERROR(top.Double("rope_theta", &c->rope_theta, false));
  if (params == nullptr) return OkStatus();
  Fields f(*params, path);
  RETURN_IF_ERROR(f.Double("rope_theta", &c->rope_theta, false));
  std::string type = f.String("rope_type");
  if (type.empty()) type = f.String("type");
  if (type.empty() || type == "default") return OkStatus();
  RopeScaling& s = c->rope_scaling;
  RETURN_IF_ERROR(f.Double("factor", &s.factor, true));
  if (!(s.factor > 0)) return InvalidArgument(path + ": rope factor must be > 0");
  if (type == "linear") {
    s.type = RopeScaling::Type::kLinear;
    return OkStatus();
  }
  if (type == "llama3") {
    s.type = RopeScaling::Type::kLlama3;
    RETURN_IF_ERROR(f.Double("low_freq_factor", &s.low_freq_factor, true));
    RETURN_IF_ERROR(f.Double("high_freq_factor", &s.high_freq_factor, true));
    RETURN_IF_ERROR(f.Int("original_max_position_embeddings", &s.original_max_position_embeddings, true));
    if (!(s.high_freq_factor > s.low_freq_factor))
      return InvalidArgument(path + ": llama3 rope needs high_freq_factor > low_freq_factor");
    return OkStatus();
  }
  return Unimplemented(path + ": rope scaling type '" + type + "' is not supported (supported: default, linear, llama3)");
}

Status ParseEos(const json& j, ModelConfig* c) {
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer())
    c->bos_token_id = it->get<int32_t>();
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer()) c->eos_token_ids.push_back(it->get<int32_t>());
    if (it->is_array())
      for (const auto& e : *it)
        if (e.is_number_integer()) c->eos_token_ids.push_back(e.get<int32_t>());
  }
  return OkStatus();
}

Result<ModelConfig> ParseHfConfigJson(const json& j, const std::string& path) {
  if (!j.is_object()) return InvalidArgument(path + ": config.json is not a JSON object");
  ModelConfig c;
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    return InvalidArgument(path + ": missing 'architectures' list");
  c.architecture = (*archs)[0].get<std::string>();
  bool known = false;
  for (const auto& a : kArchs) {
    if (c.architecture == a.hf_name) {
      c.arch = a.arch;
      known = true;
    }
  }
  if (!known) {
    std::string list;
    for (const auto& a : kArchs) list += std::string(list.empty() ? "" : ", ") + a.hf_name;
    return Unimplemented(path + ": architecture '" + c.architecture + "' is not supported (supported: " + list + ")");
  }
  Fields f(j, path);
  RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size, true));
  RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size, true));
  RETURN_IF_ERROR(f.Int("intermediate_size", &c.intermediate_size, c.arch != ModelArch::kQwen3Moe));
  RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_layers, true));
  RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  RETURN_IF_ERROR(f.Int("num_key_value_heads", &c.num_kv_heads, false));
  if (c.num_heads > 0) c.head_dim = static_cast<int>(c.hidden_size / c.num_heads);
  RETURN_IF_ERROR(f.Int("head_dim", &c.head_dim, false));
  RETURN_IF_ERROR(f.Int("max_position_embeddings", &c.max_position_embeddings, true));
  RETURN_IF_ERROR(f.Double("rms_norm_eps", &c.rms_norm_eps, true));
  c.tie_word_embeddings = false;
  RETURN_IF_ERROR(f.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(ParseRope(j, path, &c));
  c.rope_style = RopeStyle::kNeox;
  c.rotary_dim = c.head_dim;
  double partial = 1.0;
  RETURN_IF_ERROR(f.Double("partial_rotary_factor", &partial, false));
  if (partial != 1.0) return Unimplemented(path + ": partial_rotary_factor != 1 is not supported");

  const std::string act = f.String("hidden_act");
  if (!act.empty() && act != "silu")
    return Unimplemented(path + ": hidden_act '" + act + "' is not supported (only silu)");
  bool mlp_bias = false;
  RETURN_IF_ERROR(f.Bool("mlp_bias", &mlp_bias));
  if (mlp_bias) return Unimplemented(path + ": mlp_bias=true is not supported");

  switch (c.arch) {
    case ModelArch::kLlama:
    case ModelArch::kMistral: {
      bool attention_bias = false;
      RETURN_IF_ERROR(f.Bool("attention_bias", &attention_bias));
      c.qkv_bias = c.o_bias = attention_bias;
      break;
    }
    case ModelArch::kQwen2:
    case ModelArch::kQwen2Moe:
      c.qkv_bias = true;  // Qwen2 attention always has q/k/v biases (no config switch)
      break;
    case ModelArch::kQwen3:
    case ModelArch::kQwen3Moe: {
      c.qk_norm = true;
      bool attention_bias = false;
      RETURN_IF_ERROR(f.Bool("attention_bias", &attention_bias));
      c.qkv_bias = c.o_bias = attention_bias;
      break;
    }
    case ModelArch::kMixtral:
      break;
  }

  // Sliding-window attention changes the math only once a context exceeds the window;
  // rather than attend wrongly past it, cap the context length at the window.
  int64_t window = 0;
  bool use_window = c.arch == ModelArch::kMistral || c.arch == ModelArch::kMixtral;
  RETURN_IF_ERROR(f.Bool("use_sliding_window", &use_window));
  RETURN_IF_ERROR(f.Int("sliding_window", &window, false));
  if (use_window && window > 0 && window < c.max_position_embeddings) c.max_position_embeddings = window;

  // transformers 5 writes num_local_experts for every MoE family; hub configs of the
  // Qwen MoE models say num_experts. Accept either everywhere.
  RETURN_IF_ERROR(f.Int("num_local_experts", &c.num_experts, false));
  RETURN_IF_ERROR(f.Int("num_experts", &c.num_experts, false));
  const bool has_experts = c.num_experts > 0;
  if (c.arch == ModelArch::kMixtral) {
    if (!has_experts) return InvalidArgument(path + ": missing field 'num_local_experts'");
    RETURN_IF_ERROR(f.Int("num_experts_per_tok", &c.num_experts_per_tok, true));
    c.moe_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true;  // Mixtral always renormalises its top-k weights
  } else if (c.arch == ModelArch::kQwen2Moe || c.arch == ModelArch::kQwen3Moe) {
    if (!has_experts) return InvalidArgument(path + ": missing field 'num_experts'");
    RETURN_IF_ERROR(f.Int("num_experts_per_tok", &c.num_experts_per_tok, true));
    RETURN_IF_ERROR(f.Int("moe_intermediate_size", &c.moe_intermediate_size, true));
    RETURN_IF_ERROR(f.Bool("norm_topk_prob", &c.norm_topk_prob));
    RETURN_IF_ERROR(f.Int("decoder_sparse_step", &c.decoder_sparse_step, false));
    if (c.arch == ModelArch::kQwen2Moe)
      RETURN_IF_ERROR(f.Int("shared_expert_intermediate_size", &c.shared_expert_intermediate_size, true));
    if (auto it = j.find("mlp_only_layers"); it != j.end() && it->is_array()) {
      for (const auto& v : *it) {
        if (!v.is_number_integer()) return InvalidArgument(path + ": mlp_only_layers must hold integers");
        c.mlp_only_layers.push_back(v.get<int>());
      }
    }
  }
  RETURN_IF_ERROR(ParseEos(j, &c));
  RETURN_IF_ERROR(c.Validate().WithContext(path));
  return c;
}

}  // namespace

const std::vector<std::string>& SupportedArchitectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& a : kArchs) v.emplace_back(a.hf_name);
    return v;
  }();
  return names;
}

bool ModelConfig::IsMoeLayer(int layer) const {
  if (num_experts == 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::NumParameters() const {
  const int64_t h = hidden_size, q = int64_t{num_heads} * head_dim, kv = int64_t{num_kv_heads} * head_dim;
  int64_t n = vocab_size * h * (tie_word_embeddings ? 1 : 2) + h;  // embeddings, lm_head, final norm
  for (int l = 0; l < num_layers; ++l) {
    n += 2 * h;                                   // norms
    n += h * q + 2 * h * kv + q * h;              // q, k, v, o
    if (qkv_bias) n += q + 2 * kv;
    if (o_bias) n += h;
    if (qk_norm) n += 2 * head_dim;
    if (IsMoeLayer(l)) {
      n += h * num_experts + int64_t{num_experts} * 3 * h * moe_intermediate_size;
      if (shared_expert_intermediate_size > 0) n += 3 * h * shared_expert_intermediate_size + h;
    } else {
      n += 3 * h * intermediate_size;
    }
  }
  return n;
}

int64_t ModelConfig::KvBytesPerToken(int bytes_per_elem) const {
  return int64_t{2} * num_layers * num_kv_heads * head_dim * bytes_per_elem;
}

Status ModelConfig::Validate() const {
  auto bad = [](const std::string& m) { return InvalidArgument(m); };
  // Upper bounds keep arithmetic on sizes far from overflow; no real model is near them.
  if (vocab_size <= 0 || vocab_size > (int64_t{1} << 24)) return bad("vocab_size out of range: " + std::to_string(vocab_size));
  if (hidden_size <= 0 || hidden_size > (1 << 17)) return bad("hidden_size out of range: " + std::to_string(hidden_size));
  if (num_layers <= 0 || num_layers > 1024) return bad("num_hidden_layers out of range: " + std::to_string(num_layers));
  if (num_heads <= 0 || num_heads > 1024) return bad("num_attention_heads out of range: " + std::to_string(num_heads));
  if (num_kv_heads <= 0 || num_heads % num_kv_heads != 0)
    return bad("num_key_value_heads (" + std::to_string(num_kv_heads) + ") must divide num_attention_heads (" +
               std::to_string(num_heads) + ")");
  if (head_dim <= 0 || head_dim > 1024 || head_dim % 2 != 0) return bad("head_dim must be even and in (0, 1024]: " + std::to_string(head_dim));
  if (rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2 != 0) return bad("rotary dimension out of range");
  if (max_position_embeddings <= 0) return bad("max_position_embeddings must be > 0");
  if (!(rms_norm_eps > 0) || !(rope_theta > 0)) return bad("rms_norm_eps and rope_theta must be > 0");
  if (num_experts > 0) {
    if (num_experts > 4096 || num_experts_per_tok <= 0 || num_experts_per_tok > num_experts)
      return bad("num_experts_per_tok must be in [1, num_experts]");
    if (moe_intermediate_size <= 0 || moe_intermediate_size > (1 << 20)) return bad("moe_intermediate_size out of range");
    if (decoder_sparse_step <= 0) return bad("decoder_sparse_step must be > 0");
  }
  bool any_dense = false;
  for (int l = 0; l < num_layers; ++l) any_dense |= !IsMoeLayer(l);
  if (any_dense && (intermediate_size <= 0 || intermediate_size > (1 << 20)))
    return bad("intermediate_size out of range: " + std::to_string(intermediate_size));
  if (shared_expert_intermediate_size < 0) return bad("shared_expert_intermediate_size must be >= 0");
  return OkStatus();
}

Result<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& path) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    return InvalidArgument(path + ": invalid JSON: " + e.what());
  }
  try {
    return ParseHfConfigJson(j, path);
  } catch (const std::exception& e) {  // a type surprise inside nlohmann; never escape
    return InvalidArgument(path + ": " + e.what());
  }
}

Result<ModelConfig> ConfigFromGguf(const GgufFile& g) {
  const std::string& path = g.path();
  auto arch = g.GetString("general.architecture");
  if (!arch) return InvalidArgument(path + ": missing general.architecture");
  ModelConfig c;
  c.architecture = *arch;
  if (*arch == "llama") {
    c.arch = ModelArch::kLlama;
    // llama.cpp's converter permutes llama Q/K rows for the interleaved rotary layout.
    c.rope_style = RopeStyle::kInterleaved;
  } else if (*arch == "qwen2") {
    c.arch = ModelArch::kQwen2;
    c.qkv_bias = true;
  } else if (*arch == "qwen3") {
    c.arch = ModelArch::kQwen3;
    c.qk_norm = true;
  } else {
    return Unimplemented(path + ": GGUF architecture '" + *arch + "' is not supported (supported: llama, qwen2, qwen3)");
  }
  const std::string p = *arch + ".";
  auto need_int = [&](const std::string& key, auto* out) -> Status {
    auto v = g.GetInt(p + key);
    if (!v) return InvalidArgument(path + ": missing or non-integer metadata " + p + key);
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(*v);
    return OkStatus();
  };
  RETURN_IF_ERROR(need_int("embedding_length", &c.hidden_size));
  RETURN_IF_ERROR(need_int("block_count", &c.num_layers));
  RETURN_IF_ERROR(need_int("feed_forward_length", &c.intermediate_size));
  RETURN_IF_ERROR(need_int("attention.head_count", &c.num_heads));
  RETURN_IF_ERROR(need_int("context_length", &c.max_position_embeddings));
  c.num_kv_heads = c.num_heads;
  if (auto v = g.GetInt(p + "attention.head_count_kv")) c.num_kv_heads = static_cast<int>(*v);
  if (c.num_heads > 0) c.head_dim = static_cast<int>(c.hidden_size / c.num_heads);
  if (auto v = g.GetInt(p + "attention.key_length")) c.head_dim = static_cast<int>(*v);
  if (auto v = g.GetInt(p + "attention.value_length"); v && *v != c.head_dim)
    return Unimplemented(path + ": value_length != key_length is not supported");
  c.rotary_dim = c.head_dim;
  if (auto v = g.GetInt(p + "rope.dimension_count")) c.rotary_dim = static_cast<int>(*v);
  if (c.rotary_dim != c.head_dim) return Unimplemented(path + ": partial rotary embedding is not supported");
  auto eps = g.GetFloat(p + "attention.layer_norm_rms_epsilon");
  if (!eps) return InvalidArgument(path + ": missing " + p + "attention.layer_norm_rms_epsilon");
  c.rms_norm_eps = *eps;
  if (auto v = g.GetFloat(p + "rope.freq_base")) c.rope_theta = *v;
  if (auto t = g.GetString(p + "rope.scaling.type"); t && *t != "none") {
    if (*t != "linear") return Unimplemented(path + ": GGUF rope scaling '" + *t + "' is not supported");
    c.rope_scaling.type = RopeScaling::Type::kLinear;
    c.rope_scaling.factor = g.GetFloat(p + "rope.scaling.factor").value_or(1.0);
  }
  if (auto n = g.GetInt(p + "expert_count"); n && *n > 0)
    return Unimplemented(path + ": GGUF mixture-of-experts models are not supported yet");
  // vocab: explicit key, else the tokenizer's token list.
  if (auto v = g.GetInt(p + "vocab_size")) {
    c.vocab_size = *v;
  } else if (const auto* toks = g.GetArray("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int64_t>(toks->size());
  }
  bool has_output = false;
  for (const auto& t : g.tensors()) has_output |= t.name == "output.weight";
  c.tie_word_embeddings = !has_output;
  if (auto v = g.GetInt("tokenizer.ggml.bos_token_id")) c.bos_token_id = static_cast<int32_t>(*v);
  if (auto v = g.GetInt("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(static_cast<int32_t>(*v));
  if (auto v = g.GetInt("tokenizer.ggml.eot_token_id")) c.eos_token_ids.push_back(static_cast<int32_t>(*v));
  RETURN_IF_ERROR(c.Validate().WithContext(path));
  return c;
}

}  // namespace tide
