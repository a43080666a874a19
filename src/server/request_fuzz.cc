// libFuzzer target: request bodies through every parser of the API (JSON, then the
// completions, chat, tokenize and detokenize schemas), and the same bytes as model output
// through the tool-call parsers. Must never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/protocol.h"
#include "server/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tide::server;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (ToolParser p : {ToolParser::kHermes, ToolParser::kLlama3Json}) {
    const ToolCallParse r = ParseToolCalls(p, text);
    if (r.content.compare(0, StreamableContent(p, text), text, 0, StreamableContent(p, text)) != 0) __builtin_trap();
  }
  auto parsed = ParseJsonBody(text);
  if (const Json* j = std::get_if<Json>(&parsed)) {
    const RequestLimits limits;
    (void)ParseCompletionRequest(*j, limits);
    (void)ParseChatRequest(*j, limits);
    (void)ParseTokenizeRequest(*j, limits);
    (void)ParseDetokenizeRequest(*j);
  }
  return 0;
}
