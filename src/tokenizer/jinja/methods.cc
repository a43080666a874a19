// Python methods of str, dict and list values that templates call (message.content
// .strip(), tool.get('x'), ...), and the iteration/len/indexing rules they share with
// the filters. Mutating methods exist only to be refused, as jinja2's
// ImmutableSandboxedEnvironment refuses them.
#include <algorithm>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustring.h"

namespace tide::jinja {

const Value* Arg(const CallArgs& args, size_t pos, std::string_view name) {
  if (pos < args.args.size()) return &args.args[pos];
  for (const auto& [k, v] : args.kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

Status CheckArgs(const CallArgs& args, size_t max_positional,
                 std::initializer_list<std::string_view> names, std::string_view fn) {
  if (args.args.size() > max_positional) {
    return InvalidArgument(std::string(fn) + "() takes at most " + std::to_string(max_positional) +
                           " positional argument(s) (" + std::to_string(args.args.size()) + " given)");
  }
  for (const auto& [k, v] : args.kwargs) {
    size_t idx = 0;
    bool ok = false;
    for (std::string_view n : names) {
      if (n == k) {
        ok = idx >= args.args.size();  // also given positionally = duplicate
        if (!ok) return InvalidArgument(std::string(fn) + "() got multiple values for argument '" + k + "'");
        break;
      }
      ++idx;
    }
    if (!ok) return InvalidArgument(std::string(fn) + "() got an unexpected keyword argument '" + k + "'");
  }
  return OkStatus();
}

Result<std::vector<Value>> Iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return std::vector<Value>{};
    case Kind::kList: return v.list->items;
    case Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict->entries.size());
      for (const auto& [k, val] : v.dict->entries) keys.push_back(k);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      for (char32_t c : DecodeUtf8(v.s)) {
        std::string s;
        AppendUtf8(s, c);
        chars.push_back(Value::Str(std::move(s)));
      }
      return chars;
    }
    default:
      return InvalidArgument("'" + TypeName(v) + "' object is not iterable");
  }
}

Result<int64_t> Length(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return int64_t{0};
    case Kind::kString: return static_cast<int64_t>(CountCodePoints(v.s));
    case Kind::kList: return static_cast<int64_t>(v.list->items.size());
    case Kind::kDict: return static_cast<int64_t>(v.dict->entries.size());
    default: return InvalidArgument("object of type '" + TypeName(v) + "' has no len()");
  }
}

Value StrIndex(const std::string& s, int64_t index) {
  std::u32string u = DecodeUtf8(s);
  int64_t n = static_cast<int64_t>(u.size());
  if (index < 0) index += n;
  if (index < 0 || index >= n) return Value::Undefined("string index out of range");
  std::string out;
  AppendUtf8(out, u[static_cast<size_t>(index)]);
  return Value::Str(std::move(out));
}

std::string StrSlice(const std::string& s, int64_t start, int64_t stop, int64_t step, bool has_start,
                     bool has_stop) {
  std::u32string u = DecodeUtf8(s);
  const int64_t n = static_cast<int64_t>(u.size());
  int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? n : n - 1;
  auto norm = [&](int64_t x, bool has, int64_t dflt) {
    if (!has) return dflt;
    if (x < 0) return std::max(x + n, lower);
    return std::min(x, upper);
  };
  int64_t b = norm(start, has_start, step > 0 ? lower : upper);
  int64_t e = norm(stop, has_stop, step > 0 ? upper : lower);
  std::string out;
  for (int64_t k = b; step > 0 ? k < e : k > e; k += step) AppendUtf8(out, u[static_cast<size_t>(k)]);
  return out;
}

namespace {

using Method = Result<Value> (*)(Interpreter&, const Value&, CallArgs&);

Result<std::string> StrArg(const CallArgs& a, size_t pos, std::string_view name, std::string_view fn) {
  const Value* v = Arg(a, pos, name);
  if (!v) return InvalidArgument(std::string(fn) + "() missing required argument '" + std::string(name) + "'");
  if (!v->IsString()) return InvalidArgument(std::string(fn) + "() argument must be str, not " + TypeName(*v));
  return v->s;
}

// Python's str.split / str.rsplit.
std::vector<std::string> Split(const std::string& s, const std::string* sep, int64_t maxsplit, bool right) {
  std::vector<std::string> parts;
  if (sep) {
    if (!right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t f = s.find(*sep, pos);
        if (f == std::string::npos) break;
        parts.push_back(s.substr(pos, f - pos));
        pos = f + sep->size();
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t f = s.rfind(*sep, end - sep->size());
        if (f == std::string::npos) break;
        rev.push_back(s.substr(f + sep->size(), end - f - sep->size()));
        end = f;
      }
      rev.push_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
    return parts;
  }
  std::u32string u = DecodeUtf8(s);
  if (!right) {
    size_t k = 0;
    while (true) {
      while (k < u.size() && IsPySpace(u[k])) ++k;
      if (k >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(EncodeUtf8(std::u32string_view(u).substr(k)));  // keeps trailing space
        break;
      }
      size_t b = k;
      while (k < u.size() && !IsPySpace(u[k])) ++k;
      parts.push_back(EncodeUtf8(std::u32string_view(u).substr(b, k - b)));
    }
    return parts;
  }
  std::vector<std::string> rev;
  size_t k = u.size();
  while (true) {
    while (k > 0 && IsPySpace(u[k - 1])) --k;
    if (k == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) >= maxsplit) {
      rev.push_back(EncodeUtf8(std::u32string_view(u).substr(0, k)));  // keeps leading space
      break;
    }
    size_t e = k;
    while (k > 0 && !IsPySpace(u[k - 1])) --k;
    rev.push_back(EncodeUtf8(std::u32string_view(u).substr(k, e - k)));
  }
  parts.assign(rev.rbegin(), rev.rend());
  return parts;
}

Value StrList(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::Str(std::move(p)));
  return Value::List(std::move(items));
}

Result<Value> MSplit(Interpreter&, const Value& self, CallArgs& a, bool right) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"sep", "maxsplit"}, right ? "rsplit" : "split"));
  const Value* sep = Arg(a, 0, "sep");
  const Value* maxsplit = Arg(a, 1, "maxsplit");
  if (sep && !sep->IsNone() && !sep->IsString()) return InvalidArgument("must be str or None, not " + TypeName(*sep));
  if (sep && sep->IsString() && sep->s.empty()) return InvalidArgument("empty separator");
  if (maxsplit && !maxsplit->IsIntLike()) return InvalidArgument("maxsplit must be an integer");
  return StrList(Split(self.s, (sep && sep->IsString()) ? &sep->s : nullptr,
                       maxsplit ? maxsplit->AsInt() : -1, right));
}

Result<Value> MStrip(const Value& self, CallArgs& a, bool left, bool right) {
  RETURN_IF_ERROR(CheckArgs(a, 1, {"chars"}, "strip"));
  const Value* chars = Arg(a, 0, "chars");
  if (chars && !chars->IsNone() && !chars->IsString()) {
    return InvalidArgument("strip arg must be None or str");
  }
  return Value::Str(PyStrip(self.s, (chars && chars->IsString()) ? &chars->s : nullptr, left, right));
}

Result<Value> MAffix(const Value& self, CallArgs& a, bool start) {
  const char* fn = start ? "startswith" : "endswith";
  RETURN_IF_ERROR(CheckArgs(a, 1, {}, fn));
  if (a.args.empty()) return InvalidArgument(std::string(fn) + "() takes at least 1 argument (0 given)");
  std::vector<Value> options;
  if (a.args[0].IsList() && a.args[0].list->is_tuple) options = a.args[0].list->items;
  else options.push_back(a.args[0]);
  for (const Value& o : options) {
    if (!o.IsString()) return InvalidArgument(std::string(fn) + " first arg must be str or a tuple of str, not " + TypeName(o));
    const std::string& s = self.s;
    bool hit = start ? s.compare(0, o.s.size(), o.s) == 0 && s.size() >= o.s.size()
                     : s.size() >= o.s.size() && s.compare(s.size() - o.s.size(), o.s.size(), o.s) == 0;
    if (hit) return Value::Bool(true);
  }
  return Value::Bool(false);
}

Result<Value> MFind(const Value& self, CallArgs& a, int mode) {  // 0 find, 1 rfind, 2 count, 3 index
  static const char* kNames[] = {"find", "rfind", "count", "index"};
  RETURN_IF_ERROR(CheckArgs(a, 1, {}, kNames[mode]));
  ASSIGN_OR_RETURN(std::string sub, StrArg(a, 0, "sub", kNames[mode]));
  const std::string& s = self.s;
  if (mode == 2) {
    if (sub.empty()) return Value::Int(static_cast<int64_t>(CountCodePoints(s)) + 1);
    int64_t n = 0;
    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Value::Int(n);
  }
  size_t p = mode == 1 ? s.rfind(sub) : s.find(sub);
  if (p == std::string::npos) {
    if (mode == 3) return InvalidArgument("substring not found");
    return Value::Int(-1);
  }
  return Value::Int(static_cast<int64_t>(CountCodePoints(s.substr(0, p))));
}

// str.format with {} / {0} / {name} fields (no format specs).
Result<Value> MFormat(const Value& self, CallArgs& a) {
  std::string out;
  const std::string& f = self.s;
  size_t auto_idx = 0;
  for (size_t k = 0; k < f.size(); ++k) {
    char c = f[k];
    if (c == '}') {
      if (k + 1 < f.size() && f[k + 1] == '}') { out += '}'; ++k; continue; }
      return InvalidArgument("Single '}' encountered in format string");
    }
    if (c != '{') { out += c; continue; }
    if (k + 1 < f.size() && f[k + 1] == '{') { out += '{'; ++k; continue; }
    size_t e = f.find('}', k);
    if (e == std::string::npos) return InvalidArgument("Single '{' encountered in format string");
    std::string field = f.substr(k + 1, e - k - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      return InvalidArgument("format specs are not supported in str.format");
    }
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_idx < a.args.size() ? &a.args[auto_idx] : nullptr;
      ++auto_idx;
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t idx = field.size() > 6 ? SIZE_MAX : std::stoul(field);
      v = idx < a.args.size() ? &a.args[idx] : nullptr;
    } else {
      for (const auto& [name, val] : a.kwargs) {
        if (name == field) v = &val;
      }
    }
    if (!v) return InvalidArgument("format field '" + field + "' has no argument");
    out += ToStr(*v);
    k = e;
  }
  return Value::Str(std::move(out));
}

Result<Value> MSplitlines(const Value& self, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 1, {"keepends"}, "splitlines"));
  const Value* keep = Arg(a, 0, "keepends");
  bool keepends = keep && Truthy(*keep);
  std::u32string u = DecodeUtf8(self.s);
  std::vector<std::string> lines;
  size_t b = 0;
  for (size_t k = 0; k < u.size(); ++k) {
    char32_t c = u[k];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
               c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    size_t end = k;
    if (c == '\r' && k + 1 < u.size() && u[k + 1] == '\n') ++k;
    lines.push_back(EncodeUtf8(std::u32string_view(u).substr(b, (keepends ? k + 1 : end) - b)));
    b = k + 1;
  }
  if (b < u.size()) lines.push_back(EncodeUtf8(std::u32string_view(u).substr(b)));
  return StrList(std::move(lines));
}

// Python's str.title(): a cased letter after an uncased one is upper, others lower.
std::string PyTitle(const std::string& s) {
  std::u32string u = DecodeUtf8(s);
  bool prev_cased = false;
  for (char32_t& c : u) {
    bool cased = ToUpperCp(c) != c || ToLowerCp(c) != c;
    if (cased) c = prev_cased ? ToLowerCp(c) : ToUpperCp(c);
    prev_cased = cased;
  }
  return EncodeUtf8(u);
}

Result<Value> StrMethod(Interpreter& in, const Value& self, const std::string& name, CallArgs& a) {
  const std::string& s = self.s;
  if (name == "startswith" || name == "endswith") return MAffix(self, a, name == "startswith");
  if (name == "strip") return MStrip(self, a, true, true);
  if (name == "lstrip") return MStrip(self, a, true, false);
  if (name == "rstrip") return MStrip(self, a, false, true);
  if (name == "split" || name == "rsplit") return MSplit(in, self, a, name == "rsplit");
  if (name == "splitlines") return MSplitlines(self, a);
  if (name == "find") return MFind(self, a, 0);
  if (name == "rfind") return MFind(self, a, 1);
  if (name == "count") return MFind(self, a, 2);
  if (name == "index") return MFind(self, a, 3);
  if (name == "format") return MFormat(self, a);
  if (name == "replace") {
    RETURN_IF_ERROR(CheckArgs(a, 3, {}, "replace"));
    ASSIGN_OR_RETURN(std::string from, StrArg(a, 0, "old", "replace"));
    ASSIGN_OR_RETURN(std::string to, StrArg(a, 1, "new", "replace"));
    const Value* count = Arg(a, 2, "count");
    int64_t limit = count && count->IsIntLike() ? count->AsInt() : -1;
    std::string out;
    if (from.empty()) {
      // Python inserts `to` around every code point.
      std::u32string u = DecodeUtf8(s);
      int64_t done = 0;
      for (size_t k = 0; k <= u.size(); ++k) {
        if (limit < 0 || done < limit) { out += to; ++done; }
        if (k < u.size()) AppendUtf8(out, u[k]);
      }
    } else {
      size_t pos = 0;
      int64_t done = 0;
      while (limit < 0 || done < limit) {
        size_t f = s.find(from, pos);
        if (f == std::string::npos) break;
        out.append(s, pos, f - pos);
        out += to;
        pos = f + from.size();
        ++done;
        if (out.size() > in.options().limits.max_output_bytes) break;
      }
      out.append(s, pos, std::string::npos);
    }
    RETURN_IF_ERROR(in.CheckString(out));
    return Value::Str(std::move(out));
  }
  if (name == "join") {
    RETURN_IF_ERROR(CheckArgs(a, 1, {}, "join"));
    if (a.args.empty()) return InvalidArgument("join() takes exactly one argument (0 given)");
    ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(a.args[0]));
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) {
      if (!items[k].IsString()) {
        return InvalidArgument("sequence item " + std::to_string(k) + ": expected str instance, " +
                               TypeName(items[k]) + " found");
      }
      if (k) out += s;
      out += items[k].s;
      RETURN_IF_ERROR(in.CheckString(out));
    }
    return Value::Str(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    ASSIGN_OR_RETURN(std::string affix, StrArg(a, 0, "prefix", name));
    bool pre = name == "removeprefix";
    if (s.size() >= affix.size() &&
        s.compare(pre ? 0 : s.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::Str(pre ? s.substr(affix.size()) : s.substr(0, s.size() - affix.size()));
    }
    return self;
  }
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, name));
  if (name == "upper") return Value::Str(PyUpper(s));
  if (name == "lower") return Value::Str(PyLower(s));
  if (name == "title") return Value::Str(PyTitle(s));
  if (name == "capitalize") {
    std::u32string u = DecodeUtf8(s);
    for (size_t k = 0; k < u.size(); ++k) u[k] = k == 0 ? ToUpperCp(u[k]) : ToLowerCp(u[k]);
    return Value::Str(EncodeUtf8(u));
  }
  std::u32string u = DecodeUtf8(s);
  auto all = [&](auto pred) {
    return Value::Bool(!u.empty() && std::all_of(u.begin(), u.end(), pred));
  };
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") return all(IsDigitCp);
  if (name == "isalpha") return all(IsAlphaCp);
  if (name == "isalnum") return all([](char32_t c) { return IsAlphaCp(c) || IsDigitCp(c); });
  if (name == "isspace") return all(IsPySpace);
  if (name == "islower" || name == "isupper") {
    bool want_lower = name == "islower";
    bool any_cased = false;
    for (char32_t c : u) {
      bool is_upper = ToLowerCp(c) != c, is_lower = ToUpperCp(c) != c;
      if (is_upper || is_lower) any_cased = true;
      if (want_lower ? is_upper : is_lower) return Value::Bool(false);
    }
    return Value::Bool(any_cased);
  }
  return InvalidArgument("str has no method '" + name + "'");
}

Result<Value> DictMethod(Interpreter&, const Value& self, const std::string& name, CallArgs& a) {
  const DictData& d = *self.dict;
  if (name == "get") {
    RETURN_IF_ERROR(CheckArgs(a, 2, {}, "get"));
    if (a.args.empty()) return InvalidArgument("get expected at least 1 argument, got 0");
    if (a.args[0].IsList() || a.args[0].IsDict()) return InvalidArgument("unhashable type: '" + TypeName(a.args[0]) + "'");
    const Value* v = d.Find(a.args[0]);
    if (v) return *v;
    return a.args.size() > 1 ? a.args[1] : Value::None();
  }
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, name));
  std::vector<Value> out;
  out.reserve(d.entries.size());
  for (const auto& [k, v] : d.entries) {
    if (name == "items") out.push_back(Value::List({k, v}, /*is_tuple=*/true));
    else if (name == "keys") out.push_back(k);
    else if (name == "values") out.push_back(v);
  }
  if (name == "copy") {
    auto copy = std::make_shared<DictData>(d);
    return Value::Dict(std::move(copy));
  }
  return Value::List(std::move(out));
}

Result<Value> ListMethod(Interpreter&, const Value& self, const std::string& name, CallArgs& a) {
  const auto& items = self.list->items;
  if (name == "copy") return Value::List(items, self.list->is_tuple);
  RETURN_IF_ERROR(CheckArgs(a, 1, {}, name));
  if (a.args.empty()) return InvalidArgument(name + "() takes exactly one argument (0 given)");
  int64_t n = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    if (!Equals(items[k], a.args[0])) continue;
    if (name == "index") return Value::Int(static_cast<int64_t>(k));
    ++n;
  }
  if (name == "index") return InvalidArgument(Repr(a.args[0]) + " is not in list");
  return Value::Int(n);
}

bool IsOneOf(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (name == n) return true;
  }
  return false;
}

}  // namespace

Value GetMethod(const Value& self, const std::string& name, bool* unsafe) {
  *unsafe = false;
  bool known = false;
  if (self.IsString()) {
    known = IsOneOf(name, {"startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit",
                           "splitlines", "find", "rfind", "count", "index", "format", "replace",
                           "join", "upper", "lower", "title", "capitalize", "isdigit", "isnumeric",
                           "isdecimal", "isalpha", "isalnum", "isspace", "islower", "isupper",
                           "removeprefix", "removesuffix"});
  } else if (self.IsDict()) {
    known = IsOneOf(name, {"get", "items", "keys", "values", "copy"});
    *unsafe = IsOneOf(name, {"pop", "popitem", "setdefault", "update", "clear"});
  } else if (self.IsList()) {
    known = IsOneOf(name, {"index", "count"}) || (!self.list->is_tuple && name == "copy");
    *unsafe = !self.list->is_tuple &&
              IsOneOf(name, {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"});
  }
  if (!known) return Value::Undefined("");
  auto fn = std::make_shared<Callable>();
  fn->name = name;
  fn->has_namespace = HasNamespace(self);
  fn->native = [self, name](Interpreter& in, CallArgs& a) -> Result<Value> {
    if (self.IsString()) return StrMethod(in, self, name, a);
    if (self.IsDict()) return DictMethod(in, self, name, a);
    return ListMethod(in, self, name, a);
  };
  return Value::Fn(std::move(fn));
}

}  // namespace tide::jinja
