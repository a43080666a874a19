// Runtime values of the template interpreter, modelled on the Python objects jinja2
// manipulates: None, jinja2's Undefined, bool, int, float, str, list/tuple, dict
// (insertion-ordered), namespace, and callables (builtins, bound methods, macros).
//
// Lists and dicts are shared by reference like Python's; the sandbox forbids mutating
// them from a template, so only namespaces change after construction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace tide::jinja {

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

struct ListData;
struct DictData;
struct Callable;

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  // kString: the UTF-8 text. kUndefined: the error message an operation on it raises.
  std::string s;
  std::shared_ptr<ListData> list;     // kList
  std::shared_ptr<DictData> dict;     // kDict, kNamespace
  std::shared_ptr<Callable> fn;       // kCallable

  static Value Undefined(std::string hint) { Value v; v.s = std::move(hint); return v; }
  static Value None() { Value v; v.kind = Kind::kNone; return v; }
  static Value Bool(bool x) { Value v; v.kind = Kind::kBool; v.b = x; return v; }
  static Value Int(int64_t x) { Value v; v.kind = Kind::kInt; v.i = x; return v; }
  static Value Float(double x) { Value v; v.kind = Kind::kFloat; v.f = x; return v; }
  static Value Str(std::string x) { Value v; v.kind = Kind::kString; v.s = std::move(x); return v; }
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value Dict(std::shared_ptr<DictData> d);
  static Value Namespace(std::shared_ptr<DictData> d);
  static Value Fn(std::shared_ptr<Callable> fn);

  bool IsUndefined() const { return kind == Kind::kUndefined; }
  bool IsNone() const { return kind == Kind::kNone; }
  bool IsString() const { return kind == Kind::kString; }
  bool IsList() const { return kind == Kind::kList; }
  bool IsDict() const { return kind == Kind::kDict; }
  // Python int, which bool is a subclass of.
  bool IsIntLike() const { return kind == Kind::kInt || kind == Kind::kBool; }
  bool IsNumber() const { return IsIntLike() || kind == Kind::kFloat; }
  int64_t AsInt() const { return kind == Kind::kBool ? (b ? 1 : 0) : i; }
  double AsDouble() const { return kind == Kind::kFloat ? f : static_cast<double>(AsInt()); }
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;  // nesting depth, bounded so printing and freeing cannot overflow the stack
  // Holds a namespace somewhere inside; such values may not be stored into a namespace,
  // which keeps reference cycles (and the leaks and endless printing they bring) out.
  bool has_namespace = false;
};

// Insertion-ordered mapping. String keys (nearly all of them) are indexed; other keys
// are found by a linear scan with Python equality.
struct DictData {
  std::vector<std::pair<Value, Value>> entries;
  std::unordered_map<std::string, size_t> str_index;
  int depth = 1;
  bool has_namespace = false;

  const Value* Find(const Value& key) const;
  const Value* FindStr(std::string_view key) const;
  void Set(Value key, Value value);  // replaces in place or appends
};

// Arguments of one call: positional then keyword, in call order.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

class Interpreter;
using NativeFn = std::function<Result<Value>(Interpreter&, CallArgs&)>;

struct Callable {
  std::string name;
  NativeFn native;  // set for builtins, bound methods and macros alike
  bool has_namespace = false;  // a bound method whose object holds a namespace
};

// True for a namespace or a container holding one.
inline bool HasNamespace(const Value& v) {
  return v.kind == Kind::kNamespace || (v.list && v.list->has_namespace) ||
         (v.dict && v.dict->has_namespace) || (v.fn && v.fn->has_namespace);
}

// Deepest nesting of lists/dicts a value may have.
inline constexpr int kMaxValueDepth = 512;

// Python truthiness (Undefined is false).
bool Truthy(const Value& v);
// Python ==, which jinja2 uses for `==`, `in` and tests; Undefined == Undefined.
bool Equals(const Value& a, const Value& b);
// Python's <; an error for unordered types (str vs int, None, Undefined, ...).
Result<bool> Less(const Value& a, const Value& b);
// Python's type name, for messages: 'int', 'str', 'dict', ...
std::string TypeName(const Value& v);
// str(v) as jinja2 prints it: Undefined prints as "".
std::string ToStr(const Value& v);
// repr(v): strings quoted, as inside a printed list.
std::string Repr(const Value& v);
std::string FormatFloat(double d);  // Python repr(float)

// json.dumps(v, ensure_ascii, indent, separators, sort_keys). `indent` empty = none;
// otherwise the per-level indent string (Python's int n means n spaces).
struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
Result<std::string> ToJson(const Value& v, const JsonDumpOptions& opt);

// JSON context -> Value (objects keep their order; numbers keep int vs float).
Result<Value> FromJson(const nlohmann::ordered_json& j, int depth = 0);
Result<Value> FromJson(const nlohmann::json& j, int depth = 0);

}  // namespace tide::jinja
