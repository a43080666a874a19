// The tree-walking evaluator: one Interpreter per Render call, so a Program is never
// mutated and renders can run concurrently.
//
// Scoping follows jinja2: `set` writes the innermost frame; a for loop gives each
// iteration a fresh frame (assignments do not leak out, or into the next iteration);
// `if` opens no frame; macros see the frame chain where they were defined, by
// reference, and their own frame of arguments.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/jinja.h"
#include "tokenizer/jinja/value.h"

namespace tide::jinja {

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
};

class Interpreter {
 public:
  Interpreter(const RenderOptions& options, std::string* out);

  // Runs `program` with the top-level variables of `context` (a dict value).
  Status Run(const Program& program, const Value& context);

  Result<Value> Eval(const Expr& e);
  Status Exec(const Body& body);

  // Calls a callable value (builtin, bound method, macro); errors for anything else.
  Result<Value> Call(const Value& fn, CallArgs& args);
  Result<Value> ApplyFilter(const std::string& name, Value v, CallArgs& args);
  Result<bool> ApplyTest(const std::string& name, const Value& v, CallArgs& args);

  // jinja2's environment.getattr (attribute, then item) and getitem (item, then
  // attribute). Missing entries give Undefined; an Undefined `obj` is an error.
  Result<Value> GetAttr(const Value& obj, const std::string& name);
  Result<Value> GetItem(const Value& obj, const Value& key);

  // Resource accounting: every loop iteration, macro call and produced value checks in.
  Status CountIteration();
  Status CheckString(const std::string& s) const;
  Status CheckList(const Value& v) const;
  const RenderOptions& options() const { return options_; }

  // Runs macro `s` (or a call block's caller) defined in `closure` with `args`.
  Result<Value> CallMacro(const Stmt& s, const std::shared_ptr<Frame>& closure, CallArgs& args);

  // Runs `body` with `frame` as the innermost scope, capturing its output.
  Result<std::string> Capture(const Body& body, std::shared_ptr<Frame> frame);
  std::shared_ptr<Frame> frame() const { return frame_; }

  int call_depth = 0;

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Status ExecStmt(const Stmt& s);
  Status ExecFor(const Stmt& s);
  Status ExecMacro(const Stmt& s);
  Status ExecCallBlock(const Stmt& s);
  Status Assign(const Expr& target, const Value& v);
  Status Emit(const std::string& s);
  Result<Value> EvalInner(const Expr& e);
  Result<Value> EvalBinary(const std::string& op, const Value& a, const Value& b);
  Result<bool> EvalCompare(const std::string& op, const Value& a, const Value& b);
  Result<Value> EvalSlice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  Result<CallArgs> EvalArgs(const Expr& e, size_t first);
  Value Lookup(const std::string& name) const;
  Value MakeMacro(const Stmt& s, const std::string& name);

  const RenderOptions& options_;
  std::string* out_;
  std::shared_ptr<Frame> frame_;
  Flow flow_ = Flow::kNormal;
  int64_t iterations_ = 0;
};

// Builtins (builtins.cc, methods.cc).
void AddGlobals(Frame& globals, const RenderOptions& options);
Result<Value> CallFilter(Interpreter& in, const std::string& name, Value v, CallArgs& args);
Result<bool> CallTest(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);
// A bound method of a str, list or dict value (e.g. "a".startswith); `*unsafe` is set
// for the mutating methods the immutable sandbox refuses. Undefined if no such method.
Value GetMethod(const Value& self, const std::string& name, bool* unsafe);
// Items of an iterable as jinja2 iterates it: list items, dict keys, string characters,
// nothing for Undefined; an error for other types.
Result<std::vector<Value>> Iterate(const Value& v);
// len(): code points of a string, items of a list or dict; an error otherwise.
Result<int64_t> Length(const Value& v);
// Python str slicing and indexing in code points.
Value StrIndex(const std::string& s, int64_t index);  // Undefined when out of range
std::string StrSlice(const std::string& s, int64_t start, int64_t stop, int64_t step,
                     bool has_start, bool has_stop);

// Argument binding for builtins: positional slot `pos` or keyword `name`.
const Value* Arg(const CallArgs& args, size_t pos, std::string_view name);
// Fails with a TypeError-like message when more positional arguments than
// `max_positional` or a keyword outside `names` was given.
Status CheckArgs(const CallArgs& args, size_t max_positional,
                 std::initializer_list<std::string_view> names, std::string_view fn);

Status UndefinedError(const Value& v);

}  // namespace tide::jinja
