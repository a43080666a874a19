#include "model/synth.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "model/weights.h"

namespace tide {
namespace {

// Fills n values of tensor number `index` in chunks whose seeds depend only on
// (seed, index, chunk), so the result is the same whatever the thread count.
void FillTensor(const WeightDecl& d, uint64_t seed, uint64_t index, const SynthOptions& o, uint8_t* out) {
  const int64_t n = d.shape.numel();
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const float a = o.init_std * std::sqrt(3.f);  // uniform(-a, a) has std init_std
  auto fill = [&](int64_t c0, int64_t c1) {
    std::vector<float> buf(kChunk);
    for (int64_t c = c0; c < c1; ++c) {
      Rng rng(Mix64(seed ^ Mix64(index * 0x100000001b3ull + static_cast<uint64_t>(c))));
      const int64_t begin = c * kChunk, len = std::min(kChunk, n - begin);
      for (int64_t i = 0; i < len; ++i) {
        const float u = rng.Uniform(-a, a);
        buf[static_cast<size_t>(i)] = d.is_norm ? 1.f + u : u;
      }
      QuantizeRow(o.dtype, buf.data(), out + DTypeBytes(o.dtype, static_cast<uint64_t>(begin)), len);
    }
  };
  if (o.pool != nullptr) {
    o.pool->ParallelFor(chunks, 1, fill);
  } else {
    fill(0, chunks);
  }
}

}  // namespace

Status SynthesizeModel(const ModelConfig& config, const std::string& config_json, const SynthOptions& o,
                       const std::string& out_dir) {
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16)
    return InvalidArgument("synth writes f32, f16 or bf16 weights, not " + std::string(DTypeName(o.dtype)));
  if (::mkdir(out_dir.c_str(), 0755) != 0 && !IsDirectory(out_dir))
    return Internal(out_dir + ": cannot create folder");
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/config.json", config_json));

  const std::vector<WeightDecl> decls = DeclareWeights(config, nullptr);
  uint64_t total = 0;
  for (const auto& d : decls) total += DTypeBytes(o.dtype, static_cast<uint64_t>(d.shape.numel()));

  // Group tensors into shards of at most shard_bytes (a bigger tensor gets its own).
  std::vector<std::vector<size_t>> shards(1);
  uint64_t in_shard = 0;
  for (size_t i = 0; i < decls.size(); ++i) {
    const uint64_t b = DTypeBytes(o.dtype, static_cast<uint64_t>(decls[i].shape.numel()));
    if (!shards.back().empty() && in_shard + b > o.shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += b;
  }
  const size_t n_shards = shards.size();
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t done = 0;
  for (size_t s = 0; s < n_shards; ++s) {
    char name[64];
    if (n_shards == 1) {
      std::snprintf(name, sizeof(name), "model.safetensors");
    } else {
      std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, n_shards);
    }
    std::vector<std::vector<uint8_t>> data;
    std::vector<SafetensorsWriteEntry> entries;
    data.reserve(shards[s].size());
    for (size_t i : shards[s]) {
      const WeightDecl& d = decls[i];
      data.emplace_back(DTypeBytes(o.dtype, static_cast<uint64_t>(d.shape.numel())));
      FillTensor(d, o.seed, i, o, data.back().data());
      entries.push_back({d.name, o.dtype, d.shape, data.back().data()});
      weight_map[d.name] = name;
      done += data.back().size();
      if (o.progress) o.progress(done, total);
    }
    RETURN_IF_ERROR(WriteSafetensors(out_dir + "/" + name, entries, {{"format", "pt"}}));
  }
  if (n_shards > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    RETURN_IF_ERROR(WriteStringToFile(out_dir + "/model.safetensors.index.json", index.dump(2)));
  }
  return OkStatus();
}

}  // namespace tide
