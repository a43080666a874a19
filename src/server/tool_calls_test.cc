// The tool-call parsers on many model outputs: well-formed calls in both formats, text
// around them, and malformed output that must stay plain content (never a crash).
#include "server/tool_calls.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/rng.h"

namespace tide::server {
namespace {

using nlohmann::json;

TEST(ToolCallsTest, ParserNames) {
  EXPECT_EQ(ToolParserFromName("hermes"), ToolParser::kHermes);
  EXPECT_EQ(ToolParserFromName("llama3_json"), ToolParser::kLlama3Json);
  EXPECT_FALSE(ToolParserFromName("mistral").has_value());
  EXPECT_FALSE(ToolParserFromName("").has_value());
  EXPECT_STREQ(ToolParserName(ToolParser::kLlama3Json), "llama3_json");
}

TEST(ToolCallsTest, HermesOneCallAsQwenWritesIt) {
  const ToolCallParse r = ParseToolCalls(
      ToolParser::kHermes,
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(r.calls[0].arguments), json::parse(R"({"city": "Paris", "days": 3})"));
  EXPECT_EQ(r.content, "");
}

TEST(ToolCallsTest, HermesTextAroundAndSeveralCalls) {
  const ToolCallParse r = ParseToolCalls(ToolParser::kHermes,
                                         "Let me look both up.\n<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n"
                                         "<tool_call>{\"name\": \"b\", \"arguments\": {\"x\": [1, {\"y\": \"}\"}]}}</tool_call> done");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "a");
  EXPECT_EQ(r.calls[0].arguments, "{}");
  EXPECT_EQ(r.calls[1].name, "b");
  EXPECT_EQ(json::parse(r.calls[1].arguments), json::parse(R"({"x": [1, {"y": "}"}]})"));
  EXPECT_EQ(r.content, "Let me look both up.\n\n done");
}

TEST(ToolCallsTest, HermesUnclosedLastBlockAndArgumentForms) {
  ToolCallParse r = ParseToolCalls(ToolParser::kHermes, "<tool_call>{\"name\": \"f\", \"arguments\": {\"q\": 1}}\n");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(json::parse(r.calls[0].arguments), json::parse(R"({"q": 1})"));
  // arguments already a JSON string; arguments absent; unicode kept.
  r = ParseToolCalls(ToolParser::kHermes, "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"q\\\": 2}\"}</tool_call>"
                                          "<tool_call>{\"name\": \"g\"}</tool_call>"
                                          "<tool_call>{\"name\": \"h\", \"arguments\": {\"s\": \"café ✓\"}}</tool_call>");
  ASSERT_EQ(r.calls.size(), 3u);
  EXPECT_EQ(r.calls[0].arguments, "{\"q\": 2}");
  EXPECT_EQ(r.calls[1].arguments, "{}");
  EXPECT_EQ(json::parse(r.calls[2].arguments)["s"], "café ✓");
  EXPECT_EQ(r.content, "");
}

TEST(ToolCallsTest, Llama3JsonShapes) {
  ToolCallParse r = ParseToolCalls(ToolParser::kLlama3Json,
                                   "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(r.calls[0].arguments), json::parse(R"({"city": "Oslo"})"));
  EXPECT_EQ(r.content, "");
  r = ParseToolCalls(ToolParser::kLlama3Json,
                     "  <|python_tag|>{\"name\": \"a\", \"arguments\": {\"k\": \"v;{\"}}; {\"name\": \"b\", \"parameters\": {}}");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(json::parse(r.calls[0].arguments), json::parse(R"({"k": "v;{"})"));
  EXPECT_EQ(r.calls[1].name, "b");
  r = ParseToolCalls(ToolParser::kLlama3Json, "{\"name\": \"a\", \"parameters\": {}}\nThat is the call.");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.content, "\nThat is the call.");
}

// Each must come back as plain content, the whole text unchanged.
TEST(ToolCallsTest, MalformedOutputIsPlainContent) {
  const std::vector<std::string> hermes = {
      "",
      "just words",
      "<tool_call>",
      "<tool_call></tool_call>",
      "<tool_call>{</tool_call>",
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}</tool_call>",  // unbalanced
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}}} </tool_call>",
      "<tool_call>{\"arguments\": {}}</tool_call>",                           // no name
      "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
      "<tool_call>{\"name\": 7, \"arguments\": {}}</tool_call>",
      "<tool_call>[\"name\", \"f\"]</tool_call>",
      "<tool_call>{'name': 'f'}</tool_call>",                                 // Python, not JSON
      "<tool_call>{\"name\": \"f\"} trailing</tool_call>",
      "<tool_call>{\"name\": \"f\"}</tool_call><tool_call>{\"name\": </tool_call>",  // one bad block spoils all
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"\xff\xfe\"}}</tool_call>",  // invalid UTF-8
      "<tool_call>{\"name\": \"f\", \"arguments\": " + std::string(200, '[') + std::string(200, ']') + "}</tool_call>",
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"unterminated}}</tool_call>",
      "</tool_call>{\"name\": \"f\"}",
      "<tool_call {\"name\": \"f\"}</tool_call>",
  };
  for (const std::string& t : hermes) {
    const ToolCallParse r = ParseToolCalls(ToolParser::kHermes, t);
    EXPECT_TRUE(r.calls.empty()) << t;
    EXPECT_EQ(r.content, t);
  }
  const std::vector<std::string> llama = {
      "",
      "   ",
      "Sure: {\"name\": \"f\", \"parameters\": {}}",  // a call must open the reply
      "{",
      "{\"name\": \"f\", \"parameters\": {}",
      "{\"parameters\": {}}",
      "{\"name\": null}",
      "<|python_tag|>",
      "<|python_tag|>not json",
      "{\"name\": \"f\"}; {\"name\": }",
      "{\"name\": \"f\", \"parameters\": " + std::string(100, '{') + "}",
      "{} ",
      "{\"name\": \"f\", \"parameters\": {\"s\": \"\xc3\x28\"}}",
  };
  for (const std::string& t : llama) {
    const ToolCallParse r = ParseToolCalls(ToolParser::kLlama3Json, t);
    EXPECT_TRUE(r.calls.empty()) << t;
    EXPECT_EQ(r.content, t);
  }
  EXPECT_TRUE(ParseToolCalls(ToolParser::kNone, "<tool_call>{\"name\": \"f\"}</tool_call>").calls.empty());
}

TEST(ToolCallsTest, OpenAiShapeOfToolCalls) {
  const ToolCallParse r = ParseToolCalls(
      ToolParser::kHermes, "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>");
  int next = 0;
  const auto id = [&] { return "call_" + std::to_string(next++); };
  const nlohmann::ordered_json msg = ToolCallsJson(r.calls, /*with_index=*/false, id);
  EXPECT_EQ(msg, nlohmann::ordered_json::parse(R"([
      {"id": "call_0", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
      {"id": "call_1", "type": "function", "function": {"name": "b", "arguments": "{}"}}])"));
  const nlohmann::ordered_json delta = ToolCallsJson(r.calls, /*with_index=*/true, id);
  ASSERT_EQ(delta.size(), 2u);
  EXPECT_EQ(delta[1]["index"], 1);
  EXPECT_EQ(delta[1]["id"], "call_3");
  EXPECT_EQ(delta[0].begin().key(), "index");
}

TEST(ToolCallsTest, StreamableContentHoldsBackPossibleCalls) {
  EXPECT_EQ(StreamableContent(ToolParser::kHermes, "Hello"), 5u);
  EXPECT_EQ(StreamableContent(ToolParser::kHermes, "Hello <tool"), 6u);
  EXPECT_EQ(StreamableContent(ToolParser::kHermes, "Hello <"), 6u);
  EXPECT_EQ(StreamableContent(ToolParser::kHermes, "Hello <b>"), 9u);
  EXPECT_EQ(StreamableContent(ToolParser::kHermes, "Hi <tool_call>{\"name\"</tool_call> more"), 3u);
  EXPECT_EQ(StreamableContent(ToolParser::kLlama3Json, ""), 0u);
  EXPECT_EQ(StreamableContent(ToolParser::kLlama3Json, "  "), 0u);
  EXPECT_EQ(StreamableContent(ToolParser::kLlama3Json, " {\"na"), 0u);
  EXPECT_EQ(StreamableContent(ToolParser::kLlama3Json, "<|pyth"), 0u);
  EXPECT_EQ(StreamableContent(ToolParser::kLlama3Json, "<b"), 2u);
  EXPECT_EQ(StreamableContent(ToolParser::kLlama3Json, "Hello {"), 7u);
  EXPECT_EQ(StreamableContent(ToolParser::kNone, "<tool_call>"), 11u);
}

// Random splices of call fragments: no crash, and the streaming contract holds for every
// prefix (streamable content never shrinks and is always a prefix of the final content).
TEST(ToolCallsTest, RandomFragmentsKeepTheStreamingContract) {
  const std::vector<std::string> pieces = {
      "<tool_call>", "</tool_call>", "{", "}", "[", "]", "\"name\"", ":", ",", "\"f\"", "\"arguments\"",
      "\"parameters\"", "{\"name\": \"f\", \"arguments\": {\"a\": 1}}", "<|python_tag|>", ";", " ", "\n", "\\", "\"",
      "text", "<", "tool", "\xff", "é", "null", "1e999", "<tool_call>{\"name\": \"g\"}</tool_call>",
      "{\"name\": \"h\", \"parameters\": {}}"};
  Rng rng(11);
  int with_calls[3] = {0, 0, 0};
  for (int iter = 0; iter < 4000; ++iter) {
    std::string text;
    const int n = 1 + static_cast<int>(rng.NextU64() % 12);
    for (int k = 0; k < n; ++k) text += pieces[rng.NextU64() % pieces.size()];
    for (ToolParser p : {ToolParser::kHermes, ToolParser::kLlama3Json}) {
      const ToolCallParse full = ParseToolCalls(p, text);
      with_calls[static_cast<int>(p)] += full.calls.empty() ? 0 : 1;
      size_t last = 0;
      for (size_t len = 0; len <= text.size(); ++len) {
        const size_t s = StreamableContent(p, std::string_view(text).substr(0, len));
        ASSERT_LE(s, len);
        ASSERT_GE(s, last) << text;
        last = s;
      }
      ASSERT_EQ(full.content.compare(0, last, text, 0, last), 0) << ToolParserName(p) << ": " << text;
      for (const ToolCall& c : full.calls) ASSERT_FALSE(c.name.empty());
    }
  }
  // The generator must reach the interesting case, or the contract above proves little.
  EXPECT_GT(with_calls[static_cast<int>(ToolParser::kHermes)], 20);
  EXPECT_GT(with_calls[static_cast<int>(ToolParser::kLlama3Json)], 20);
}

}  // namespace
}  // namespace tide::server
