#include "tokenizer/jinja/interp.h"

#include <cmath>

#include "tokenizer/jinja/ustring.h"

namespace tide::jinja {
namespace {

constexpr std::string_view kLinePrefix = "chat template line ";

Status AtLine(const Status& st, int line) {
  if (st.ok() || st.message().rfind(kLinePrefix, 0) == 0) return st;
  return st.WithContext(std::string(kLinePrefix) + std::to_string(line));
}

Status TypeError(const std::string& op, const Value& a, const Value& b) {
  return InvalidArgument("unsupported operand type(s) for " + op + ": '" + TypeName(a) + "' and '" +
                         TypeName(b) + "'");
}

// Python's printf-style `str % args` for the conversions templates use.
Result<Value> PercentFormat(const std::string& fmt, const Value& rhs) {
  std::vector<Value> args;
  if (rhs.IsList() && rhs.list->is_tuple) args = rhs.list->items;
  else args.push_back(rhs);
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) return InvalidArgument("incomplete format");
    char c = fmt[k];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) return InvalidArgument("not enough arguments for format string");
    const Value& a = args[next++];
    if (c == 's') out += ToStr(a);
    else if (c == 'r') out += Repr(a);
    else if ((c == 'd' || c == 'i') && a.IsNumber()) out += std::to_string(static_cast<int64_t>(a.AsDouble()));
    else if (c == 'f' && a.IsNumber()) {
      char b[64];
      std::snprintf(b, sizeof(b), "%f", a.AsDouble());
      out += b;
    } else {
      return InvalidArgument(std::string("unsupported format character '") + c + "'");
    }
  }
  if (next < args.size()) return InvalidArgument("not all arguments converted during string formatting");
  return Value::Str(std::move(out));
}

}  // namespace

Status UndefinedError(const Value& v) {
  return InvalidArgument(v.s.empty() ? std::string("value is undefined") : v.s);
}

Interpreter::Interpreter(const RenderOptions& options, std::string* out)
    : options_(options), out_(out) {}

Status Interpreter::Run(const Program& program, const Value& context) {
  auto globals = std::make_shared<Frame>();
  AddGlobals(*globals, options_);
  frame_ = std::make_shared<Frame>();
  frame_->parent = globals;
  if (context.IsDict()) {
    for (const auto& [k, v] : context.dict->entries) {
      if (k.IsString()) frame_->vars[k.s] = v;
    }
  }
  return Exec(program.body);
}

Status Interpreter::CountIteration() {
  if (++iterations_ > options_.limits.max_loop_iterations) {
    return ResourceExhausted("loop iteration limit (" +
                             std::to_string(options_.limits.max_loop_iterations) + ") exceeded");
  }
  return OkStatus();
}

Status Interpreter::CheckString(const std::string& s) const {
  if (s.size() > options_.limits.max_output_bytes) {
    return ResourceExhausted("string longer than the output limit (" +
                             std::to_string(options_.limits.max_output_bytes) + " bytes)");
  }
  return OkStatus();
}

Status Interpreter::CheckList(const Value& v) const {
  size_t n = v.list ? v.list->items.size() : v.dict ? v.dict->entries.size() : 0;
  if (n > options_.limits.max_container_items) {
    return ResourceExhausted("container larger than " +
                             std::to_string(options_.limits.max_container_items) + " items");
  }
  int depth = v.list ? v.list->depth : v.dict ? v.dict->depth : 0;
  if (depth > kMaxValueDepth) return ResourceExhausted("value nested too deeply");
  return OkStatus();
}

Status Interpreter::Emit(const std::string& s) {
  if (out_->size() + s.size() > options_.limits.max_output_bytes) {
    return ResourceExhausted("rendered output exceeds " +
                             std::to_string(options_.limits.max_output_bytes) + " bytes");
  }
  out_->append(s);
  return OkStatus();
}

Value Interpreter::Lookup(const std::string& name) const {
  for (const Frame* f = frame_.get(); f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  return Value::Undefined("'" + name + "' is undefined");
}

Result<std::string> Interpreter::Capture(const Body& body, std::shared_ptr<Frame> frame) {
  std::string buf;
  std::string* saved_out = out_;
  std::shared_ptr<Frame> saved_frame = std::move(frame_);
  out_ = &buf;
  frame_ = std::move(frame);
  Status st = Exec(body);
  out_ = saved_out;
  frame_ = std::move(saved_frame);
  RETURN_IF_ERROR(st);
  return buf;
}

// ---- statements --------------------------------------------------------------------

Status Interpreter::Exec(const Body& body) {
  for (const auto& s : body) {
    RETURN_IF_ERROR(AtLine(ExecStmt(*s), s->line));
    if (flow_ != Flow::kNormal) return OkStatus();
  }
  return OkStatus();
}

Status Interpreter::ExecStmt(const Stmt& s) {
  switch (s.kind) {
    case StmtKind::kText:
      return Emit(s.text);
    case StmtKind::kOutput: {
      ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
      return Emit(ToStr(v));
    }
    case StmtKind::kIf:
      for (const auto& [test, body] : s.branches) {
        ASSIGN_OR_RETURN(Value c, Eval(*test));
        if (Truthy(c)) return Exec(body);
      }
      return Exec(s.else_body);
    case StmtKind::kFor:
      return ExecFor(s);
    case StmtKind::kSet: {
      ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
      return Assign(*s.target, v);
    }
    case StmtKind::kSetBlock:
    case StmtKind::kFilterBlock: {
      auto f = std::make_shared<Frame>();
      f->parent = frame_;
      ASSIGN_OR_RETURN(std::string text, Capture(s.body, f));
      Value v = Value::Str(std::move(text));
      if (s.expr) {
        // The filter chain's innermost operand is null: it stands for the block text.
        std::vector<const Expr*> chain;
        for (const Expr* e = s.expr.get(); e; e = e->children[0].get()) chain.push_back(e);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
          ASSIGN_OR_RETURN(CallArgs args, EvalArgs(**it, 1));
          ASSIGN_OR_RETURN(v, ApplyFilter((*it)->name, std::move(v), args));
        }
      }
      if (s.kind == StmtKind::kFilterBlock) return Emit(ToStr(v));
      return Assign(*s.target, v);
    }
    case StmtKind::kMacro:
      return ExecMacro(s);
    case StmtKind::kCallBlock:
      return ExecCallBlock(s);
    case StmtKind::kWith: {
      auto f = std::make_shared<Frame>();
      f->parent = frame_;
      for (size_t k = 0; k < s.params.size(); ++k) {
        ASSIGN_OR_RETURN(Value v, Eval(*s.defaults[k]));
        f->vars[s.params[k]] = std::move(v);
      }
      ASSIGN_OR_RETURN(std::string text, Capture(s.body, f));
      return Emit(text);
    }
    case StmtKind::kScope:
      return Exec(s.body);
    case StmtKind::kBreak:
      flow_ = Flow::kBreak;
      return OkStatus();
    case StmtKind::kContinue:
      flow_ = Flow::kContinue;
      return OkStatus();
  }
  return Internal("unknown statement");
}

Status Interpreter::ExecFor(const Stmt& s) {
  ASSIGN_OR_RETURN(Value seq, Eval(*s.expr));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(seq));
  std::shared_ptr<Frame> outer = frame_;
  if (s.cond) {
    // The `if` clause filters before iterating, so loop.length counts what remains.
    std::vector<Value> kept;
    for (Value& item : items) {
      RETURN_IF_ERROR(CountIteration());
      frame_ = std::make_shared<Frame>();
      frame_->parent = outer;
      Status st = Assign(*s.target, item);
      Result<Value> c = st.ok() ? Eval(*s.cond) : Result<Value>(st);
      frame_ = outer;
      if (!c.ok()) return c.status();
      if (Truthy(*c)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  auto cycle_index = std::make_shared<int64_t>(0);
  auto last_changed = std::make_shared<std::vector<Value>>();
  auto changed_called = std::make_shared<bool>(false);
  auto cycle = std::make_shared<Callable>();
  cycle->name = "cycle";
  cycle->native = [cycle_index](Interpreter&, CallArgs& a) -> Result<Value> {
    if (a.args.empty()) return InvalidArgument("no items for cycling given");
    return a.args[static_cast<size_t>(*cycle_index) % a.args.size()];
  };
  auto changed = std::make_shared<Callable>();
  changed->name = "changed";
  changed->native = [last_changed, changed_called](Interpreter&, CallArgs& a) -> Result<Value> {
    bool same = *changed_called && last_changed->size() == a.args.size();
    for (size_t k = 0; same && k < a.args.size(); ++k) same = Equals((*last_changed)[k], a.args[k]);
    *changed_called = true;
    *last_changed = a.args;
    return Value::Bool(!same);
  };
  Status result;
  for (int64_t k = 0; k < n; ++k) {
    result = CountIteration();
    if (!result.ok()) break;
    *cycle_index = k;
    frame_ = std::make_shared<Frame>();
    frame_->parent = outer;
    auto loop = std::make_shared<DictData>();
    loop->Set(Value::Str("index"), Value::Int(k + 1));
    loop->Set(Value::Str("index0"), Value::Int(k));
    loop->Set(Value::Str("revindex"), Value::Int(n - k));
    loop->Set(Value::Str("revindex0"), Value::Int(n - k - 1));
    loop->Set(Value::Str("first"), Value::Bool(k == 0));
    loop->Set(Value::Str("last"), Value::Bool(k == n - 1));
    loop->Set(Value::Str("length"), Value::Int(n));
    loop->Set(Value::Str("depth"), Value::Int(1));
    loop->Set(Value::Str("depth0"), Value::Int(0));
    if (k > 0) loop->Set(Value::Str("previtem"), items[static_cast<size_t>(k - 1)]);
    if (k + 1 < n) loop->Set(Value::Str("nextitem"), items[static_cast<size_t>(k + 1)]);
    loop->Set(Value::Str("cycle"), Value::Fn(cycle));
    loop->Set(Value::Str("changed"), Value::Fn(changed));
    frame_->vars["loop"] = Value::Dict(std::move(loop));
    result = Assign(*s.target, items[static_cast<size_t>(k)]);
    if (result.ok()) result = Exec(s.body);
    if (!result.ok()) break;
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  frame_ = outer;
  RETURN_IF_ERROR(result);
  if (n == 0 && !s.else_body.empty()) {
    auto f = std::make_shared<Frame>();
    f->parent = outer;
    ASSIGN_OR_RETURN(std::string text, Capture(s.else_body, f));
    return Emit(text);
  }
  return OkStatus();
}

Status Interpreter::Assign(const Expr& target, const Value& v) {
  switch (target.kind) {
    case ExprKind::kName:
      frame_->vars[target.name] = v;
      return OkStatus();
    case ExprKind::kTuple: {
      ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
      size_t want = target.children.size();
      if (items.size() < want) {
        return InvalidArgument("not enough values to unpack (expected " + std::to_string(want) +
                               ", got " + std::to_string(items.size()) + ")");
      }
      if (items.size() > want) {
        return InvalidArgument("too many values to unpack (expected " + std::to_string(want) + ")");
      }
      for (size_t k = 0; k < want; ++k) RETURN_IF_ERROR(Assign(*target.children[k], items[k]));
      return OkStatus();
    }
    case ExprKind::kGetAttr: {
      Value ns = Lookup(target.children[0]->name);
      if (ns.kind != Kind::kNamespace) {
        return InvalidArgument("cannot assign attribute on non-namespace object");
      }
      if (HasNamespace(v)) return InvalidArgument("storing a namespace inside a namespace is not supported");
      ns.dict->Set(Value::Str(target.name), v);
      return CheckList(ns);
    }
    default:
      return InvalidArgument("cannot assign to this expression");
  }
}

Value Interpreter::MakeMacro(const Stmt& s, const std::string& name) {
  auto fn = std::make_shared<Callable>();
  fn->name = name;
  // A weak reference: the macro usually lives in the very frame it closes over, and
  // a strong one would make a reference cycle.
  std::weak_ptr<Frame> closure = frame_;
  const Stmt* stmt = &s;
  fn->native = [stmt, closure](Interpreter& in, CallArgs& args) -> Result<Value> {
    std::shared_ptr<Frame> parent = closure.lock();
    if (!parent) return InvalidArgument("macro '" + stmt->name + "' called outside the scope it was defined in");
    return in.CallMacro(*stmt, parent, args);
  };
  return Value::Fn(std::move(fn));
}

Status Interpreter::ExecMacro(const Stmt& s) {
  frame_->vars[s.name] = MakeMacro(s, s.name);
  return OkStatus();
}

Status Interpreter::ExecCallBlock(const Stmt& s) {
  const Expr& call = *s.expr;
  ASSIGN_OR_RETURN(Value callee, Eval(*call.children[0]));
  ASSIGN_OR_RETURN(CallArgs args, EvalArgs(call, 1));
  args.kwargs.emplace_back("caller", MakeMacro(s, "caller"));
  ASSIGN_OR_RETURN(Value result, Call(callee, args));
  return Emit(ToStr(result));
}

Result<Value> Interpreter::CallMacro(const Stmt& s, const std::shared_ptr<Frame>& closure,
                                     CallArgs& args) {
  if (call_depth >= options_.limits.max_call_depth) {
    return ResourceExhausted("macro call depth limit (" +
                             std::to_string(options_.limits.max_call_depth) + ") exceeded");
  }
  auto f = std::make_shared<Frame>();
  f->parent = closure;
  const size_t np = s.params.size();
  std::vector<bool> given(np, false);
  std::vector<Value> extra;
  for (size_t k = 0; k < args.args.size(); ++k) {
    if (k < np) {
      f->vars[s.params[k]] = args.args[k];
      given[k] = true;
    } else {
      extra.push_back(args.args[k]);
    }
  }
  if (!extra.empty() && !s.uses_varargs) {
    return InvalidArgument("macro '" + s.name + "' takes not more than " + std::to_string(np) +
                           " argument(s)");
  }
  auto kwargs = std::make_shared<DictData>();
  for (auto& [name, v] : args.kwargs) {
    size_t k = 0;
    while (k < np && s.params[k] != name) ++k;
    if (k < np) {
      if (given[k]) return InvalidArgument("macro '" + s.name + "' got multiple values for argument '" + name + "'");
      f->vars[name] = v;
      given[k] = true;
    } else if (name == "caller") {
      f->vars["caller"] = v;
    } else if (s.uses_kwargs) {
      kwargs->Set(Value::Str(name), v);
    } else {
      return InvalidArgument("macro '" + s.name + "' takes no keyword argument '" + name + "'");
    }
  }
  if (s.uses_varargs) f->vars["varargs"] = Value::List(std::move(extra), /*is_tuple=*/true);
  if (s.uses_kwargs) f->vars["kwargs"] = Value::Dict(kwargs);
  // Defaults are evaluated at call time inside the macro's frame, in order.
  std::shared_ptr<Frame> saved = frame_;
  frame_ = f;
  Status st;
  for (size_t k = 0; k < np && st.ok(); ++k) {
    if (given[k]) continue;
    if (s.defaults[k]) {
      Result<Value> d = Eval(*s.defaults[k]);
      if (!d.ok()) st = d.status();
      else f->vars[s.params[k]] = *d;
    } else {
      f->vars[s.params[k]] = Value::Undefined("parameter '" + s.params[k] + "' was not provided");
    }
  }
  frame_ = saved;
  RETURN_IF_ERROR(st);
  ++call_depth;
  Result<std::string> text = Capture(s.body, f);
  --call_depth;
  if (!text.ok()) return text.status();
  return Value::Str(std::move(*text));
}

// ---- expressions -------------------------------------------------------------------

Result<Value> Interpreter::Eval(const Expr& e) {
  Result<Value> r = EvalInner(e);
  if (!r.ok()) return AtLine(r.status(), e.line);
  return r;
}

Result<CallArgs> Interpreter::EvalArgs(const Expr& e, size_t first) {
  CallArgs args;
  const size_t nkw = e.kw_names.size();
  const size_t npos = e.children.size() - first - nkw;
  for (size_t k = 0; k < npos; ++k) {
    ASSIGN_OR_RETURN(Value v, Eval(*e.children[first + k]));
    args.args.push_back(std::move(v));
  }
  for (size_t k = 0; k < nkw; ++k) {
    ASSIGN_OR_RETURN(Value v, Eval(*e.children[first + npos + k]));
    args.kwargs.emplace_back(e.kw_names[k], std::move(v));
  }
  return args;
}

Result<Value> Interpreter::EvalInner(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.value;
    case ExprKind::kName:
      return Lookup(e.name);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.children.size());
      for (const auto& c : e.children) {
        ASSIGN_OR_RETURN(Value v, Eval(*c));
        items.push_back(std::move(v));
      }
      Value v = Value::List(std::move(items), e.kind == ExprKind::kTuple);
      RETURN_IF_ERROR(CheckList(v));
      return v;
    }
    case ExprKind::kDict: {
      auto d = std::make_shared<DictData>();
      for (size_t k = 0; k + 1 < e.children.size(); k += 2) {
        ASSIGN_OR_RETURN(Value key, Eval(*e.children[k]));
        ASSIGN_OR_RETURN(Value val, Eval(*e.children[k + 1]));
        if (key.IsList() || key.IsDict() || key.kind == Kind::kNamespace || key.IsUndefined()) {
          if (key.IsUndefined()) return UndefinedError(key);
          return InvalidArgument("unhashable type: '" + TypeName(key) + "'");
        }
        d->Set(std::move(key), std::move(val));
      }
      Value v = Value::Dict(std::move(d));
      RETURN_IF_ERROR(CheckList(v));
      return v;
    }
    case ExprKind::kGetAttr: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
      return GetAttr(obj, e.name);
    }
    case ExprKind::kGetItem: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
      ASSIGN_OR_RETURN(Value key, Eval(*e.children[1]));
      return GetItem(obj, key);
    }
    case ExprKind::kSlice: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
      Value parts[3] = {Value::None(), Value::None(), Value::None()};
      for (int k = 0; k < 3; ++k) {
        if (e.children[k + 1]) {
          ASSIGN_OR_RETURN(parts[k], Eval(*e.children[k + 1]));
        }
      }
      return EvalSlice(obj, parts[0], parts[1], parts[2]);
    }
    case ExprKind::kCall: {
      ASSIGN_OR_RETURN(Value callee, Eval(*e.children[0]));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
      return Call(callee, args);
    }
    case ExprKind::kFilter: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
      return ApplyFilter(e.name, std::move(v), args);
    }
    case ExprKind::kTest: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
      ASSIGN_OR_RETURN(bool r, ApplyTest(e.name, v, args));
      return Value::Bool(r != e.negated);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
      if (v.IsUndefined()) return UndefinedError(v);
      if (!v.IsNumber()) {
        return InvalidArgument(std::string("bad operand type for unary ") +
                               (e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + TypeName(v) + "'");
      }
      if (e.kind == ExprKind::kPos) return v.kind == Kind::kBool ? Value::Int(v.AsInt()) : v;
      if (v.kind == Kind::kFloat) return Value::Float(-v.f);
      if (v.AsInt() == INT64_MIN) return InvalidArgument("integer overflow");
      return Value::Int(-v.AsInt());
    }
    case ExprKind::kNot: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
      return Value::Bool(!Truthy(v));
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      ASSIGN_OR_RETURN(Value a, Eval(*e.children[0]));
      if (Truthy(a) == (e.kind == ExprKind::kOr)) return a;
      return Eval(*e.children[1]);
    }
    case ExprKind::kCond: {
      ASSIGN_OR_RETURN(Value c, Eval(*e.children[0]));
      if (Truthy(c)) return Eval(*e.children[1]);
      if (e.children[2]) return Eval(*e.children[2]);
      return Value::Undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    case ExprKind::kBinary: {
      ASSIGN_OR_RETURN(Value a, Eval(*e.children[0]));
      ASSIGN_OR_RETURN(Value b, Eval(*e.children[1]));
      if (e.name == "~") {
        std::string s = ToStr(a) + ToStr(b);
        RETURN_IF_ERROR(CheckString(s));
        return Value::Str(std::move(s));
      }
      return EvalBinary(e.name, a, b);
    }
    case ExprKind::kCompare: {
      ASSIGN_OR_RETURN(Value left, Eval(*e.children[0]));
      for (size_t k = 0; k < e.ops.size(); ++k) {
        ASSIGN_OR_RETURN(Value right, Eval(*e.children[k + 1]));
        ASSIGN_OR_RETURN(bool r, EvalCompare(e.ops[k], left, right));
        if (!r) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
  }
  return Internal("unknown expression");
}

Result<Value> Interpreter::GetAttr(const Value& obj, const std::string& name) {
  if (obj.IsUndefined()) return UndefinedError(obj);
  bool unsafe = false;
  if (obj.IsDict() || obj.IsString() || obj.IsList()) {
    Value m = GetMethod(obj, name, &unsafe);
    if (!m.IsUndefined()) return m;
    if (unsafe) {
      return Value::Undefined("access to attribute '" + name + "' of '" + TypeName(obj) +
                              "' object is unsafe.");
    }
  }
  if (obj.IsDict() || obj.kind == Kind::kNamespace) {
    if (const Value* v = obj.dict->FindStr(name)) return *v;
  }
  return Value::Undefined("'" + TypeName(obj) + " object' has no attribute '" + name + "'");
}

Result<Value> Interpreter::GetItem(const Value& obj, const Value& key) {
  if (obj.IsUndefined()) return UndefinedError(obj);
  if (obj.IsDict() || obj.kind == Kind::kNamespace) {
    if (!key.IsList() && !key.IsDict()) {
      if (const Value* v = obj.dict->Find(key)) return *v;
    }
  } else if ((obj.IsList() || obj.IsString()) && key.IsIntLike()) {
    int64_t idx = key.AsInt();
    if (obj.IsString()) return StrIndex(obj.s, idx);
    const auto& items = obj.list->items;
    int64_t n = static_cast<int64_t>(items.size());
    if (idx < 0) idx += n;
    if (idx >= 0 && idx < n) return items[static_cast<size_t>(idx)];
  } else if (key.IsString()) {
    return GetAttr(obj, key.s);
  }
  return Value::Undefined("'" + TypeName(obj) + " object' has no attribute '" + ToStr(key) + "'");
}

Result<Value> Interpreter::EvalSlice(const Value& obj, const Value& start, const Value& stop,
                                     const Value& step) {
  if (obj.IsUndefined()) return UndefinedError(obj);
  for (const Value* p : {&start, &stop, &step}) {
    if (!p->IsNone() && !p->IsIntLike()) {
      if (p->IsUndefined()) return UndefinedError(*p);
      return InvalidArgument("slice indices must be integers or None");
    }
  }
  int64_t st = step.IsNone() ? 1 : step.AsInt();
  if (st == 0) return InvalidArgument("slice step cannot be zero");
  if (obj.IsString()) {
    return Value::Str(StrSlice(obj.s, start.IsNone() ? 0 : start.AsInt(), stop.IsNone() ? 0 : stop.AsInt(),
                               st, !start.IsNone(), !stop.IsNone()));
  }
  if (!obj.IsList()) return Value::Undefined("'" + TypeName(obj) + "' object is not subscriptable");
  const auto& items = obj.list->items;
  const int64_t n = static_cast<int64_t>(items.size());
  int64_t lower = st > 0 ? 0 : -1, upper = st > 0 ? n : n - 1;
  auto norm = [&](const Value& v, int64_t dflt) {
    if (v.IsNone()) return dflt;
    int64_t x = v.AsInt();
    if (x < 0) x = std::max(x + n, lower);
    else x = std::min(x, upper);
    return x;
  };
  int64_t b = norm(start, st > 0 ? lower : upper);
  int64_t e = norm(stop, st > 0 ? upper : lower);
  std::vector<Value> out;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(items[static_cast<size_t>(k)]);
  return Value::List(std::move(out), obj.list->is_tuple);
}

Result<Value> Interpreter::EvalBinary(const std::string& op, const Value& a, const Value& b) {
  if (a.IsUndefined()) return UndefinedError(a);
  if (b.IsUndefined()) return UndefinedError(b);
  const bool ints = a.IsIntLike() && b.IsIntLike();
  const bool nums = a.IsNumber() && b.IsNumber();
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      if (__builtin_add_overflow(a.AsInt(), b.AsInt(), &r)) return InvalidArgument("integer overflow");
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.AsDouble() + b.AsDouble());
    if (a.IsString() && b.IsString()) {
      std::string s = a.s + b.s;
      RETURN_IF_ERROR(CheckString(s));
      return Value::Str(std::move(s));
    }
    if (a.IsList() && b.IsList() && a.list->is_tuple == b.list->is_tuple) {
      std::vector<Value> items = a.list->items;
      items.insert(items.end(), b.list->items.begin(), b.list->items.end());
      Value v = Value::List(std::move(items), a.list->is_tuple);
      RETURN_IF_ERROR(CheckList(v));
      return v;
    }
    return TypeError("+", a, b);
  }
  if (op == "-") {
    if (ints) {
      if (__builtin_sub_overflow(a.AsInt(), b.AsInt(), &r)) return InvalidArgument("integer overflow");
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.AsDouble() - b.AsDouble());
    return TypeError("-", a, b);
  }
  if (op == "*") {
    if (ints) {
      if (__builtin_mul_overflow(a.AsInt(), b.AsInt(), &r)) return InvalidArgument("integer overflow");
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.AsDouble() * b.AsDouble());
    const Value* seq = a.IsIntLike() ? &b : &a;
    const Value* count = a.IsIntLike() ? &a : &b;
    if (count->IsIntLike() && (seq->IsString() || seq->IsList())) {
      int64_t times = std::max<int64_t>(0, count->AsInt());
      size_t unit = seq->IsString() ? seq->s.size() : seq->list->items.size();
      size_t limit = seq->IsString() ? options_.limits.max_output_bytes : options_.limits.max_container_items;
      if (unit > 0 && static_cast<uint64_t>(times) > limit / unit) {
        return ResourceExhausted("repeated value exceeds the size limit");
      }
      if (seq->IsString()) {
        std::string s;
        for (int64_t k = 0; k < times; ++k) s += seq->s;
        return Value::Str(std::move(s));
      }
      std::vector<Value> items;
      for (int64_t k = 0; k < times; ++k) items.insert(items.end(), seq->list->items.begin(), seq->list->items.end());
      return Value::List(std::move(items), seq->list->is_tuple);
    }
    return TypeError("*", a, b);
  }
  if (op == "/") {
    if (!nums) return TypeError("/", a, b);
    if (b.AsDouble() == 0) return InvalidArgument("division by zero");
    return Value::Float(a.AsDouble() / b.AsDouble());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.IsString()) return PercentFormat(a.s, b);
    if (!nums) return TypeError(op, a, b);
    if (b.AsDouble() == 0) return InvalidArgument("integer division or modulo by zero");
    if (ints) {
      int64_t x = a.AsInt(), y = b.AsInt();
      if (x == INT64_MIN && y == -1) return InvalidArgument("integer overflow");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::Int(op == "//" ? q : m);
    }
    double x = a.AsDouble(), y = b.AsDouble();
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (op == "%") return Value::Float(m);
    // CPython's float floordiv: exact quotient of (x - mod) / y, rounded to nearest.
    double div = (x - m) / y;
    if (div == 0) return Value::Float(std::copysign(0.0, x / y));
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return Value::Float(fl);
  }
  if (op == "**") {
    if (!nums) return TypeError("**", a, b);
    if (ints && b.AsInt() >= 0) {
      int64_t base = a.AsInt(), result = 1;
      for (int64_t e = b.AsInt(); e > 0; --e) {
        if (__builtin_mul_overflow(result, base, &result)) return InvalidArgument("integer overflow");
        if (result == 0 || result == 1) break;
        if (result == -1) {
          result = (e % 2 == 1) ? -1 : 1;
          break;
        }
      }
      return Value::Int(result);
    }
    if (a.AsDouble() == 0 && b.AsDouble() < 0) return InvalidArgument("0.0 cannot be raised to a negative power");
    return Value::Float(std::pow(a.AsDouble(), b.AsDouble()));
  }
  return Internal("unknown operator " + op);
}

Result<bool> Interpreter::EvalCompare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "<") return Less(a, b);
  if (op == ">") return Less(b, a);
  if (op == "<=") {
    ASSIGN_OR_RETURN(bool gt, Less(b, a));
    return !gt;
  }
  if (op == ">=") {
    ASSIGN_OR_RETURN(bool lt, Less(a, b));
    return !lt;
  }
  // in / not in
  bool found = false;
  if (b.IsString()) {
    if (!a.IsString()) {
      if (a.IsUndefined()) return UndefinedError(a);
      return InvalidArgument("'in <string>' requires string as left operand, not " + TypeName(a));
    }
    found = b.s.find(a.s) != std::string::npos;
  } else if (b.IsList()) {
    for (const Value& item : b.list->items) {
      if (Equals(item, a)) { found = true; break; }
    }
  } else if (b.IsDict()) {
    if (a.IsList() || a.IsDict()) return InvalidArgument("unhashable type: '" + TypeName(a) + "'");
    found = b.dict->Find(a) != nullptr;
  } else if (!b.IsUndefined()) {
    return InvalidArgument("argument of type '" + TypeName(b) + "' is not iterable");
  }
  return op == "in" ? found : !found;
}

Result<Value> Interpreter::Call(const Value& fn, CallArgs& args) {
  if (fn.IsUndefined()) return UndefinedError(fn);
  if (fn.kind != Kind::kCallable) return InvalidArgument("'" + TypeName(fn) + "' object is not callable");
  return fn.fn->native(*this, args);
}

Result<Value> Interpreter::ApplyFilter(const std::string& name, Value v, CallArgs& args) {
  return CallFilter(*this, name, std::move(v), args);
}

Result<bool> Interpreter::ApplyTest(const std::string& name, const Value& v, CallArgs& args) {
  return CallTest(*this, name, v, args);
}

}  // namespace tide::jinja
