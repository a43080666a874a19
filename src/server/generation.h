// Generation: one /v1/completions or /v1/chat/completions request in flight. It submits
// one engine request per prompt, is woken by their RequestStreams (SetNotify), and turns
// their outputs into OpenAI JSON: one response body, or SSE chunks
// (`data: {...}\n\n` ... `data: [DONE]\n\n`). If the client goes away (Abort) or the
// non-streaming deadline passes, it cancels its engine requests, which frees their KV
// blocks before the engine's next step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "server/api_keys.h"
#include "server/http_server.h"
#include "server/protocol.h"
#include "server/server_context.h"

namespace tide::server {

struct GenerationSpec {
  bool chat = false;
  std::string id;       // response id ("cmpl-...", "chatcmpl-...")
  int64_t created = 0;  // Unix seconds
  GenerationParams params;  // max_tokens final
  std::vector<std::vector<int32_t>> prompts;  // one engine request each
  std::vector<std::string> echo_texts;        // per prompt, when params.echo
  ToolParser tool_parser = ToolParser::kNone; // chat: parse replies for tool calls
  std::shared_ptr<KeyLease> lease;            // null without API keys
  std::string endpoint;                       // for metrics
};

// Submits every prompt. On an engine refusal nothing stays submitted and the error is
// returned (400 for invalid requests, 503 + Retry-After when the engine is full or
// shutting down).
std::variant<std::unique_ptr<AsyncResponse>, ApiError> StartGeneration(std::shared_ptr<Server::Context> ctx,
                                                                        GenerationSpec spec);

}  // namespace tide::server
