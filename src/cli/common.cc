#include "cli/common.h"

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
