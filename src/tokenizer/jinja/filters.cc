// jinja2's filters as chat templates use them, with jinja2 3.1's semantics under
// transformers' environment (tojson is transformers' json.dumps wrapper).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustring.h"

namespace tide::jinja {
namespace {

using FilterFn = Result<Value> (*)(Interpreter&, Value&, CallArgs&);

Result<Value> RequireArg(const CallArgs& a, size_t pos, std::string_view name, std::string_view fn) {
  const Value* v = Arg(a, pos, name);
  if (!v) return InvalidArgument(std::string(fn) + "() missing required argument '" + std::string(name) + "'");
  return *v;
}

// jinja2's make_attrgetter: "a.b.0" looks up each part with getitem semantics.
Result<Value> AttrPath(Interpreter& in, const Value& item, const std::string& path) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.size() < 18 &&
                  std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    ASSIGN_OR_RETURN(cur, in.GetItem(cur, digits ? Value::Int(std::stoll(part)) : Value::Str(part)));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort key: case-folded strings unless case_sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.IsString()) return Value::Str(PyLower(v.s));
  return v;
}

Status SortValues(std::vector<std::pair<Value, Value>>& keyed, bool reverse) {
  Status err;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    if (!err.ok()) return false;
    Result<bool> r = reverse ? Less(y.first, x.first) : Less(x.first, y.first);
    if (!r.ok()) {
      err = r.status();
      return false;
    }
    return *r;
  });
  return err;
}

// ---- filters -----------------------------------------------------------------------

Result<Value> FTojson(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 4, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson"));
  JsonDumpOptions opt;
  if (const Value* x = Arg(a, 0, "ensure_ascii")) opt.ensure_ascii = Truthy(*x);
  if (const Value* x = Arg(a, 1, "indent"); x && !x->IsNone()) {
    opt.has_indent = true;
    if (x->IsString()) opt.indent = x->s;
    else if (x->IsIntLike()) opt.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(x->AsInt(), 0, 1024)), ' ');
    else return InvalidArgument("indent must be an int or a str");
    opt.item_sep = ",";
  }
  if (const Value* x = Arg(a, 2, "separators"); x && !x->IsNone()) {
    if (!x->IsList() || x->list->items.size() != 2 || !x->list->items[0].IsString() ||
        !x->list->items[1].IsString()) {
      return InvalidArgument("separators must be a pair of strings");
    }
    opt.item_sep = x->list->items[0].s;
    opt.key_sep = x->list->items[1].s;
  }
  if (const Value* x = Arg(a, 3, "sort_keys")) opt.sort_keys = Truthy(*x);
  ASSIGN_OR_RETURN(std::string s, ToJson(v, opt));
  RETURN_IF_ERROR(in.CheckString(s));
  return Value::Str(std::move(s));
}

Result<Value> FTrim(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 1, {"chars"}, "trim"));
  const Value* chars = Arg(a, 0, "chars");
  bool has = chars && !chars->IsNone();
  std::string set = has ? ToStr(*chars) : "";
  return Value::Str(PyStrip(ToStr(v), has ? &set : nullptr, true, true));
}

Result<Value> FLength(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "length"));
  ASSIGN_OR_RETURN(int64_t n, Length(v));
  return Value::Int(n);
}

Result<Value> FItems(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "items"));
  std::vector<Value> out;
  if (v.IsUndefined()) return Value::List({});
  if (!v.IsDict()) return InvalidArgument("Can only get item pairs from a mapping.");
  for (const auto& [k, val] : v.dict->entries) out.push_back(Value::List({k, val}, /*is_tuple=*/true));
  return Value::List(std::move(out));
}

Result<Value> FList(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "list"));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  return Value::List(std::move(items));
}

// select / reject / selectattr / rejectattr share jinja2's select_or_reject.
Result<Value> SelectOrReject(Interpreter& in, Value& v, CallArgs& a, bool attr, bool select) {
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  size_t k = 0;
  std::string path;
  if (attr) {
    if (a.args.empty()) return InvalidArgument("Missing parameter for attribute name");
    if (!a.args[0].IsString()) return InvalidArgument("attribute name must be a string");
    path = a.args[k++].s;
  }
  std::string test;
  bool has_test = k < a.args.size();
  if (has_test) {
    if (!a.args[k].IsString()) return InvalidArgument("test name must be a string");
    test = a.args[k++].s;
  }
  CallArgs rest;
  rest.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(k), a.args.end());
  rest.kwargs = a.kwargs;
  std::vector<Value> out;
  for (const Value& item : items) {
    Value x = item;
    if (attr) {
      ASSIGN_OR_RETURN(x, AttrPath(in, item, path));
    }
    bool r;
    if (has_test) {
      CallArgs args = rest;
      ASSIGN_OR_RETURN(r, in.ApplyTest(test, x, args));
    } else {
      r = Truthy(x);
    }
    if (r == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}

Result<Value> FSelect(Interpreter& in, Value& v, CallArgs& a) { return SelectOrReject(in, v, a, false, true); }
Result<Value> FReject(Interpreter& in, Value& v, CallArgs& a) { return SelectOrReject(in, v, a, false, false); }
Result<Value> FSelectattr(Interpreter& in, Value& v, CallArgs& a) { return SelectOrReject(in, v, a, true, true); }
Result<Value> FRejectattr(Interpreter& in, Value& v, CallArgs& a) { return SelectOrReject(in, v, a, true, false); }

Result<Value> FMap(Interpreter& in, Value& v, CallArgs& a) {
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::vector<Value> out;
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, val] : a.kwargs) {
    if (k == "attribute") attribute = &val;
    if (k == "default") dflt = &val;
  }
  if (attribute && a.args.empty()) {
    std::string path = ToStr(*attribute);
    for (const Value& item : items) {
      ASSIGN_OR_RETURN(Value x, AttrPath(in, item, path));
      if (x.IsUndefined() && dflt) x = *dflt;
      out.push_back(std::move(x));
    }
    return Value::List(std::move(out));
  }
  if (a.args.empty() || !a.args[0].IsString()) return InvalidArgument("map requires a filter name or attribute=");
  std::string filter = a.args[0].s;
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (Value& item : items) {
    CallArgs args = rest;
    ASSIGN_OR_RETURN(Value x, in.ApplyFilter(filter, std::move(item), args));
    out.push_back(std::move(x));
  }
  return Value::List(std::move(out));
}

Result<Value> FJoin(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"d", "attribute"}, "join"));
  const Value* sep = Arg(a, 0, "d");
  const Value* attribute = Arg(a, 1, "attribute");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::string s = sep ? ToStr(*sep) : "";
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    Value x = items[k];
    if (attribute && !attribute->IsNone()) {
      ASSIGN_OR_RETURN(x, AttrPath(in, items[k], ToStr(*attribute)));
    }
    if (k) out += s;
    out += ToStr(x);
    RETURN_IF_ERROR(in.CheckString(out));
  }
  return Value::Str(std::move(out));
}

Result<Value> FDefault(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"default_value", "boolean"}, "default"));
  const Value* d = Arg(a, 0, "default_value");
  const Value* boolean = Arg(a, 1, "boolean");
  if (v.IsUndefined() || (boolean && Truthy(*boolean) && !Truthy(v))) return d ? *d : Value::Str("");
  return v;
}

Result<Value> FReplace(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 3, {"old", "new", "count"}, "replace"));
  ASSIGN_OR_RETURN(Value from, RequireArg(a, 0, "old", "replace"));
  ASSIGN_OR_RETURN(Value to, RequireArg(a, 1, "new", "replace"));
  CallArgs m;
  m.args = {Value::Str(ToStr(from)), Value::Str(ToStr(to))};
  if (const Value* c = Arg(a, 2, "count"); c && !c->IsNone()) m.args.push_back(*c);
  bool unsafe;
  Value method = GetMethod(Value::Str(ToStr(v)), "replace", &unsafe);
  return in.Call(method, m);
}

Result<Value> FUpper(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "upper"));
  return Value::Str(PyUpper(ToStr(v)));
}

Result<Value> FLower(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "lower"));
  return Value::Str(PyLower(ToStr(v)));
}

// jinja2's title: upper-case the first character of each word, where words start after
// runs of whitespace, '-', '(', '{', '[' or '<'; the rest lower-cased.
Result<Value> FTitle(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "title"));
  std::u32string u = DecodeUtf8(ToStr(v));
  bool start = true;
  for (char32_t& c : u) {
    bool sep = IsPySpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      start = true;
      continue;
    }
    c = start ? ToUpperCp(c) : ToLowerCp(c);
    start = false;
  }
  return Value::Str(EncodeUtf8(u));
}

Result<Value> FCapitalize(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "capitalize"));
  std::u32string u = DecodeUtf8(ToStr(v));
  for (size_t k = 0; k < u.size(); ++k) u[k] = k == 0 ? ToUpperCp(u[k]) : ToLowerCp(u[k]);
  return Value::Str(EncodeUtf8(u));
}

Result<Value> FFirstLast(Value& v, CallArgs& a, bool first) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, first ? "first" : "last"));
  if (!first && v.IsUndefined()) return UndefinedError(v);
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  if (items.empty()) return Value::Undefined(first ? "No first item, sequence was empty." : "No last item, sequence was empty.");
  return first ? items.front() : items.back();
}
Result<Value> FFirst(Interpreter&, Value& v, CallArgs& a) { return FFirstLast(v, a, true); }
Result<Value> FLast(Interpreter&, Value& v, CallArgs& a) { return FFirstLast(v, a, false); }

Result<Value> FString(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "string"));
  return Value::Str(ToStr(v));
}

Result<Value> FSafe(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "safe"));
  return v.IsString() ? v : Value::Str(ToStr(v));
}

// Python float() on a string: optional whitespace, sign, digits with '_', inf/nan.
bool ParsePyFloat(const std::string& text, double* out) {
  std::string s = PyStrip(text, nullptr, true, true);
  std::string clean;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '_') {
      if (k == 0 || k + 1 >= s.size() || !isdigit(static_cast<unsigned char>(s[k - 1])) ||
          !isdigit(static_cast<unsigned char>(s[k + 1]))) return false;
      continue;
    }
    clean += s[k];
  }
  if (clean.empty()) return false;
  std::string low = PyLower(clean);
  size_t sign = (low[0] == '+' || low[0] == '-') ? 1 : 0;
  std::string body = low.substr(sign);
  if (body == "inf" || body == "infinity" || body == "nan") {
    double x = body == "nan" ? NAN : INFINITY;
    *out = low[0] == '-' ? -x : x;
    return true;
  }
  if (body.empty() || body.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtod(clean.c_str(), &end);
  return end && *end == '\0';
}

// Python int(str, base) for bases 2..36 (and 0 = by prefix).
bool ParsePyInt(const std::string& text, int base, int64_t* out) {
  std::string s = PyStrip(text, nullptr, true, true);
  size_t k = 0;
  bool neg = false;
  if (k < s.size() && (s[k] == '+' || s[k] == '-')) neg = s[k++] == '-';
  if (k + 1 < s.size() && s[k] == '0') {
    char p = static_cast<char>(s[k + 1] | 0x20);
    int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb && (base == 0 || base == pb)) {
      base = pb;
      k += 2;
      if (k < s.size() && s[k] == '_') ++k;
    }
  }
  if (base == 0) base = 10;
  if (k >= s.size()) return false;
  int64_t v = 0;
  bool prev_digit = false;
  for (; k < s.size(); ++k) {
    char c = s[k];
    if (c == '_' && prev_digit && k + 1 < s.size() && s[k + 1] != '_') {
      prev_digit = false;
      continue;
    }
    int d = (c >= '0' && c <= '9') ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? (c | 0x20) - 'a' + 10 : 99;
    if (d >= base) return false;
    if (v > (INT64_MAX - d) / base) return false;
    v = v * base + d;
    prev_digit = true;
  }
  *out = neg ? -v : v;
  return true;
}

Result<Value> FInt(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"default", "base"}, "int"));
  const Value* d = Arg(a, 0, "default");
  const Value* b = Arg(a, 1, "base");
  Value dflt = d ? *d : Value::Int(0);
  int base = b && b->IsIntLike() ? static_cast<int>(std::clamp<int64_t>(b->AsInt(), 0, 36)) : 10;
  if (v.IsIntLike()) return Value::Int(v.AsInt());
  if (v.kind == Kind::kFloat) {
    if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return dflt;
    return Value::Int(static_cast<int64_t>(v.f));
  }
  if (v.IsString()) {
    int64_t x;
    if (ParsePyInt(v.s, base, &x)) return Value::Int(x);
    double f;
    if (ParsePyFloat(v.s, &f) && std::isfinite(f) && std::fabs(f) < 9.2e18) return Value::Int(static_cast<int64_t>(f));
  }
  return dflt;
}

Result<Value> FFloat(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 1, {"default"}, "float"));
  const Value* d = Arg(a, 0, "default");
  if (v.IsNumber()) return Value::Float(v.AsDouble());
  double f;
  if (v.IsString() && ParsePyFloat(v.s, &f)) return Value::Float(f);
  return d ? *d : Value::Float(0.0);
}

Result<Value> FAbs(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "abs"));
  if (v.kind == Kind::kFloat) return Value::Float(std::fabs(v.f));
  if (v.IsIntLike()) {
    if (v.AsInt() == INT64_MIN) return InvalidArgument("integer overflow");
    return Value::Int(std::llabs(v.AsInt()));
  }
  return InvalidArgument("bad operand type for abs(): '" + TypeName(v) + "'");
}

Result<Value> FRound(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"precision", "method"}, "round"));
  const Value* p = Arg(a, 0, "precision");
  const Value* m = Arg(a, 1, "method");
  int64_t precision = p && p->IsIntLike() ? std::clamp<int64_t>(p->AsInt(), -300, 300) : 0;
  std::string method = m ? ToStr(*m) : "common";
  if (method != "common" && method != "ceil" && method != "floor") {
    return InvalidArgument("method must be common, ceil or floor");
  }
  if (!v.IsNumber()) return InvalidArgument("type " + TypeName(v) + " doesn't define __round__ method");
  if (method == "common" && v.IsIntLike()) return Value::Int(v.AsInt());
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.AsDouble() * scale;
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
  return Value::Float(r / scale);
}

Result<Value> FUnique(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"case_sensitive", "attribute"}, "unique"));
  const Value* cs = Arg(a, 0, "case_sensitive");
  const Value* attribute = Arg(a, 1, "attribute");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::vector<Value> out, seen;
  for (const Value& item : items) {
    Value key = item;
    if (attribute && !attribute->IsNone()) {
      ASSIGN_OR_RETURN(key, AttrPath(in, item, ToStr(*attribute)));
    }
    key = SortKey(key, cs && Truthy(*cs));
    bool dup = false;
    for (const Value& s : seen) {
      if (Equals(s, key)) { dup = true; break; }
    }
    if (!dup) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::List(std::move(out));
}

Result<Value> FReverse(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "reverse"));
  if (v.IsString()) {
    std::u32string u = DecodeUtf8(v.s);
    std::reverse(u.begin(), u.end());
    return Value::Str(EncodeUtf8(u));
  }
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

Result<Value> FSort(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 3, {"reverse", "case_sensitive", "attribute"}, "sort"));
  const Value* rev = Arg(a, 0, "reverse");
  const Value* cs = Arg(a, 1, "case_sensitive");
  const Value* attribute = Arg(a, 2, "attribute");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) {
    Value key = item;
    if (attribute && !attribute->IsNone()) {
      ASSIGN_OR_RETURN(key, AttrPath(in, item, ToStr(*attribute)));
    }
    keyed.emplace_back(SortKey(key, cs && Truthy(*cs)), item);
  }
  RETURN_IF_ERROR(SortValues(keyed, rev && Truthy(*rev)));
  std::vector<Value> out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return Value::List(std::move(out));
}

Result<Value> FDictsort(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 3, {"case_sensitive", "by", "reverse"}, "dictsort"));
  const Value* cs = Arg(a, 0, "case_sensitive");
  const Value* by = Arg(a, 1, "by");
  const Value* rev = Arg(a, 2, "reverse");
  if (!v.IsDict()) return InvalidArgument("dictsort expects a mapping");
  int pos = 0;
  if (by) {
    std::string b = ToStr(*by);
    if (b == "value") pos = 1;
    else if (b != "key") return InvalidArgument("You can only sort by either \"key\" or \"value\"");
  }
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, val] : v.dict->entries) {
    keyed.emplace_back(SortKey(pos ? val : k, cs && Truthy(*cs)), Value::List({k, val}, true));
  }
  RETURN_IF_ERROR(SortValues(keyed, rev && Truthy(*rev)));
  std::vector<Value> out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return Value::List(std::move(out));
}

Result<Value> FEscape(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "escape"));
  std::string out;
  for (char c : ToStr(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::Str(std::move(out));
}

Result<Value> FIndent(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 3, {"width", "first", "blank"}, "indent"));
  const Value* w = Arg(a, 0, "width");
  const Value* first = Arg(a, 1, "first");
  const Value* blank = Arg(a, 2, "blank");
  std::string ind;
  if (!w) ind = "    ";
  else if (w->IsString()) ind = w->s;
  else if (w->IsIntLike()) ind = std::string(static_cast<size_t>(std::clamp<int64_t>(w->AsInt(), 0, 1024)), ' ');
  else return InvalidArgument("indent width must be an int or a str");
  CallArgs none;
  bool unsafe;
  // jinja2 appends "\n" so that splitlines() keeps a trailing empty line.
  ASSIGN_OR_RETURN(Value lines_v, in.Call(GetMethod(Value::Str(ToStr(v) + "\n"), "splitlines", &unsafe), none));
  const auto& lines = lines_v.list->items;
  std::string out;
  if (blank && Truthy(*blank)) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) out += "\n" + ind;
      out += lines[k].s;
    }
  } else {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) out += "\n" + (lines[k].s.empty() ? "" : ind);
      out += lines[k].s;
    }
  }
  if (first && Truthy(*first)) out = ind + out;
  RETURN_IF_ERROR(in.CheckString(out));
  return Value::Str(std::move(out));
}

Result<Value> FWordcount(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 0, {}, "wordcount"));
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : DecodeUtf8(ToStr(v))) {
    bool w = IsAlphaCp(c) || IsDigitCp(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::Int(n);
}

Result<Value> FBatch(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"linecount", "fill_with"}, "batch"));
  ASSIGN_OR_RETURN(Value count, RequireArg(a, 0, "linecount", "batch"));
  const Value* fill = Arg(a, 1, "fill_with");
  if (!count.IsIntLike() || count.AsInt() <= 0) return InvalidArgument("batch size must be a positive integer");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  size_t n = static_cast<size_t>(count.AsInt());
  std::vector<Value> out, cur;
  for (Value& item : items) {
    cur.push_back(std::move(item));
    if (cur.size() == n) out.push_back(Value::List(std::exchange(cur, {})));
  }
  if (!cur.empty()) {
    if (fill && !fill->IsNone()) while (cur.size() < n) cur.push_back(*fill);
    out.push_back(Value::List(std::move(cur)));
  }
  return Value::List(std::move(out));
}

Result<Value> FMinMax(Interpreter& in, Value& v, CallArgs& a, bool max) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"case_sensitive", "attribute"}, max ? "max" : "min"));
  const Value* cs = Arg(a, 0, "case_sensitive");
  const Value* attribute = Arg(a, 1, "attribute");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  const Value* best = nullptr;
  Value best_key;
  for (const Value& item : items) {
    Value key = item;
    if (attribute && !attribute->IsNone()) {
      ASSIGN_OR_RETURN(key, AttrPath(in, item, ToStr(*attribute)));
    }
    key = SortKey(key, cs && Truthy(*cs));
    if (best) {
      ASSIGN_OR_RETURN(bool better, max ? Less(best_key, key) : Less(key, best_key));
      if (!better) continue;
    }
    best = &item;
    best_key = key;
  }
  return *best;
}
Result<Value> FMax(Interpreter& in, Value& v, CallArgs& a) { return FMinMax(in, v, a, true); }
Result<Value> FMin(Interpreter& in, Value& v, CallArgs& a) { return FMinMax(in, v, a, false); }

Result<Value> FSum(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 2, {"attribute", "start"}, "sum"));
  const Value* attribute = Arg(a, 0, "attribute");
  const Value* start = Arg(a, 1, "start");
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
  Value total = start ? *start : Value::Int(0);
  for (const Value& item : items) {
    Value x = item;
    if (attribute && !attribute->IsNone()) {
      ASSIGN_OR_RETURN(x, AttrPath(in, item, ToStr(*attribute)));
    }
    if (!total.IsNumber() || !x.IsNumber()) {
      return InvalidArgument("unsupported operand type(s) for +: '" + TypeName(total) + "' and '" + TypeName(x) + "'");
    }
    int64_t r;
    if (total.IsIntLike() && x.IsIntLike() && !__builtin_add_overflow(total.AsInt(), x.AsInt(), &r)) total = Value::Int(r);
    else total = Value::Float(total.AsDouble() + x.AsDouble());
  }
  return total;
}

Result<Value> FFormat(Interpreter&, Value& v, CallArgs& a) {
  if (!a.kwargs.empty()) return InvalidArgument("format filter with keyword arguments is not supported");
  std::string fmt = ToStr(v);
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') { out += fmt[k]; continue; }
    if (++k >= fmt.size()) return InvalidArgument("incomplete format");
    if (fmt[k] == '%') { out += '%'; continue; }
    if (next >= a.args.size()) return InvalidArgument("not enough arguments for format string");
    const Value& x = a.args[next++];
    if (fmt[k] == 's') out += ToStr(x);
    else if (fmt[k] == 'r') out += Repr(x);
    else if ((fmt[k] == 'd' || fmt[k] == 'i') && x.IsNumber()) out += std::to_string(static_cast<int64_t>(x.AsDouble()));
    else return InvalidArgument(std::string("unsupported format character '") + fmt[k] + "'");
  }
  return Value::Str(std::move(out));
}

Result<Value> FAttr(Interpreter& in, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 1, {"name"}, "attr"));
  ASSIGN_OR_RETURN(Value name, RequireArg(a, 0, "name", "attr"));
  if (v.IsDict()) {  // attr() looks up attributes only, never dict items
    bool unsafe;
    Value m = GetMethod(v, ToStr(name), &unsafe);
    return m;
  }
  return in.GetAttr(v, ToStr(name));
}

Result<Value> FCenter(Interpreter&, Value& v, CallArgs& a) {
  RETURN_IF_ERROR(CheckArgs(a, 1, {"width"}, "center"));
  const Value* w = Arg(a, 0, "width");
  int64_t width = w && w->IsIntLike() ? std::min<int64_t>(w->AsInt(), 1 << 20) : 80;
  std::u32string u = DecodeUtf8(ToStr(v));
  int64_t pad = width - static_cast<int64_t>(u.size());
  if (pad <= 0) return Value::Str(ToStr(v));
  // CPython: left = pad / 2 + (pad & width & 1).
  int64_t left = pad / 2 + (pad & width & 1);
  return Value::Str(std::string(static_cast<size_t>(left), ' ') + ToStr(v) +
                    std::string(static_cast<size_t>(pad - left), ' '));
}

const std::unordered_map<std::string, FilterFn>& Filters() {
  static const auto* kFilters = new std::unordered_map<std::string, FilterFn>{
      {"tojson", FTojson}, {"trim", FTrim}, {"length", FLength}, {"count", FLength},
      {"items", FItems}, {"list", FList}, {"select", FSelect}, {"reject", FReject},
      {"selectattr", FSelectattr}, {"rejectattr", FRejectattr}, {"map", FMap}, {"join", FJoin},
      {"default", FDefault}, {"d", FDefault}, {"replace", FReplace}, {"upper", FUpper},
      {"lower", FLower}, {"title", FTitle}, {"capitalize", FCapitalize}, {"first", FFirst},
      {"last", FLast}, {"string", FString}, {"safe", FSafe}, {"int", FInt}, {"float", FFloat},
      {"abs", FAbs}, {"round", FRound}, {"unique", FUnique}, {"reverse", FReverse},
      {"sort", FSort}, {"dictsort", FDictsort}, {"e", FEscape}, {"escape", FEscape},
      {"forceescape", FEscape}, {"indent", FIndent}, {"wordcount", FWordcount},
      {"batch", FBatch}, {"max", FMax}, {"min", FMin}, {"sum", FSum}, {"format", FFormat},
      {"attr", FAttr}, {"center", FCenter},
  };
  return *kFilters;
}

}  // namespace

Result<Value> CallFilter(Interpreter& in, const std::string& name, Value v, CallArgs& args) {
  auto it = Filters().find(name);
  if (it == Filters().end()) return InvalidArgument("No filter named '" + name + "'.");
  return it->second(in, v, args);
}

bool IsKnownFilter(const std::string& name) { return Filters().count(name) > 0; }

}  // namespace tide::jinja
