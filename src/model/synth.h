// Synthetic models: random weights of any supported architecture, written as a Hugging
// Face folder (config.json + safetensors, sharded past shard_bytes), for benchmarks at
// real sizes and for the built-in default model. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"
#include "model/config.h"
#include "tensor/dtype.h"

namespace tide {

class ThreadPool;

struct SynthOptions {
  DType dtype = DType::kBF16;        // f32, f16 or bf16
  uint64_t seed = 0;
  // Matrix entries are uniform with this standard deviation; norm weights are 1 +- this.
  float init_std = 0.02f;
  uint64_t shard_bytes = 2ull << 30;  // past this, shards + model.safetensors.index.json
  ThreadPool* pool = nullptr;         // fills tensors in parallel when set
  std::function<void(uint64_t done_bytes, uint64_t total_bytes)> progress;
};

// Writes `config_json` verbatim as out_dir/config.json (creating out_dir) and random
// weights for `config` (which must have been parsed from that text).
Status SynthesizeModel(const ModelConfig& config, const std::string& config_json, const SynthOptions& options,
                       const std::string& out_dir);

}  // namespace tide
