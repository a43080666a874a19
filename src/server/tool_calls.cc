#include "server/tool_calls.h"

#include <nlohmann/json.hpp>

namespace tide::server {
namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
// Deeper JSON is refused before parsing: recursion over it (dump) could exhaust the stack.
constexpr int kMaxDepth = 64;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

std::string_view Trim(std::string_view s) {
  const size_t b = SkipSpace(s, 0);
  size_t e = s.size();
  while (e > b && IsSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// The end (one past the closing brace) of the JSON object opening at s[open], by brace
// matching outside strings; npos when it does not close or nests deeper than kMaxDepth.
size_t ObjectEnd(std::string_view s, size_t open) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = open; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) return std::string_view::npos;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
      if (depth < 0) return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

// One call object: {"name": "...", "arguments"|"parameters": ...}. nullopt unless `text`
// is exactly one JSON object with a non-empty string name.
std::optional<ToolCall> ParseCall(std::string_view text, bool allow_parameters) {
  text = Trim(text);
  if (text.empty() || text.front() != '{' || ObjectEnd(text, 0) != text.size()) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    const auto name = j.find("name");
    if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) return std::nullopt;
    auto args = j.find("arguments");
    if (args == j.end() && allow_parameters) args = j.find("parameters");
    ToolCall call;
    call.name = name->get<std::string>();
    if (args == j.end() || args->is_null()) {
      call.arguments = "{}";
    } else if (args->is_string()) {
      call.arguments = args->get<std::string>();  // already JSON text, as some models write it
    } else {
      call.arguments = args->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return call;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

ToolCallParse Plain(std::string_view text) { return {{}, std::string(text)}; }

ToolCallParse ParseHermes(std::string_view text) {
  ToolCallParse r;
  size_t pos = 0;
  for (;;) {
    const size_t open = text.find(kHermesOpen, pos);
    if (open == std::string_view::npos) {
      r.content.append(text.substr(pos));
      break;
    }
    r.content.append(text.substr(pos, open - pos));
    const size_t body = open + kHermesOpen.size();
    const size_t close = text.find(kHermesClose, body);
    // An unclosed last block (the model stopped on its end-of-turn token) runs to the end.
    const std::string_view inner = text.substr(body, close == std::string_view::npos ? std::string_view::npos : close - body);
    std::optional<ToolCall> call = ParseCall(inner, /*allow_parameters=*/false);
    if (!call) return Plain(text);
    r.calls.push_back(std::move(*call));
    if (close == std::string_view::npos) break;
    pos = close + kHermesClose.size();
  }
  return r;
}

ToolCallParse ParseLlama3Json(std::string_view text) {
  size_t i = SkipSpace(text, 0);
  if (text.substr(i).starts_with(kPythonTag)) i = SkipSpace(text, i + kPythonTag.size());
  if (i >= text.size() || text[i] != '{') return Plain(text);
  ToolCallParse r;
  for (;;) {
    const size_t end = ObjectEnd(text, i);
    if (end == std::string_view::npos) return Plain(text);
    std::optional<ToolCall> call = ParseCall(text.substr(i, end - i), /*allow_parameters=*/true);
    if (!call) return Plain(text);
    r.calls.push_back(std::move(*call));
    const size_t next = SkipSpace(text, end);
    if (next < text.size() && text[next] == ';') {
      const size_t after = SkipSpace(text, next + 1);
      if (after < text.size() && text[after] == '{') {
        i = after;
        continue;
      }
      if (after >= text.size()) break;  // a trailing ';'
    }
    r.content = std::string(text.substr(end));
    break;
  }
  return r;
}

}  // namespace

std::optional<ToolParser> ToolParserFromName(std::string_view name) {
  if (name == "hermes") return ToolParser::kHermes;
  if (name == "llama3_json") return ToolParser::kLlama3Json;
  return std::nullopt;
}

const char* ToolParserName(ToolParser p) {
  switch (p) {
    case ToolParser::kHermes: return "hermes";
    case ToolParser::kLlama3Json: return "llama3_json";
    case ToolParser::kNone: break;
  }
  return "none";
}

ToolCallParse ParseToolCalls(ToolParser parser, std::string_view text) {
  switch (parser) {
    case ToolParser::kHermes: return ParseHermes(text);
    case ToolParser::kLlama3Json: return ParseLlama3Json(text);
    case ToolParser::kNone: break;
  }
  return Plain(text);
}

nlohmann::ordered_json ToolCallsJson(const std::vector<ToolCall>& calls, bool with_index,
                                     const std::function<std::string()>& new_id) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    nlohmann::ordered_json c;
    if (with_index) c["index"] = k;
    c["id"] = new_id();
    c["type"] = "function";
    c["function"] = {{"name", calls[k].name}, {"arguments", calls[k].arguments}};
    out.push_back(std::move(c));
  }
  return out;
}

size_t StreamableContent(ToolParser parser, std::string_view text) {
  if (parser == ToolParser::kHermes) {
    const size_t open = text.find(kHermesOpen);
    if (open != std::string_view::npos) return open;
    // Hold back a tail that may be the start of "<tool_call>".
    for (size_t k = std::min(kHermesOpen.size() - 1, text.size()); k > 0; --k)
      if (text.ends_with(kHermesOpen.substr(0, k))) return text.size() - k;
    return text.size();
  }
  if (parser == ToolParser::kLlama3Json) {
    const size_t i = SkipSpace(text, 0);
    if (i == text.size()) return 0;  // only whitespace so far: the reply may still be a call
    const std::string_view rest = text.substr(i);
    if (rest.front() == '{' || rest.starts_with(kPythonTag) || kPythonTag.starts_with(rest)) return 0;
    return text.size();
  }
  return text.size();
}

}  // namespace tide::server
