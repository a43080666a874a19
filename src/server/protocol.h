// The OpenAI request schema, parsed and validated in one place (docs/api.md lists every
// field). Pure functions of the request body: no engine, no tokenizer, so the fuzz
// target and the unit tests call them directly. Unknown fields are ignored, as OpenAI's
// and vLLM's servers do; a known field with a wrong type or value is a 400 naming it.
//
// Never throws: every nlohmann exception is caught here and becomes an ApiError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampling_params.h"
#include "server/api_error.h"

namespace tide::server {

using Json = nlohmann::ordered_json;

// Parses a request body that must be a JSON object. Rejects empty bodies, malformed
// JSON, invalid UTF-8, nesting deeper than 64 levels and non-objects.
std::variant<Json, ApiError> ParseJsonBody(std::string_view body);

// What /v1/completions and /v1/chat/completions share.
struct GenerationParams {
  std::string model;                 // "" when absent
  SamplingParams sampling;           // max_tokens as given (see max_tokens_set)
  bool max_tokens_set = false;       // else the endpoint's default applies
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  bool echo = false;                 // completions only
  int priority = 0;
  std::string user;
  bool skip_special_tokens = true;
  bool add_special_tokens = true;    // completions: true; chat: false
};

// One prompt of a completion request: text or token ids.
struct Prompt {
  std::optional<std::string> text;
  std::vector<int32_t> ids;  // used when !text
};

struct CompletionRequest {
  GenerationParams params;
  std::vector<Prompt> prompts;  // a batch: one engine request each
};

struct ChatRequest {
  GenerationParams params;
  Json messages;                 // content-part arrays flattened to strings
  Json tools;                    // null when absent
  // "none", "auto", "required" or {"type": "function", "function": {"name": ...}}; null
  // when absent (auto when there are tools, as OpenAI).
  Json tool_choice;
  Json chat_template_kwargs;     // object or null
  bool add_generation_prompt = true;
  bool continue_final_message = false;
};

// Limits on one request that keep hostile input cheap to refuse.
struct RequestLimits {
  int max_n = 64;              // the engine's bound
  int max_prompts = 256;       // prompts in one completion request
  int max_stop = 16;           // stop strings
  int max_logit_bias = 1024;   // entries
  int max_messages = 4096;
};

std::variant<CompletionRequest, ApiError> ParseCompletionRequest(const Json& body, const RequestLimits& limits);
std::variant<ChatRequest, ApiError> ParseChatRequest(const Json& body, const RequestLimits& limits);

// POST /tokenize: {"prompt": ...} or {"messages": ...} (vLLM's two shapes).
struct TokenizeRequest {
  std::string model;
  std::optional<std::string> prompt;
  Json messages;             // when !prompt
  Json tools;
  Json chat_template_kwargs;
  bool add_generation_prompt = true;
  bool add_special_tokens = true;
  bool return_token_strs = false;
};
std::variant<TokenizeRequest, ApiError> ParseTokenizeRequest(const Json& body, const RequestLimits& limits);

struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};
std::variant<DetokenizeRequest, ApiError> ParseDetokenizeRequest(const Json& body);

}  // namespace tide::server
