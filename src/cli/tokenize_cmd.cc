// `tide tokenize --model PATH [--decode]`
//   in:  {"prompt": "...", "add_special_tokens": true}
//        {"messages": [...], "add_generation_prompt": true, "tools": [...],
//         "chat_template_kwargs": {...}, "add_special_tokens": false}
//   out: {"tokens": [...]}  (+ "prompt": rendered text for messages)
// --decode:
//   in:  {"tokens": [...], "skip_special_tokens": false}
//   out: {"text": "..."}
// PATH is a folder with tokenizer files (no weights needed) or a .gguf file.
#include "cli/tokenize_cmd.h"

#include <cstring>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tide {
namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "usage: tide tokenize --model PATH [--decode]\n"
    "  Reads JSON lines on stdin and writes one JSON line per input.\n"
    "  encode: {\"prompt\": \"...\"} or {\"messages\": [...], \"add_generation_prompt\": true}\n"
    "          optional \"add_special_tokens\" (default: true for prompts, false for messages)\n"
    "          -> {\"tokens\": [...]} (+ \"prompt\" for messages)\n"
    "  --decode: {\"tokens\": [...], \"skip_special_tokens\": false} -> {\"text\": \"...\"}\n"
    "  PATH: a folder with tokenizer.json / tokenizer.model, or a .gguf file.\n";

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  if (IsDirectory(path)) return Tokenizer::FromHfFolder(path);
  if (!FileExists(path)) return NotFound(path + ": no such file or folder");
  ASSIGN_OR_RETURN(auto g, GgufFile::Open(path));
  return Tokenizer::FromGguf(*g);
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json Handle(const Tokenizer& tok, const std::string& line, bool decode) {
  json in;
  try {
    in = json::parse(line);
  } catch (const json::exception& e) {
    return {{"error", std::string("invalid JSON: ") + e.what()}};
  }
  if (!in.is_object()) return {{"error", "each line must be a JSON object"}};
  try {
    if (decode) {
      if (!in.contains("tokens") || !in.at("tokens").is_array()) return {{"error", "missing \"tokens\" array"}};
      std::vector<int32_t> ids;
      for (const json& x : in.at("tokens")) {
        if (!x.is_number_integer()) return {{"error", "\"tokens\" must hold integers"}};
        int64_t v = x.get<int64_t>();
        if (v < 0 || v > INT32_MAX) return {{"error", "token id " + std::to_string(v) + " is out of range"}};
        ids.push_back(static_cast<int32_t>(v));
      }
      auto text = tok.Decode(ids, in.value("skip_special_tokens", false));
      if (!text.ok()) return {{"error", text.status().ToString()}};
      return {{"text", *text}};
    }
    if (in.contains("messages")) {
      // The chat-template interpreter (tokenizer/jinja) is not part of this build yet.
      return {{"error", "chat templates not available yet: use {\"prompt\": ...}"}};
    }
    if (!in.contains("prompt") || !in.at("prompt").is_string()) {
      return {{"error", "expected {\"prompt\": string} or {\"messages\": [...]}"}};
    }
    auto ids = tok.Encode(in.at("prompt").get<std::string>(), in.value("add_special_tokens", true));
    if (!ids.ok()) return {{"error", ids.status().ToString()}};
    return {{"tokens", *ids}};
  } catch (const json::exception& e) {
    return {{"error", std::string("bad field: ") + e.what()}};
  }
}

}  // namespace

int RunTokenize(int argc, char** argv) {
  std::string model;
  bool decode = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
      model = argv[++i];
    } else if (std::strncmp(argv[i], "--model=", 8) == 0) {
      model = argv[i] + 8;
    } else if (std::strcmp(argv[i], "--decode") == 0) {
      decode = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << kUsage;
      return 0;
    } else {
      std::cerr << "tide tokenize: unknown argument '" << argv[i] << "'\n" << kUsage;
      return 2;
    }
  }
  if (model.empty()) {
    std::cerr << "tide tokenize: --model is required\n" << kUsage;
    return 2;
  }
  auto tok = LoadTokenizer(model);
  if (!tok.ok()) {
    std::cerr << "tide tokenize: " << tok.status().ToString() << "\n";
    return 2;
  }
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty() || line == "\r") continue;
    std::cout << Dump(Handle(**tok, line, decode)) << '\n';
    std::cout.flush();
  }
  return 0;
}

}  // namespace tide
