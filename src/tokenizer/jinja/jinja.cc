#include "tokenizer/jinja/jinja.h"

#include <exception>
#include <map>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interp.h"

namespace tide::jinja {
namespace {

template <typename J>
Result<std::string> RenderImpl(const Program& program, const J& context, const RenderOptions& options) {
  if (!context.is_object() && !context.is_null()) {
    return InvalidArgument("chat template context must be a JSON object");
  }
  try {
    ASSIGN_OR_RETURN(Value ctx, FromJson(context));
    std::string out;
    Interpreter interp(options, &out);
    RETURN_IF_ERROR(interp.Run(program, ctx));
    return out;
  } catch (const std::exception& e) {
    // Nothing below is expected to throw; this keeps a stray nlohmann or allocation
    // exception from crossing the library boundary.
    return Internal(std::string("chat template render failed: ") + e.what());
  }
}

}  // namespace

Template::Template(std::unique_ptr<Program> program) : program_(std::move(program)) {}
Template::~Template() = default;

Result<std::unique_ptr<Template>> Template::Parse(std::string_view source) {
  try {
    ASSIGN_OR_RETURN(std::unique_ptr<Program> program, ParseProgram(source));
    return std::unique_ptr<Template>(new Template(std::move(program)));
  } catch (const std::exception& e) {
    return Internal(std::string("chat template parse failed: ") + e.what());
  }
}

Result<std::string> Template::Render(const nlohmann::ordered_json& context,
                                     const RenderOptions& options) const {
  return RenderImpl(*program_, context, options);
}

Result<std::string> Template::Render(const nlohmann::json& context, const RenderOptions& options) const {
  return RenderImpl(*program_, context, options);
}

nlohmann::ordered_json MakeChatContext(const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools,
                                       bool add_generation_prompt, const std::string& bos,
                                       const std::string& eos,
                                       const nlohmann::ordered_json& extra_kwargs) {
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["bos_token"] = bos;
  ctx["eos_token"] = eos;
  if (extra_kwargs.is_object()) {
    for (auto it = extra_kwargs.begin(); it != extra_kwargs.end(); ++it) ctx[it.key()] = it.value();
  }
  return ctx;
}

Result<std::string> SelectChatTemplate(const nlohmann::ordered_json& field, const std::string* name,
                                       bool has_tools) {
  if (field.is_string()) return name ? *name : field.get<std::string>();
  if (field.is_null()) {
    if (name) return *name;
    return NotFound("the tokenizer has no chat template");
  }
  if (!field.is_array()) return InvalidArgument("chat_template must be a string or a list of named templates");
  std::map<std::string, std::string> named;
  for (const auto& entry : field) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
        !entry["name"].is_string() || !entry["template"].is_string()) {
      return InvalidArgument("chat_template list entries need string \"name\" and \"template\"");
    }
    named[entry["name"].get<std::string>()] = entry["template"].get<std::string>();
  }
  if (name) {
    auto it = named.find(*name);
    return it != named.end() ? it->second : *name;
  }
  if (has_tools && named.count("tool_use")) return named["tool_use"];
  if (named.count("default")) return named["default"];
  return NotFound("the tokenizer has several chat templates and none is named \"default\"");
}

Result<std::string> RenderChatTemplate(std::string_view tmpl,
                                       const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools,
                                       bool add_generation_prompt, const std::string& bos,
                                       const std::string& eos,
                                       const nlohmann::ordered_json& extra_kwargs) {
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object()) {
    return InvalidArgument("chat template kwargs must be a JSON object");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Template> t, Template::Parse(tmpl));
  return t->Render(MakeChatContext(messages, tools, add_generation_prompt, bos, eos, extra_kwargs));
}

}  // namespace tide::jinja
