// Shared pieces of the subcommands: resolving --model, loading model and tokenizer,
// the engine flags.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "backend/exec.h"
#include "engine/engine_options.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace CLI {
class App;
}

namespace tide::cli {

// "" -> the built-in default model (written on first use); otherwise the path as given.
Result<std::string> ResolveModelPath(const std::string& model);

// The tokenizer that belongs to a loaded model: the folder's tokenizer files or the
// GGUF's embedded vocabulary.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& path, const Model& model);

// The engine flags of serve, generate and bench offline, named as vLLM names them. Each
// field's value when AddEngineFlags runs is the default it shows.
struct EngineFlags {
  std::string kv_cache_memory;           // --kv-cache-memory; "" = not given (the command decides)
  int block_size = 16;                   // --block-size
  int max_num_seqs = 256;                // --max-num-seqs
  int64_t max_num_batched_tokens = 2048; // --max-num-batched-tokens
  int64_t max_model_len = 0;             // --max-model-len; 0 = not given
  bool enable_prefix_caching = true;     // --enable-prefix-caching / --no-enable-prefix-caching
  bool async_scheduling = true;          // --async-scheduling / --no-async-scheduling
};
enum EngineFlag : unsigned {
  kKvCacheMemoryFlag = 1u << 0,
  kBlockSizeFlag = 1u << 1,
  kMaxNumSeqsFlag = 1u << 2,
  kMaxNumBatchedTokensFlag = 1u << 3,
  kMaxModelLenFlag = 1u << 4,
  kPrefixCachingFlags = 1u << 5,
  kAsyncSchedulingFlags = 1u << 6,
  kAllEngineFlags = (1u << 7) - 1,
};

// Adds the flags in `which` to `sub`, bound to *flags (which must outlive the parse).
// `kv_default` says in the help what an absent --kv-cache-memory means.
void AddEngineFlags(CLI::App* sub, EngineFlags* flags, const std::string& kv_default,
                    unsigned which = kAllEngineFlags);

// Copies the flags into *eo. A given --kv-cache-memory replaces eo->kv_cache_bytes (and
// clears num_kv_blocks); --max-model-len 0 leaves eo->max_model_len as it is.
// kInvalidArgument for a malformed --kv-cache-memory, naming the flag.
[[nodiscard]] Status ApplyEngineFlags(const EngineFlags& flags, EngineOptions* eo);

// Puts the weights where they will run, with progress lines on stderr. On the CPU the
// mapped files are read once (so the first request does not fault them in from disk);
// on CUDA they are copied to the GPU, and the KV budget `utilization` (of the GPU's
// memory) leaves is returned: the fraction less what is already in use (weights, other
// processes) and 1 GiB for activations and workspace; 0 when utilization <= 0 (the
// caller sizes the cache itself). kUnimplemented without a usable GPU.
Result<int64_t> PlaceWeights(Model& model, const ExecContext& ctx, double utilization);

// Human-readable byte count ("1.23 GiB").
std::string FormatBytes(double bytes);

}  // namespace tide::cli
