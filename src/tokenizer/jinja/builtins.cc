// jinja2's tests and the globals transformers' environment provides (range is the
// sandbox's, capped at 100000 items; raise_exception and strftime_now are
// transformers').
#include <algorithm>
#include <cmath>
#include <ctime>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustring.h"

namespace tide::jinja {
namespace {

constexpr int64_t kSandboxMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

// ---- tests -------------------------------------------------------------------------

Result<bool> NumArgTest(const Value& v, CallArgs& a, const char* name, int which) {
  if (a.args.empty()) return InvalidArgument(std::string(name) + " test needs an argument");
  const Value& o = a.args[0];
  switch (which) {
    case 0: return Equals(v, o);
    case 1: return !Equals(v, o);
    case 2: return Less(v, o);
    case 3: { ASSIGN_OR_RETURN(bool gt, Less(o, v)); return !gt; }
    case 4: return Less(o, v);
    default: { ASSIGN_OR_RETURN(bool lt, Less(v, o)); return !lt; }
  }
}

Result<bool> TestOddEven(const Value& v, bool odd) {
  if (v.IsUndefined()) return UndefinedError(v);
  if (v.IsIntLike()) return ((v.AsInt() % 2) != 0) == odd;
  if (v.kind == Kind::kFloat) {
    double m = std::fmod(v.f, 2.0);
    if (m < 0) m += 2.0;
    return odd ? m == 1.0 : m == 0.0;
  }
  return InvalidArgument("unsupported operand type(s) for %: '" + TypeName(v) + "' and 'int'");
}

Result<bool> CallTestImpl(Interpreter& in, const std::string& name, const Value& v, CallArgs& a) {
  if (name == "defined") return !v.IsUndefined();
  if (name == "undefined") return v.IsUndefined();
  if (name == "none") return v.IsNone();
  if (name == "boolean") return v.kind == Kind::kBool;
  if (name == "true") return v.kind == Kind::kBool && v.b;
  if (name == "false") return v.kind == Kind::kBool && !v.b;
  if (name == "integer") return v.kind == Kind::kInt;
  if (name == "float") return v.kind == Kind::kFloat;
  if (name == "number") return v.IsNumber();
  if (name == "string") return v.IsString();
  if (name == "mapping") return v.IsDict();
  if (name == "iterable") return v.IsUndefined() || v.IsString() || v.IsList() || v.IsDict();
  if (name == "sequence") return v.IsUndefined() || v.IsString() || v.IsList() || v.IsDict();
  if (name == "callable") return v.kind == Kind::kCallable;
  if (name == "escaped") return false;
  if (name == "odd") return TestOddEven(v, true);
  if (name == "even") return TestOddEven(v, false);
  if (name == "lower" || name == "upper") {
    bool unsafe;
    CallArgs none;
    ASSIGN_OR_RETURN(Value r, in.Call(GetMethod(Value::Str(ToStr(v)), name == "lower" ? "islower" : "isupper", &unsafe), none));
    return r.b;
  }
  if (name == "divisibleby") {
    if (a.args.empty()) return InvalidArgument("divisibleby test needs an argument");
    const Value& n = a.args[0];
    if (!v.IsNumber() || !n.IsNumber()) return InvalidArgument("divisibleby needs numbers");
    if (n.AsDouble() == 0) return InvalidArgument("integer division or modulo by zero");
    if (v.IsIntLike() && n.IsIntLike()) return n.AsInt() == -1 || v.AsInt() % n.AsInt() == 0;
    return std::fmod(v.AsDouble(), n.AsDouble()) == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return NumArgTest(v, a, "eq", 0);
  if (name == "ne" || name == "!=") return NumArgTest(v, a, "ne", 1);
  if (name == "lt" || name == "lessthan" || name == "<") return NumArgTest(v, a, "lt", 2);
  if (name == "le" || name == "<=") return NumArgTest(v, a, "le", 3);
  if (name == "gt" || name == "greaterthan" || name == ">") return NumArgTest(v, a, "gt", 4);
  if (name == "ge" || name == ">=") return NumArgTest(v, a, "ge", 5);
  if (name == "sameas") {
    if (a.args.empty()) return InvalidArgument("sameas test needs an argument");
    const Value& o = a.args[0];
    if (v.kind != o.kind) return false;
    if (v.IsList()) return v.list == o.list;
    if (v.IsDict() || v.kind == Kind::kNamespace) return v.dict == o.dict;
    if (v.kind == Kind::kCallable) return v.fn == o.fn;
    return Equals(v, o);
  }
  if (name == "in") {
    if (a.args.empty()) return InvalidArgument("in test needs an argument");
    const Value& seq = a.args[0];
    if (seq.IsString()) return v.IsString() && seq.s.find(v.s) != std::string::npos;
    ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(seq));
    for (const Value& x : items) {
      if (Equals(x, v)) return true;
    }
    return false;
  }
  if (name == "filter") return !a.args.empty() && a.args[0].IsString() && IsKnownFilter(a.args[0].s);
  if (name == "test") {
    if (a.args.empty() || !a.args[0].IsString()) return false;
    CallArgs none;
    return CallTestImpl(in, a.args[0].s, Value::None(), none).ok();
  }
  return InvalidArgument("No test named '" + name + "'.");
}

// ---- globals -----------------------------------------------------------------------

Value Builtin(std::string name, NativeFn fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->native = std::move(fn);
  return Value::Fn(std::move(c));
}

Result<Value> GRange(Interpreter& in, CallArgs& a) {
  if (!a.kwargs.empty()) return InvalidArgument("range() takes no keyword arguments");
  if (a.args.empty() || a.args.size() > 3) return InvalidArgument("range expected 1 to 3 arguments");
  for (const Value& x : a.args) {
    if (!x.IsIntLike()) return InvalidArgument("'" + TypeName(x) + "' object cannot be interpreted as an integer");
  }
  int64_t start = 0, stop, step = 1;
  if (a.args.size() == 1) {
    stop = a.args[0].AsInt();
  } else {
    start = a.args[0].AsInt();
    stop = a.args[1].AsInt();
    if (a.args.size() == 3) step = a.args[2].AsInt();
  }
  if (step == 0) return InvalidArgument("range() arg 3 must not be zero");
  long double span = step > 0 ? (static_cast<long double>(stop) - start) : (static_cast<long double>(start) - stop);
  long double count = span <= 0 ? 0 : std::ceil(span / std::fabs(static_cast<long double>(step)));
  if (count > kSandboxMaxRange) {
    return InvalidArgument("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  std::vector<Value> out;
  for (int64_t k = 0; k < static_cast<int64_t>(count); ++k) out.push_back(Value::Int(start + k * step));
  Value v = Value::List(std::move(out));
  RETURN_IF_ERROR(in.CheckList(v));
  return v;
}

Result<Value> GDict(CallArgs& a, bool is_namespace) {
  auto d = std::make_shared<DictData>();
  if (a.args.size() > 1) return InvalidArgument("expected at most 1 positional argument");
  if (a.args.size() == 1) {
    const Value& src = a.args[0];
    if (src.IsDict()) {
      for (const auto& [k, v] : src.dict->entries) d->Set(k, v);
    } else {
      ASSIGN_OR_RETURN(std::vector<Value> pairs, Iterate(src));
      for (const Value& p : pairs) {
        ASSIGN_OR_RETURN(std::vector<Value> kv, Iterate(p));
        if (kv.size() != 2) return InvalidArgument("dictionary update sequence element has wrong length");
        d->Set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : a.kwargs) d->Set(Value::Str(k), v);
  if (is_namespace) {
    for (const auto& [k, v] : d->entries) {
      if (HasNamespace(v)) return InvalidArgument("storing a namespace inside a namespace is not supported");
    }
    return Value::Namespace(std::move(d));
  }
  return Value::Dict(std::move(d));
}

}  // namespace

bool IsKnownTest(const std::string& name) {
  static const char* kTests[] = {
      "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number",
      "string", "mapping", "iterable", "sequence", "callable", "escaped", "odd", "even", "lower",
      "upper", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le",
      "<=", "gt", "greaterthan", ">", "ge", ">=", "sameas", "in", "filter", "test"};
  for (const char* t : kTests) {
    if (name == t) return true;
  }
  return false;
}

Result<bool> CallTest(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  return CallTestImpl(in, name, v, args);
}

void AddGlobals(Frame& globals, const RenderOptions& options) {
  globals.vars["range"] = Builtin("range", GRange);
  globals.vars["dict"] = Builtin("dict", [](Interpreter&, CallArgs& a) { return GDict(a, false); });
  globals.vars["namespace"] = Builtin("namespace", [](Interpreter&, CallArgs& a) { return GDict(a, true); });
  globals.vars["raise_exception"] = Builtin("raise_exception", [](Interpreter&, CallArgs& a) -> Result<Value> {
    const Value* m = Arg(a, 0, "message");
    return InvalidArgument(m ? ToStr(*m) : std::string("raise_exception() called"));
  });
  std::optional<int64_t> now = options.now_unix_seconds;
  globals.vars["strftime_now"] = Builtin("strftime_now", [now](Interpreter&, CallArgs& a) -> Result<Value> {
    const Value* f = Arg(a, 0, "format");
    if (!f || !f->IsString()) return InvalidArgument("strftime_now() needs a format string");
    if (f->s.size() > 4096 || f->s.find('\0') != std::string::npos) return InvalidArgument("strftime_now() format too long");
    std::time_t t = now ? static_cast<std::time_t>(*now) : std::time(nullptr);
    std::tm tm{};
    if (now) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    std::string buf(f->s.size() * 16 + 64, '\0');
    size_t n = std::strftime(buf.data(), buf.size(), f->s.c_str(), &tm);
    buf.resize(n);
    return Value::Str(std::move(buf));
  });
}

}  // namespace tide::jinja
