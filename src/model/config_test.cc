#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tide {
namespace {

const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
  "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
  "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": false,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})";

TEST(ConfigTest, ParsesLlama31) {
  auto c = ParseHfConfig(kLlama31, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c->eos_token_ids.size(), 3u);
  // Llama 3.1 8B has 8.03B parameters.
  EXPECT_NEAR(static_cast<double>(c->NumParameters()) / 1e9, 8.03, 0.01);
  EXPECT_EQ(c->KvBytesPerToken(2), 2 * 32 * 8 * 128 * 2);
}

TEST(ConfigTest, ReadsTransformers5RopeParameters) {
  auto c = ParseHfConfig(R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 32, "max_position_embeddings": 1024, "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}})", "c.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_EQ(c->head_dim, 32);
}

TEST(ConfigTest, RefusesWhatWouldChangeTheMath) {
  std::string base = R"("vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": 1024, "rms_norm_eps": 1e-6)";
  struct Case { std::string json; const char* needle; };
  const Case cases[] = {
      {R"({"architectures": ["GPT2LMHeadModel"], )" + base + "}", "GPT2LMHeadModel"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_act": "gelu", )" + base + "}", "hidden_act"},
      {R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "yarn", "factor": 4.0}, )" + base + "}", "yarn"},
      {R"({"architectures": ["LlamaForCausalLM"], "mlp_bias": true, )" + base + "}", "mlp_bias"},
      {R"({"architectures": ["LlamaForCausalLM"], "num_key_value_heads": 3, )" + base + "}", "num_key_value_heads"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": "big", )" + base.substr(base.find(',') + 1) + "}", "vocab_size"},
      {R"({"architectures": ["LlamaForCausalLM"] )", "invalid JSON"},
      {"\"\xff\xfe\"", "invalid JSON"},
  };
  for (const auto& tc : cases) {
    auto c = ParseHfConfig(tc.json, "config.json");
    ASSERT_FALSE(c.ok()) << tc.json;
    EXPECT_NE(c.status().message().find(tc.needle), std::string::npos) << c.status().message();
  }
}

TEST(ConfigTest, MoeLayersFollowSparseStepAndDenseList) {
  auto c = ParseHfConfig(R"({"architectures": ["Qwen2MoeForCausalLM"], "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 64, "decoder_sparse_step": 2, "mlp_only_layers": [3]})", "c.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_FALSE(c->IsMoeLayer(3));
  EXPECT_TRUE(c->qkv_bias);
}

}  // namespace
}  // namespace tide
