// GGUF (v2, v3): magic "GGUF", version, tensor count, metadata key/value pairs, tensor
// infos, then aligned tensor data (general.alignment, default 32). All little-endian.
// See docs/formats.md for the validation rules tide applies.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/file.h"
#include "base/status.h"
#include "formats/tensor_info.h"

namespace tide {

// A metadata value. Integers of every width widen to int64/uint64; f32/f64 to double.
// Arrays hold values of one element type.
struct GgufValue {
  enum class Kind { kUInt, kInt, kFloat, kBool, kString, kArray };
  Kind kind = Kind::kUInt;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GgufValue> array;
};

class GgufFile {
 public:
  // Maps and validates the file; tensors of types tide does not read (e.g. Q4_K) are
  // kept in `unsupported_tensors()` so a loader can name them when they are needed.
  // Errors name the file (and tensor or key): kNotFound if it cannot be opened,
  // kDataLoss if it breaks any rule in docs/formats.md, kUnimplemented for GGUF v1,
  // big-endian or unknown versions. Nothing stays mapped after an error.
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);

  // Validates a whole file image in memory (the fuzz entry point). `name` is for
  // messages and becomes path(). TensorInfo pointers point into `data`, which must
  // outlive the result. Errors as Open.
  static Result<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size, const std::string& name);

  [[nodiscard]] uint32_t version() const noexcept { return version_; }
  [[nodiscard]] const std::map<std::string, GgufValue>& metadata() const noexcept { return metadata_; }
  [[nodiscard]] const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  // name -> GGML type id, for tensors whose type tide cannot read.
  [[nodiscard]] const std::map<std::string, uint32_t>& unsupported_tensors() const noexcept { return unsupported_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Typed look-ups: nullopt when absent or of another kind.
  [[nodiscard]] const GgufValue* Find(const std::string& key) const;
  [[nodiscard]] std::optional<std::string> GetString(const std::string& key) const;
  [[nodiscard]] std::optional<int64_t> GetInt(const std::string& key) const;  // any int kind
  [[nodiscard]] std::optional<double> GetFloat(const std::string& key) const;  // float or int
  [[nodiscard]] std::optional<bool> GetBool(const std::string& key) const;
  [[nodiscard]] const std::vector<GgufValue>* GetArray(const std::string& key) const;

 private:
  GgufFile() = default;
  std::unique_ptr<MappedFile> file_;  // null when parsed from memory
  std::string path_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, uint32_t> unsupported_;
};

// Writes a GGUF v3 file (tests and `tide synth --format gguf`): metadata and tensors in
// the given order; tensor data aligned to 32 bytes. Tensor shapes are row-major here
// and reversed into GGUF's ne[] order on disk.
struct GgufWriteTensor {
  std::string name;
  DType dtype;
  Shape shape;
  const void* data;
};
Status WriteGguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                 const std::vector<GgufWriteTensor>& tensors);
// The same bytes WriteGguf writes, in memory (tests, fuzz seeds). Each value is
// written in the narrowest of u32/u64, i32/i64, f32/f64 that holds it exactly (an
// array uses the widest its elements need; an empty array is written as u32[]), since
// GgufValue does not remember the original width. A `general.alignment` entry, if
// given, sets the data alignment instead of 32.
// Errors: kInvalidArgument for an unsupported dtype (f32, f16, bf16, q8_0, q4_0 only),
// a row length not a multiple of the block size, a duplicate name or key, an array
// mixing kinds, or a bad general.alignment.
Result<std::string> EncodeGguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                               const std::vector<GgufWriteTensor>& tensors);

// The ggml name of a GGUF tensor type id ("Q4_K"), or "unknown"; for messages about
// unsupported_tensors().
std::string_view GgmlTypeName(uint32_t type);

}  // namespace tide
