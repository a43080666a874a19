// tide inspect: what a model is and what it needs, without running it.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"

namespace tide::cli {
namespace {

const char* ArchFamily(ModelArch a) {
  switch (a) {
    case ModelArch::kLlama: return "llama";
    case ModelArch::kMistral: return "mistral";
    case ModelArch::kQwen2: return "qwen2";
    case ModelArch::kQwen3: return "qwen3";
    case ModelArch::kMixtral: return "mixtral (MoE)";
    case ModelArch::kQwen2Moe: return "qwen2-moe (MoE)";
    case ModelArch::kQwen3Moe: return "qwen3-moe (MoE)";
  }
  return "?";
}

Status Run(const std::string& model_arg) {
  ASSIGN_OR_RETURN(std::string path, ResolveModelPath(model_arg));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  const ModelConfig& c = model->config();
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> (tensors, bytes)
  uint64_t weight_bytes = 0;
  for (const auto& [name, t] : model->weights().tensors()) {
    auto& e = by_dtype[std::string(DTypeName(t.dtype))];
    e.first += 1;
    e.second += t.nbytes;
    weight_bytes += t.nbytes;
  }
  std::printf("model:           %s\n", path.c_str());
  std::printf("architecture:    %s (%s)\n", c.architecture.c_str(), ArchFamily(c.arch));
  std::printf("parameters:      %.3f M\n", static_cast<double>(c.NumParameters()) / 1e6);
  std::printf("layers:          %d, hidden %lld, heads %d, kv heads %d, head dim %d\n", c.num_layers,
              static_cast<long long>(c.hidden_size), c.num_heads, c.num_kv_heads, c.head_dim);
  if (c.num_experts > 0)
    std::printf("experts:         %d, %d per token, expert width %lld%s\n", c.num_experts, c.num_experts_per_tok,
                static_cast<long long>(c.moe_intermediate_size),
                c.shared_expert_intermediate_size > 0 ? ", shared expert" : "");
  else
    std::printf("mlp width:       %lld\n", static_cast<long long>(c.intermediate_size));
  std::printf("vocab:           %lld%s\n", static_cast<long long>(c.vocab_size),
              c.tie_word_embeddings ? " (tied embeddings)" : "");
  std::printf("context:         %lld tokens\n", static_cast<long long>(c.max_position_embeddings));
  std::printf("weights:         %s in", FormatBytes(static_cast<double>(weight_bytes)).c_str());
  for (const auto& [dt, e] : by_dtype)
    std::printf(" %s: %lld tensors (%s);", dt.c_str(), static_cast<long long>(e.first),
                FormatBytes(static_cast<double>(e.second)).c_str());
  std::printf("\n");
  const int64_t kv_f32 = c.KvBytesPerToken(4), kv_bf16 = c.KvBytesPerToken(2);
  std::printf("KV per token:    %s (f32 cache, CPU), %s (bf16 cache)\n", FormatBytes(static_cast<double>(kv_f32)).c_str(),
              FormatBytes(static_cast<double>(kv_bf16)).c_str());
  std::printf("memory needed:   %s weights + %s KV for one full %lld-token context (f32 cache)\n",
              FormatBytes(static_cast<double>(weight_bytes)).c_str(),
              FormatBytes(static_cast<double>(kv_f32) * static_cast<double>(c.max_position_embeddings)).c_str(),
              static_cast<long long>(c.max_position_embeddings));
  return OkStatus();
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("inspect", "Print a model's architecture, size, dtypes and memory needs");
  sub->add_option("--model,-m", *model, "HF model folder or .gguf file (default: the built-in model)");
  sub->callback([model] {
    Status s = Run(*model);
    if (!s.ok()) {
      std::fprintf(stderr, "tide inspect: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tide::cli
