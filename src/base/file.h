// Files: read-only memory maps and whole-file reads, with errors as Status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace tide {

// A read-only, private memory map of a whole file. Move-only; unmaps on destruction.
// An empty file maps to data() == nullptr, size() == 0.
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  [[nodiscard]] const uint8_t* data() const noexcept { return data_; }
  [[nodiscard]] size_t size() const noexcept { return size_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

// Reads a whole (small) file, e.g. config.json. Refuses files over max_bytes.
Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes = 64u << 20);
Status WriteStringToFile(const std::string& path, const std::string& data);
bool FileExists(const std::string& path);
bool IsDirectory(const std::string& path);

}  // namespace tide
