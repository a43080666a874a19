// libFuzzer target: request bodies through every parser of the API (JSON, then the
// completions, chat, tokenize and detokenize schemas). Must never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tide::server;
  auto parsed = ParseJsonBody(std::string_view(reinterpret_cast<const char*>(data), size));
  if (const Json* j = std::get_if<Json>(&parsed)) {
    const RequestLimits limits;
    (void)ParseCompletionRequest(*j, limits);
    (void)ParseChatRequest(*j, limits);
    (void)ParseTokenizeRequest(*j, limits);
    (void)ParseDetokenizeRequest(*j);
  }
  return 0;
}
