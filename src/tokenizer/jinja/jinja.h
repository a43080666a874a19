// A Jinja2 interpreter for Hugging Face chat templates: parse once, render many.
//
// Semantics are those transformers uses (chat_template_utils._compile_jinja_template):
// jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols]) plus the `{% generation %}` tag, the globals
// `raise_exception(msg)` and `strftime_now(fmt)`, and a `tojson` filter that is
// json.dumps(x, ensure_ascii=False, indent, separators, sort_keys). What is supported
// and the known divergences from jinja2 are listed in docs/chat_templates.md.
//
// Errors: a syntax error (Parse) or runtime error (Render) is kInvalidArgument with a
// message "chat template line N: ..."; raise_exception's message is kept verbatim after
// that prefix. A render that exceeds RenderLimits is kResourceExhausted. Neither call
// throws or aborts on any input.
//
// Thread-safety: a parsed Template is immutable; Render may run concurrently from many
// threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace tide::jinja {

struct Program;  // the parsed template (internal)

// Bounds on one Render call; a template that exceeds one fails with kResourceExhausted
// instead of hanging the server or exhausting its memory.
struct RenderLimits {
  int64_t max_loop_iterations = 1'000'000;   // summed over all loops of one render
  int max_call_depth = 64;                   // nested macro / caller() calls
  size_t max_output_bytes = 16u << 20;       // rendered text, and any one string value
  size_t max_container_items = 1u << 20;     // items in any one list or dict value
};

struct RenderOptions {
  RenderLimits limits;
  // What strftime_now() sees, as seconds since the Unix epoch formatted in UTC; unset =
  // the current local time, as transformers does. Tests set it for reproducible output.
  std::optional<int64_t> now_unix_seconds;
};

class Template {
 public:
  // Parses `source` (the template text as found in tokenizer_config.json or
  // chat_template.jinja). Fails with kInvalidArgument on a syntax error.
  static Result<std::unique_ptr<Template>> Parse(std::string_view source);

  ~Template();
  Template(const Template&) = delete;
  Template& operator=(const Template&) = delete;

  // Renders with the top-level variables of `context` (a JSON object; JSON null is
  // Python None). Never modifies the template.
  //
  // Key order matters: `tojson` and dict iteration follow the object's insertion order,
  // as Python dicts do, so pass nlohmann::ordered_json parsed from the request. A plain
  // nlohmann::json has already sorted its keys; the overload accepts it for convenience
  // but renders tools schemas with sorted keys (not what transformers would print).
  Result<std::string> Render(const nlohmann::ordered_json& context,
                             const RenderOptions& options = {}) const;
  Result<std::string> Render(const nlohmann::json& context, const RenderOptions& options = {}) const;

 private:
  explicit Template(std::unique_ptr<Program> program);
  std::unique_ptr<Program> program_;
};

// The context transformers' apply_chat_template builds: messages, tools (JSON null when
// there are none, as transformers passes None), documents (null), add_generation_prompt,
// bos_token, eos_token, then every member of `extra_kwargs` (e.g. enable_thinking),
// which may override the ones before. `extra_kwargs` must be an object or null.
nlohmann::ordered_json MakeChatContext(const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools,
                                       bool add_generation_prompt, const std::string& bos,
                                       const std::string& eos,
                                       const nlohmann::ordered_json& extra_kwargs);

// Picks the template text out of tokenizer_config.json's "chat_template" field, which is
// either a string or a list of {"name", "template"} objects, as transformers'
// get_chat_template does: `name` if given and present (a `name` that names no entry is
// itself the template text), else "tool_use" when the request has tools, else
// "default". Fails with kNotFound when the field is missing/null or no template fits,
// kInvalidArgument when it is malformed.
Result<std::string> SelectChatTemplate(const nlohmann::ordered_json& chat_template_field,
                                       const std::string* name, bool has_tools);

// Parse + Render of MakeChatContext(...) in one call, for callers that render a template
// once; callers that render many prompts should keep a parsed Template.
Result<std::string> RenderChatTemplate(std::string_view tmpl,
                                       const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools,
                                       bool add_generation_prompt, const std::string& bos,
                                       const std::string& eos,
                                       const nlohmann::ordered_json& extra_kwargs);

}  // namespace tide::jinja
