// safetensors: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the tensor bytes (offsets relative to the end of the header).
// See docs/formats.md for the validation rules tide applies.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/status.h"
#include "formats/tensor_info.h"

namespace tide {

// One parsed safetensors file, memory-mapped. Tensor data pointers point into the map
// and stay valid while this object lives. Move-only.
class SafetensorsFile {
 public:
  // Maps and validates the file. Errors (kDataLoss for corrupt, kUnimplemented for
  // unsupported dtypes) name the file and, where one is involved, the tensor.
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  // Validates a whole file image already in memory (the fuzz entry point). `data` must
  // outlive the result's use; `name` is used in error messages only. Tensors come back
  // in data-offset order; their data pointers are only as aligned as the writer padded
  // the header (8 bytes for tide's writer and the usual Python one).
  static Result<std::vector<TensorInfo>> Parse(const uint8_t* data, size_t size, const std::string& name,
                                               std::map<std::string, std::string>* metadata = nullptr);

  [[nodiscard]] const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  [[nodiscard]] const std::string& path() const noexcept { return file_->path(); }

 private:
  SafetensorsFile() = default;
  std::unique_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Serialises tensors (f32/f16/bf16 only) to a safetensors file: used by `tide synth`
// and by tests that build hostile files. Tensors are written in the order given.
struct SafetensorsWriteEntry {
  std::string name;
  DType dtype;
  Shape shape;
  const void* data;  // nbytes = DTypeBytes(dtype, shape.numel())
};
Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& entries,
                        const std::map<std::string, std::string>& metadata = {});
// The same bytes WriteSafetensors writes, in memory (tests, fuzz seeds). The JSON header
// is padded with spaces so that the data section starts 8-byte aligned in the file.
// Errors: kInvalidArgument for an unsupported dtype, a duplicate/empty/"__metadata__"
// name, a negative dim, missing data, or names/metadata that are not valid UTF-8.
Result<std::string> EncodeSafetensors(const std::vector<SafetensorsWriteEntry>& entries,
                                      const std::map<std::string, std::string>& metadata = {});

}  // namespace tide
