#include "model/builtin.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/log.h"
#include "model/synth.h"

namespace tide {
namespace {

// Bump when the model or tokenizer changes, so stale caches are not reused.
constexpr const char* kBuiltinName = "builtin-default-v1";

constexpr const char* kConfig = R"({
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": 259,
  "hidden_size": 128,
  "intermediate_size": 352,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 2048,
  "rms_norm_eps": 1e-5,
  "rope_theta": 10000.0,
  "hidden_act": "silu",
  "tie_word_embeddings": true,
  "bos_token_id": 256,
  "eos_token_id": 257
}
)";

// GPT-2's byte-to-character map: printable bytes stand for themselves, the others are
// shifted to U+0100.. so every byte has a visible, whitespace-free character.
std::string ByteToUnicode(int b) {
  int cp = b;
  const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      const bool p = (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff);
      if (!p) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xc0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return s;
}

std::string TokenizerJson() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteToUnicode(b)] = b;
  vocab["<s>"] = 256;
  vocab["</s>"] = 257;
  vocab["<pad>"] = 258;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  const char* specials[] = {"<s>", "</s>", "<pad>"};
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", 256 + i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  nlohmann::ordered_json t = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}}},
  };
  return t.dump(2);
}

std::string CacheRoot() {
  if (const char* d = std::getenv("TIDE_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/tide";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/tide";
  return "/tmp/tide-cache";
}

Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const std::string p = path.substr(0, i);
      if (::mkdir(p.c_str(), 0755) != 0 && !IsDirectory(p)) return Internal(p + ": cannot create folder");
    }
  }
  return OkStatus();
}

}  // namespace

Result<std::string> EnsureBuiltinModel() {
  const std::string root = CacheRoot();
  const std::string dir = root + "/" + kBuiltinName;
  if (FileExists(dir + "/.complete")) return dir;
  RETURN_IF_ERROR(MakeDirs(root));
  // Build in a private folder and rename, so a concurrent or interrupted run never
  // leaves a half-written model where the next one would trust it.
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  RETURN_IF_ERROR(MakeDirs(tmp));
  ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(kConfig, "built-in config"));
  SynthOptions o;
  o.dtype = DType::kF32;
  o.seed = 0;
  o.init_std = 0.25f;  // large enough that the random model has decided preferences
  RETURN_IF_ERROR(SynthesizeModel(config, kConfig, o, tmp));
  RETURN_IF_ERROR(WriteStringToFile(tmp + "/tokenizer.json", TokenizerJson()));
  RETURN_IF_ERROR(WriteStringToFile(tmp + "/tokenizer_config.json",
                                    R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true})"));
  RETURN_IF_ERROR(WriteStringToFile(tmp + "/.complete", "ok\n"));
  if (std::rename(tmp.c_str(), dir.c_str()) != 0 && !FileExists(dir + "/.complete"))
    return Internal("cannot move the built-in model into " + dir);
  TIDE_LOG_INFO("wrote the built-in default model to %s", dir.c_str());
  return dir;
}

}  // namespace tide
