#include "cli/common.h"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "base/file.h"
#include "model/builtin.h"

namespace tide::cli {

Result<std::string> ResolveModelPath(const std::string& model) {
  if (model.empty()) return EnsureBuiltinModel();
  return model;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& path, const Model& model) {
  if (IsDirectory(path)) return Tokenizer::FromHfFolder(path);
  if (model.weights().gguf() == nullptr) return InvalidArgument(path + ": no tokenizer found");
  return Tokenizer::FromGguf(*model.weights().gguf());
}

void AddEngineFlags(CLI::App* sub, EngineFlags* f, const std::string& kv_default, unsigned which) {
  if (which & kKvCacheMemoryFlag)
    sub->add_option("--kv-cache-memory", f->kv_cache_memory, "KV cache budget (e.g. 512M, 4G); default: " + kv_default);
  if (which & kBlockSizeFlag)
    sub->add_option("--block-size", f->block_size, "Tokens per KV block")->capture_default_str()->check(CLI::Range(1, 1024));
  if (which & kMaxNumSeqsFlag)
    sub->add_option("--max-num-seqs", f->max_num_seqs, "Sequences running at once")->capture_default_str()->check(CLI::PositiveNumber);
  if (which & kMaxNumBatchedTokensFlag)
    sub->add_option("--max-num-batched-tokens", f->max_num_batched_tokens, "Tokens per engine step")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
  if (which & kMaxModelLenFlag)
    sub->add_option("--max-model-len", f->max_model_len, "Context length (prompt + output); 0 = the default")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
  if (which & kPrefixCachingFlags)
    sub->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", f->enable_prefix_caching,
                  "Reuse the KV blocks of cached prompt prefixes (default on)");
}

Status ApplyEngineFlags(const EngineFlags& f, EngineOptions* eo) {
  if (!f.kv_cache_memory.empty()) {
    Result<int64_t> bytes = ParseByteSize(f.kv_cache_memory);
    if (!bytes.ok()) return bytes.status().WithContext("--kv-cache-memory");
    eo->kv_cache_bytes = *bytes;
    eo->num_kv_blocks = 0;
  }
  eo->block_size = f.block_size;
  eo->max_num_seqs = f.max_num_seqs;
  eo->max_num_batched_tokens = f.max_num_batched_tokens;
  if (f.max_model_len > 0) eo->max_model_len = f.max_model_len;
  eo->enable_prefix_caching = f.enable_prefix_caching;
  return OkStatus();
}

std::string FormatBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

}  // namespace tide::cli
