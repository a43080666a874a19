// Tool calls in generated chat text, as vLLM's --tool-call-parser reads them:
//
//   hermes       <tool_call>{"name": "f", "arguments": {...}}</tool_call> blocks (Qwen2.5,
//                Qwen3, Hermes 2 Pro); an unclosed last block runs to the end.
//   llama3_json  the whole reply is {"name": "f", "parameters": {...}} (Llama 3.1/3.2),
//                optionally after <|python_tag|>, several separated by ';'.
//
// Pure functions of the text (no engine, no tokenizer): the unit test and the request
// fuzz target drive them directly. Never throws; anything malformed (bad JSON, no name,
// nesting deeper than 64) means "no tool calls" and the text stays plain content.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tide::server {

enum class ToolParser { kNone, kHermes, kLlama3Json };

// "hermes" / "llama3_json"; nullopt for any other name.
std::optional<ToolParser> ToolParserFromName(std::string_view name);
const char* ToolParserName(ToolParser p);

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text of an object, as OpenAI's function.arguments
};

struct ToolCallParse {
  std::vector<ToolCall> calls;  // empty: the text is plain content
  // The text outside the calls, in order (all of `text` when calls is empty). Starts with
  // text[0, StreamableContent(text)) so that streamed content is a prefix of it.
  std::string content;
};

ToolCallParse ParseToolCalls(ToolParser parser, std::string_view text);

// Streaming: how much of a partial reply is surely content, not the start of a call
// (hermes: up to the first "<tool_call>" or a trailing prefix of it; llama3_json: none
// while the reply may still open with '{' or <|python_tag|>). Never decreases as the
// text grows.
size_t StreamableContent(ToolParser parser, std::string_view text);

// OpenAI's tool_calls array: [{"id": new_id(), "type": "function", "function": {"name",
// "arguments"}}], each with "index" too when `with_index` (streaming deltas).
nlohmann::ordered_json ToolCallsJson(const std::vector<ToolCall>& calls, bool with_index,
                                     const std::function<std::string()>& new_id);

}  // namespace tide::server
