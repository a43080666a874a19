// Fuzz target: parse and render arbitrary template text against a small chat context.
// Must never crash, hang or leak: every input ends in output or a Status, within the
// render limits (tightened here so each run stays fast).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tokenizer/jinja/jinja.h"

namespace {

const nlohmann::ordered_json& Context() {
  static const auto* ctx = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"json({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Hi \u00e9 \ud83c\udf89"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call12345", "type": "function",
         "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2.5]}}}]},
      {"role": "tool", "content": "22"}],
    "tools": [{"type": "function", "function": {"name": "get_weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "documents": null, "add_generation_prompt": true,
    "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false})json"));
  return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view src(reinterpret_cast<const char*>(data), size);
  auto t = tide::jinja::Template::Parse(src);
  if (!t.ok()) return 0;
  tide::jinja::RenderOptions options;
  options.now_unix_seconds = 0;
  options.limits.max_loop_iterations = 20'000;
  options.limits.max_output_bytes = 1 << 20;
  options.limits.max_container_items = 1 << 14;
  auto r = (*t)->Render(Context(), options);
  (void)r;
  return 0;
}
