#include "server/protocol.h"

#include <cmath>
#include <limits>

namespace tide::server {
namespace {

using Err = std::optional<ApiError>;

#define TIDE_TRY(expr)                     \
  do {                                     \
    if (Err _tide_err = (expr)) return *_tide_err; \
  } while (0)

const char* TypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    case Json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

Err TypeError(const std::string& key, const char* want, const Json& got) {
  return ApiError::BadRequest("'" + key + "' must be " + want + ", got " + TypeName(got), key);
}

// Present and not null.
const Json* Field(const Json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

Err GetBool(const Json& o, const char* key, bool* out) {
  const Json* v = Field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return TypeError(key, "a boolean", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

// Integers; a float with an integral value (16.0) is accepted, as pydantic does.
Err ToInt(const Json& v, const std::string& key, int64_t lo, int64_t hi, int64_t* out) {
  int64_t x = 0;
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    x = v.get<int64_t>();
  } else if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return ApiError::BadRequest("'" + key + "' is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key);
    x = static_cast<int64_t>(u);
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e18) return TypeError(key, "an integer", v);
    x = static_cast<int64_t>(d);
  } else {
    return TypeError(key, "an integer", v);
  }
  if (x < lo || x > hi)
    return ApiError::BadRequest("'" + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                    "], got " + std::to_string(x), key);
  *out = x;
  return std::nullopt;
}

template <typename T>
Err GetInt(const Json& o, const char* key, int64_t lo, int64_t hi, T* out, bool* set = nullptr) {
  const Json* v = Field(o, key);
  if (!v) return std::nullopt;
  int64_t x = 0;
  TIDE_TRY(ToInt(*v, key, lo, hi, &x));
  *out = static_cast<T>(x);
  if (set) *set = true;
  return std::nullopt;
}

std::string Num(double d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", d);
  return buf;
}

Err GetFloat(const Json& o, const char* key, double lo, double hi, float* out) {
  const Json* v = Field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) return TypeError(key, "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    return ApiError::BadRequest("'" + std::string(key) + "' must be in [" + Num(lo) + ", " + Num(hi) + "], got " + Num(d), key);
  *out = static_cast<float>(d);
  return std::nullopt;
}

Err GetString(const Json& o, const char* key, std::string* out) {
  const Json* v = Field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) return TypeError(key, "a string", *v);
  *out = v->get<std::string>();
  return std::nullopt;
}

// A token-id list: non-empty, every element an integer in [0, 2^31).
Err ToIds(const Json& v, const std::string& key, std::vector<int32_t>* out) {
  if (!v.is_array()) return TypeError(key, "an array of token ids", v);
  if (v.empty()) return ApiError::BadRequest("'" + key + "' must not be empty", key);
  out->reserve(v.size());
  for (const Json& e : v) {
    int64_t x = 0;
    TIDE_TRY(ToInt(e, key, 0, std::numeric_limits<int32_t>::max(), &x));
    out->push_back(static_cast<int32_t>(x));
  }
  return std::nullopt;
}

// The sampling and output fields both endpoints share (OpenAI's, then vLLM's extensions).
Err ParseCommon(const Json& b, const RequestLimits& lim, GenerationParams* p) {
  SamplingParams& s = p->sampling;
  TIDE_TRY(GetString(b, "model", &p->model));
  TIDE_TRY(GetInt(b, "max_tokens", 1, std::numeric_limits<int32_t>::max(), &s.max_tokens, &p->max_tokens_set));
  TIDE_TRY(GetFloat(b, "temperature", 0, 2, &s.temperature));
  TIDE_TRY(GetFloat(b, "top_p", 0, 1, &s.top_p));
  if (s.top_p <= 0) return ApiError::BadRequest("'top_p' must be in (0, 1], got 0", "top_p");
  TIDE_TRY(GetInt(b, "n", 1, lim.max_n, &s.n));
  TIDE_TRY(GetFloat(b, "presence_penalty", -2, 2, &s.presence_penalty));
  TIDE_TRY(GetFloat(b, "frequency_penalty", -2, 2, &s.frequency_penalty));
  if (const Json* v = Field(b, "seed")) {
    int64_t seed = 0;
    TIDE_TRY(ToInt(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &seed));
    s.seed = static_cast<uint64_t>(seed);
  }
  if (const Json* v = Field(b, "stop")) {
    if (v->is_string()) {
      s.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (static_cast<int>(v->size()) > lim.max_stop)
        return ApiError::BadRequest("'stop' holds at most " + std::to_string(lim.max_stop) + " strings", "stop");
      for (const Json& e : *v) {
        if (!e.is_string()) return TypeError("stop", "a string or an array of strings", e);
        s.stop.push_back(e.get<std::string>());
      }
    } else {
      return TypeError("stop", "a string or an array of strings", *v);
    }
    for (const std::string& t : s.stop)
      if (t.empty()) return ApiError::BadRequest("'stop' strings must not be empty", "stop");
  }
  if (const Json* v = Field(b, "stop_token_ids")) {
    if (!v->is_array()) return TypeError("stop_token_ids", "an array of token ids", *v);
    if (!v->empty()) TIDE_TRY(ToIds(*v, "stop_token_ids", &s.stop_token_ids));
  }
  if (const Json* v = Field(b, "logit_bias")) {
    if (!v->is_object()) return TypeError("logit_bias", "an object of token id -> bias", *v);
    if (static_cast<int>(v->size()) > lim.max_logit_bias)
      return ApiError::BadRequest("'logit_bias' holds at most " + std::to_string(lim.max_logit_bias) + " entries", "logit_bias");
    for (const auto& [k, bias] : v->items()) {
      char* end = nullptr;
      errno = 0;
      const long long id = std::strtoll(k.c_str(), &end, 10);
      if (k.empty() || *end != '\0' || errno != 0 || id < 0 || id > std::numeric_limits<int32_t>::max())
        return ApiError::BadRequest("'logit_bias' keys must be token ids, got '" + k + "'", "logit_bias");
      if (!bias.is_number()) return TypeError("logit_bias", "an object of numbers", bias);
      const double d = bias.get<double>();
      if (!std::isfinite(d) || d < -100 || d > 100)
        return ApiError::BadRequest("'logit_bias' values must be in [-100, 100]", "logit_bias");
      s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(d));
    }
  }
  TIDE_TRY(GetString(b, "user", &p->user));
  TIDE_TRY(GetBool(b, "stream", &p->stream));
  if (const Json* v = Field(b, "stream_options")) {
    if (!v->is_object()) return TypeError("stream_options", "an object", *v);
    if (!p->stream) return ApiError::BadRequest("'stream_options' is only allowed when 'stream' is true", "stream_options");
    TIDE_TRY(GetBool(*v, "include_usage", &p->include_usage));
  }
  // vLLM's extensions.
  if (const Json* v = Field(b, "top_k")) {
    int64_t k = 0;
    TIDE_TRY(ToInt(*v, "top_k", -1, std::numeric_limits<int32_t>::max(), &k));
    s.top_k = k < 0 ? 0 : static_cast<int>(k);  // -1 = off, as in vLLM
  }
  TIDE_TRY(GetFloat(b, "min_p", 0, 1, &s.min_p));
  TIDE_TRY(GetFloat(b, "repetition_penalty", 0, 100, &s.repetition_penalty));
  if (s.repetition_penalty <= 0)
    return ApiError::BadRequest("'repetition_penalty' must be > 0", "repetition_penalty");
  TIDE_TRY(GetInt(b, "min_tokens", 0, std::numeric_limits<int32_t>::max(), &s.min_tokens));
  TIDE_TRY(GetBool(b, "ignore_eos", &s.ignore_eos));
  TIDE_TRY(GetInt(b, "priority", -1'000'000, 1'000'000, &p->priority));
  TIDE_TRY(GetBool(b, "skip_special_tokens", &p->skip_special_tokens));
  if (p->max_tokens_set && s.min_tokens > s.max_tokens)
    return ApiError::BadRequest("'min_tokens' (" + std::to_string(s.min_tokens) + ") must not exceed 'max_tokens' (" +
                                    std::to_string(s.max_tokens) + ")", "min_tokens");
  // best_of > n would need ranking by cumulative logprob, which tide does not do.
  if (const Json* v = Field(b, "best_of")) {
    int64_t best_of = 0;
    TIDE_TRY(ToInt(*v, "best_of", 1, lim.max_n, &best_of));
    if (best_of != s.n) return ApiError::BadRequest("'best_of' other than 'n' is not supported", "best_of");
  }
  return std::nullopt;
}

// Flattens a content-part array ([{"type": "text", "text": ...}, ...]) into one string,
// parts joined by "\n" as vLLM does for templates that expect string content.
Err FlattenContent(Json* msg, size_t index) {
  auto it = msg->find("content");
  if (it == msg->end() || it->is_null() || it->is_string()) return std::nullopt;
  const std::string key = "messages[" + std::to_string(index) + "].content";
  if (!it->is_array()) return TypeError(key, "a string or an array of content parts", *it);
  std::string text;
  bool first = true;
  for (const Json& part : *it) {
    if (!part.is_object()) return TypeError(key, "an array of content-part objects", part);
    std::string type;
    TIDE_TRY(GetString(part, "type", &type));
    if (type != "text")
      return ApiError::BadRequest("content part type '" + type + "' is not supported (only 'text')", key);
    const Json* t = Field(part, "text");
    if (!t || !t->is_string()) return ApiError::BadRequest("a 'text' content part needs a string 'text'", key);
    if (!first) text += "\n";
    text += t->get<std::string>();
    first = false;
  }
  *it = text;
  return std::nullopt;
}

Err ParseMessages(const Json& b, const RequestLimits& lim, Json* out) {
  const Json* v = Field(b, "messages");
  if (!v) return ApiError::BadRequest("'messages' is required", "messages");
  if (!v->is_array()) return TypeError("messages", "an array", *v);
  if (v->empty()) return ApiError::BadRequest("'messages' must not be empty", "messages");
  if (static_cast<int>(v->size()) > lim.max_messages)
    return ApiError::BadRequest("'messages' holds at most " + std::to_string(lim.max_messages) + " messages", "messages");
  *out = *v;
  for (size_t i = 0; i < out->size(); ++i) {
    Json& m = (*out)[i];
    const std::string key = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return TypeError(key, "an object", m);
    const Json* role = Field(m, "role");
    if (!role) return ApiError::BadRequest("'" + key + ".role' is required", key + ".role");
    if (!role->is_string()) return TypeError(key + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer" && r != "function")
      return ApiError::BadRequest("'" + key + ".role' must be system, developer, user, assistant or tool; got '" + r + "'",
                                  key + ".role");
    TIDE_TRY(FlattenContent(&m, i));
    const Json* content = Field(m, "content");
    if (!content && r != "assistant")
      return ApiError::BadRequest("'" + key + ".content' is required for role '" + r + "'", key + ".content");
  }
  return std::nullopt;
}

Err ParseTemplateArgs(const Json& b, Json* tools, Json* kwargs, bool* add_generation_prompt) {
  *tools = nullptr;
  *kwargs = nullptr;
  if (const Json* v = Field(b, "tools")) {
    if (!v->is_array()) return TypeError("tools", "an array", *v);
    for (const Json& t : *v)
      if (!t.is_object()) return TypeError("tools", "an array of objects", t);
    if (!v->empty()) *tools = *v;
  }
  if (const Json* v = Field(b, "tool_choice")) {
    if (!v->is_string() && !v->is_object()) return TypeError("tool_choice", "a string or an object", *v);
  }
  if (const Json* v = Field(b, "chat_template_kwargs")) {
    if (!v->is_object()) return TypeError("chat_template_kwargs", "an object", *v);
    *kwargs = *v;
  }
  return GetBool(b, "add_generation_prompt", add_generation_prompt);
}

// Longest run of nested arrays/objects, outside strings. Deep nesting is refused before
// parsing: recursion over it (dump, templates) could exhaust the stack.
int MaxDepth(std::string_view s) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') max_depth = std::max(max_depth, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return max_depth;
}

}  // namespace

std::variant<Json, ApiError> ParseJsonBody(std::string_view body) {
  size_t i = 0;
  while (i < body.size() && std::isspace(static_cast<unsigned char>(body[i]))) ++i;
  if (i == body.size()) return ApiError::BadRequest("the request body is empty; expected a JSON object");
  if (MaxDepth(body) > 64) return ApiError::BadRequest("the request JSON is nested deeper than 64 levels");
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::exception& e) {
    // nlohmann's message names the byte offset and, for bad UTF-8, says so.
    return ApiError::BadRequest(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) return ApiError::BadRequest(std::string("the request body must be a JSON object, got ") + TypeName(j));
  return j;
}

std::variant<CompletionRequest, ApiError> ParseCompletionRequest(const Json& b, const RequestLimits& lim) {
  try {
    CompletionRequest r;
    TIDE_TRY(ParseCommon(b, lim, &r.params));
    TIDE_TRY(GetBool(b, "echo", &r.params.echo));
    TIDE_TRY(GetBool(b, "add_special_tokens", &r.params.add_special_tokens));
    if (const Json* v = Field(b, "logprobs")) {
      int64_t k = 0;
      if (v->is_boolean()) return *TypeError("logprobs", "an integer (0..20) for completions", *v);
      TIDE_TRY(ToInt(*v, "logprobs", 0, 20, &k));
      r.params.sampling.logprobs = true;
      r.params.sampling.top_logprobs = static_cast<int>(k);
    }
    // echo + logprobs: the prompt's tokens get logprobs too (vLLM asks the engine for
    // prompt logprobs with the same number of alternatives).
    if (r.params.echo && r.params.sampling.logprobs) r.params.sampling.prompt_logprobs = r.params.sampling.top_logprobs;
    if (const Json* v = Field(b, "suffix"))
      if (!v->is_string() || !v->get<std::string>().empty())
        return ApiError::BadRequest("'suffix' is not supported", "suffix");
    const Json* p = Field(b, "prompt");
    if (!p) return ApiError::BadRequest("'prompt' is required", "prompt");
    if (p->is_string()) {
      r.prompts.push_back({p->get<std::string>(), {}});
    } else if (p->is_array()) {
      if (p->empty()) return ApiError::BadRequest("'prompt' must not be empty", "prompt");
      const Json& first = p->front();
      if (first.is_number()) {
        Prompt one;
        TIDE_TRY(ToIds(*p, "prompt", &one.ids));
        r.prompts.push_back(std::move(one));
      } else {
        if (static_cast<int>(p->size()) > lim.max_prompts)
          return ApiError::BadRequest("'prompt' holds at most " + std::to_string(lim.max_prompts) + " prompts", "prompt");
        for (const Json& e : *p) {
          Prompt one;
          if (e.is_string()) {
            one.text = e.get<std::string>();
          } else if (e.is_array()) {
            TIDE_TRY(ToIds(e, "prompt", &one.ids));
          } else {
            return *TypeError("prompt", "a string, an array of strings, token ids or arrays of token ids", e);
          }
          r.prompts.push_back(std::move(one));
        }
      }
    } else {
      return *TypeError("prompt", "a string, an array of strings, token ids or arrays of token ids", *p);
    }
    if (static_cast<int64_t>(r.prompts.size()) * r.params.sampling.n > 1024)
      return ApiError::BadRequest("prompts x n must not exceed 1024", "n");
    return r;
  } catch (const Json::exception& e) {
    return ApiError::BadRequest(std::string("invalid request: ") + e.what());
  }
}

std::variant<ChatRequest, ApiError> ParseChatRequest(const Json& b, const RequestLimits& lim) {
  try {
    ChatRequest r;
    r.params.add_special_tokens = false;  // the template writes BOS itself
    TIDE_TRY(ParseCommon(b, lim, &r.params));
    // max_completion_tokens is the newer name; it wins when both are given.
    TIDE_TRY(GetInt(b, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max(), &r.params.sampling.max_tokens,
                    &r.params.max_tokens_set));
    TIDE_TRY(GetBool(b, "add_special_tokens", &r.params.add_special_tokens));
    bool logprobs = false;
    TIDE_TRY(GetBool(b, "logprobs", &logprobs));
    int top = 0;
    TIDE_TRY(GetInt(b, "top_logprobs", 0, 20, &top));
    if (top > 0 && !logprobs)
      return ApiError::BadRequest("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    r.params.sampling.logprobs = logprobs;
    r.params.sampling.top_logprobs = top;
    if (const Json* v = Field(b, "response_format")) {
      if (!v->is_object()) return *TypeError("response_format", "an object", *v);
      std::string type;
      TIDE_TRY(GetString(*v, "type", &type));
      if (!type.empty() && type != "text")
        return ApiError::BadRequest("'response_format' type '" + type + "' is not supported (only 'text')", "response_format");
    }
    TIDE_TRY(ParseMessages(b, lim, &r.messages));
    TIDE_TRY(ParseTemplateArgs(b, &r.tools, &r.chat_template_kwargs, &r.add_generation_prompt));
    if (const Json* v = Field(b, "tool_choice")) {
      if (v->is_string()) {
        const std::string& c = v->get_ref<const std::string&>();
        if (c != "none" && c != "auto" && c != "required")
          return ApiError::BadRequest("'tool_choice' must be 'none', 'auto', 'required' or a named function, got '" +
                                          c.substr(0, 64) + "'",
                                      "tool_choice");
      } else {
        const Json* fn = Field(*v, "function");
        const Json* name = fn && fn->is_object() ? Field(*fn, "name") : nullptr;
        if (!name || !name->is_string())
          return ApiError::BadRequest("'tool_choice' object must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
                                      "tool_choice");
      }
      r.tool_choice = *v;
    }
    TIDE_TRY(GetBool(b, "continue_final_message", &r.continue_final_message));
    if (r.continue_final_message && r.add_generation_prompt && Field(b, "add_generation_prompt"))
      return ApiError::BadRequest("'continue_final_message' and 'add_generation_prompt' cannot both be true",
                                  "continue_final_message");
    if (r.continue_final_message) r.add_generation_prompt = false;
    return r;
  } catch (const Json::exception& e) {
    return ApiError::BadRequest(std::string("invalid request: ") + e.what());
  }
}

std::variant<TokenizeRequest, ApiError> ParseTokenizeRequest(const Json& b, const RequestLimits& lim) {
  try {
    TokenizeRequest r;
    TIDE_TRY(GetString(b, "model", &r.model));
    TIDE_TRY(GetBool(b, "return_token_strs", &r.return_token_strs));
    if (const Json* p = Field(b, "prompt")) {
      if (!p->is_string()) return *TypeError("prompt", "a string", *p);
      r.prompt = p->get<std::string>();
      TIDE_TRY(GetBool(b, "add_special_tokens", &r.add_special_tokens));
      return r;
    }
    if (!Field(b, "messages")) return ApiError::BadRequest("'prompt' or 'messages' is required", "prompt");
    r.add_special_tokens = false;
    TIDE_TRY(GetBool(b, "add_special_tokens", &r.add_special_tokens));
    TIDE_TRY(ParseMessages(b, lim, &r.messages));
    TIDE_TRY(ParseTemplateArgs(b, &r.tools, &r.chat_template_kwargs, &r.add_generation_prompt));
    return r;
  } catch (const Json::exception& e) {
    return ApiError::BadRequest(std::string("invalid request: ") + e.what());
  }
}

std::variant<DetokenizeRequest, ApiError> ParseDetokenizeRequest(const Json& b) {
  try {
    DetokenizeRequest r;
    TIDE_TRY(GetString(b, "model", &r.model));
    const Json* t = Field(b, "tokens");
    if (!t) return ApiError::BadRequest("'tokens' is required", "tokens");
    if (!t->is_array()) return *TypeError("tokens", "an array of token ids", *t);
    if (!t->empty()) TIDE_TRY(ToIds(*t, "tokens", &r.tokens));
    return r;
  } catch (const Json::exception& e) {
    return ApiError::BadRequest(std::string("invalid request: ") + e.what());
  }
}

}  // namespace tide::server
