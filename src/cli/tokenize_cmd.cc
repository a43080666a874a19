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
#ifdef TIDE_HAS_JINJA
#include "tokenizer/jinja/jinja.h"
#endif

namespace tide {
namespace {

using nlohmann::json;
// Requests keep their key order: templates print tools with tojson as Python would.
using ordered_json = nlohmann::ordered_json;

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

// Parsed once, on the first messages request.
struct ChatState {
#ifdef TIDE_HAS_JINJA
  std::unique_ptr<jinja::Template> tmpl;
#endif
  std::string error;
  bool tried = false;
};

json RenderMessages(const Tokenizer& tok, const ordered_json& in, ChatState* chat) {
#ifdef TIDE_HAS_JINJA
  if (!chat->tried) {
    chat->tried = true;
    if (tok.chat_template().empty()) {
      chat->error = "the model has no chat template";
    } else {
      auto t = jinja::Template::Parse(tok.chat_template());
      if (t.ok()) {
        chat->tmpl = std::move(t).value();
      } else {
        chat->error = "chat template: " + t.status().ToString();
      }
    }
  }
  if (!chat->tmpl) return {{"error", chat->error}};
  if (!in.at("messages").is_array()) return {{"error", "\"messages\" must be an array"}};
  ordered_json tools = in.contains("tools") ? in.at("tools") : ordered_json();
  ordered_json kwargs = in.contains("chat_template_kwargs") ? in.at("chat_template_kwargs") : ordered_json();
  if (!kwargs.is_null() && !kwargs.is_object()) return {{"error", "\"chat_template_kwargs\" must be an object"}};
  ordered_json ctx = jinja::MakeChatContext(in.at("messages"), tools, in.value("add_generation_prompt", false),
                                            tok.bos_token(), tok.eos_token(), kwargs);
  auto text = chat->tmpl->Render(ctx);
  if (!text.ok()) return {{"error", text.status().ToString()}};
  // Rendered prompts already carry their special tokens: HF's apply_chat_template
  // tokenizes them with add_special_tokens=False.
  auto ids = tok.Encode(*text, in.value("add_special_tokens", false));
  if (!ids.ok()) return {{"error", ids.status().ToString()}};
  return {{"tokens", *ids}, {"prompt", *text}};
#else
  return {{"error", "chat templates not available in this build: use {\"prompt\": ...}"}};
#endif
}

json Handle(const Tokenizer& tok, const std::string& line, bool decode, ChatState* chat) {
  ordered_json in;
  try {
    in = ordered_json::parse(line);
  } catch (const json::exception& e) {
    return {{"error", std::string("invalid JSON: ") + e.what()}};
  }
  if (!in.is_object()) return {{"error", "each line must be a JSON object"}};
  try {
    if (decode) {
      if (!in.contains("tokens") || !in.at("tokens").is_array()) return {{"error", "missing \"tokens\" array"}};
      std::vector<int32_t> ids;
      for (const ordered_json& x : in.at("tokens")) {
        if (!x.is_number_integer()) return {{"error", "\"tokens\" must hold integers"}};
        int64_t v = x.get<int64_t>();
        if (v < 0 || v > INT32_MAX) return {{"error", "token id " + std::to_string(v) + " is out of range"}};
        ids.push_back(static_cast<int32_t>(v));
      }
      auto text = tok.Decode(ids, in.value("skip_special_tokens", false));
      if (!text.ok()) return {{"error", text.status().ToString()}};
      return {{"text", *text}};
    }
    if (in.contains("messages")) return RenderMessages(tok, in, chat);
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
  ChatState chat;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty() || line == "\r") continue;
    std::cout << Dump(Handle(**tok, line, decode, &chat)) << '\n';
    std::cout.flush();
  }
  return 0;
}

}  // namespace tide
