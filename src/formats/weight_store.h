// WeightStore: every tensor of one checkpoint by name, whatever files hold it
// (one safetensors file, a sharded set via model.safetensors.index.json, or a GGUF).
// Owns the mapped files; TensorInfo pointers stay valid while the store lives.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/tensor_info.h"

namespace tide {

class WeightStore {
 public:
  // A Hugging Face folder: model.safetensors, or model.safetensors.index.json and its
  // shards (every shard named by the index must exist; a tensor listed in two shards or
  // absent from its shard is an error naming both).
  static Result<std::unique_ptr<WeightStore>> OpenHfFolder(const std::string& dir);
  // Takes ownership of an opened GGUF file's tensors.
  static Result<std::unique_ptr<WeightStore>> FromGguf(std::unique_ptr<GgufFile> gguf);

  // nullptr when absent.
  [[nodiscard]] const TensorInfo* Find(const std::string& name) const;
  // Absent -> kNotFound "missing tensor NAME in DIR"; wrong shape -> kInvalidArgument
  // naming tensor, file, expected and actual shapes.
  Result<const TensorInfo*> Get(const std::string& name, const Shape& expected) const;
  [[nodiscard]] const std::map<std::string, TensorInfo>& tensors() const noexcept { return by_name_; }
  [[nodiscard]] const GgufFile* gguf() const noexcept { return gguf_.get(); }
  [[nodiscard]] const std::string& source() const noexcept { return source_; }

  // Reads every tensor's bytes once, so the mapped pages are resident before the first
  // request instead of faulting in from disk under it. `progress(bytes_done,
  // bytes_total)` is called after every chunk of at most 16 MiB and once at the end
  // (done == total); total is the tensors' byte count. Returns that total.
  int64_t Prefetch(const std::function<void(int64_t, int64_t)>& progress = nullptr) const;

 private:
  WeightStore() = default;
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> st_files_;
  std::unique_ptr<GgufFile> gguf_;
  std::map<std::string, TensorInfo> by_name_;
};

}  // namespace tide
