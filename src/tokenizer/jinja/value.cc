#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/ustring.h"

namespace tide::jinja {

Value Value::List(std::vector<Value> items, bool is_tuple) {
  auto d = std::make_shared<ListData>();
  int depth = 0;
  for (const Value& it : items) {
    if (it.list) depth = std::max(depth, it.list->depth);
    if (it.dict) depth = std::max(depth, it.dict->depth);
    if (HasNamespace(it)) d->has_namespace = true;
  }
  d->depth = depth + 1;
  d->items = std::move(items);
  d->is_tuple = is_tuple;
  Value v;
  v.kind = Kind::kList;
  v.list = std::move(d);
  return v;
}

Value Value::Dict(std::shared_ptr<DictData> d) {
  Value v;
  v.kind = Kind::kDict;
  v.dict = std::move(d);
  return v;
}

Value Value::Namespace(std::shared_ptr<DictData> d) {
  Value v;
  v.kind = Kind::kNamespace;
  v.dict = std::move(d);
  return v;
}

Value Value::Fn(std::shared_ptr<Callable> fn) {
  Value v;
  v.kind = Kind::kCallable;
  v.fn = std::move(fn);
  return v;
}

const Value* DictData::FindStr(std::string_view key) const {
  auto it = str_index.find(std::string(key));
  return it == str_index.end() ? nullptr : &entries[it->second].second;
}

const Value* DictData::Find(const Value& key) const {
  if (key.IsString()) return FindStr(key.s);
  for (const auto& [k, v] : entries) {
    if (!k.IsString() && Equals(k, key)) return &v;
  }
  return nullptr;
}

void DictData::Set(Value key, Value value) {
  int child = std::max(value.list ? value.list->depth : 0, value.dict ? value.dict->depth : 0);
  depth = std::max(depth, child + 1);
  if (HasNamespace(value)) has_namespace = true;
  if (key.IsString()) {
    auto it = str_index.find(key.s);
    if (it != str_index.end()) {
      entries[it->second].second = std::move(value);
      return;
    }
    str_index.emplace(key.s, entries.size());
  } else {
    for (auto& [k, v] : entries) {
      if (!k.IsString() && Equals(k, key)) {
        v = std::move(value);
        return;
      }
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return v.b;
    case Kind::kInt: return v.i != 0;
    case Kind::kFloat: return v.f != 0.0;
    case Kind::kString: return !v.s.empty();
    case Kind::kList: return !v.list->items.empty();
    case Kind::kDict: return !v.dict->entries.empty();
    case Kind::kNamespace:
    case Kind::kCallable: return true;
  }
  return false;
}

bool Equals(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return a.AsDouble() == b.AsDouble();
    return a.AsInt() == b.AsInt();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return a.s == b.s;
    case Kind::kList: {
      if (a.list == b.list) return true;
      if (a.list->is_tuple != b.list->is_tuple) return false;
      const auto& x = a.list->items;
      const auto& y = b.list->items;
      if (x.size() != y.size()) return false;
      for (size_t k = 0; k < x.size(); ++k) {
        if (!Equals(x[k], y[k])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (a.dict == b.dict) return true;
      if (a.dict->entries.size() != b.dict->entries.size()) return false;
      for (const auto& [k, v] : a.dict->entries) {
        const Value* other = b.dict->Find(k);
        if (!other || !Equals(v, *other)) return false;
      }
      return true;
    }
    case Kind::kNamespace: return a.dict == b.dict;
    case Kind::kCallable: return a.fn == b.fn;
    default: return false;
  }
}

Result<bool> Less(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return a.AsDouble() < b.AsDouble();
    return a.AsInt() < b.AsInt();
  }
  if (a.IsString() && b.IsString()) return a.s < b.s;  // UTF-8 byte order = code point order
  if (a.IsList() && b.IsList() && a.list->is_tuple == b.list->is_tuple) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (Equals(x[k], y[k])) continue;
      return Less(x[k], y[k]);
    }
    return x.size() < y.size();
  }
  if (a.IsUndefined()) return InvalidArgument(a.s);
  if (b.IsUndefined()) return InvalidArgument(b.s);
  return InvalidArgument("'<' not supported between instances of '" + TypeName(a) + "' and '" +
                         TypeName(b) + "'");
}

std::string TypeName(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return v.list->is_tuple ? "tuple" : "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
  }
  return "object";
}

std::string FormatFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then laid out the way Python's repr(float) does:
  // positional for exponents in [-4, 16), scientific otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  std::string digits = sci.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  int exp = std::atoi(sci.c_str() + e_pos + 1);
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  } else if (exp < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
    out += digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
  }
  return out;
}

static std::string ReprString(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : DecodeUtf8(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!IsPrintableCp(c)) {
      char b[16];
      unsigned u = static_cast<unsigned>(c);
      if (u <= 0xFF) std::snprintf(b, sizeof(b), "\\x%02x", u);
      else if (u <= 0xFFFF) std::snprintf(b, sizeof(b), "\\u%04x", u);
      else std::snprintf(b, sizeof(b), "\\U%08x", u);
      out += b;
    } else {
      AppendUtf8(out, c);
    }
  }
  out += quote;
  return out;
}

std::string Repr(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kString: return ReprString(v.s);
    case Kind::kList: {
      const auto& items = v.list->items;
      std::string out = v.list->is_tuple ? "(" : "[";
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += ", ";
        out += Repr(items[k]);
      }
      if (v.list->is_tuple && items.size() == 1) out += ",";
      out += v.list->is_tuple ? ")" : "]";
      return out;
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      std::string out = v.kind == Kind::kNamespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, val] : v.dict->entries) {
        if (!first) out += ", ";
        first = false;
        out += Repr(k) + ": " + Repr(val);
      }
      out += v.kind == Kind::kNamespace ? "}>" : "}";
      return out;
    }
    case Kind::kCallable: return "<function " + v.fn->name + ">";
    default: return ToStr(v);
  }
}

std::string ToStr(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return v.b ? "True" : "False";
    case Kind::kInt: return std::to_string(v.i);
    case Kind::kFloat: return FormatFloat(v.f);
    case Kind::kString: return v.s;
    default: return Repr(v);
  }
}

static void JsonString(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char byte = static_cast<unsigned char>(s[i]);
    if (byte >= 0x80 && !ensure_ascii) {
      out += s[i++];  // non-ASCII UTF-8 passes through untouched
      continue;
    }
    char32_t c = NextCodePoint(s, &i);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    char b[16];
    if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
      if (c >= 0x10000) {
        char32_t v = c - 0x10000;
        std::snprintf(b, sizeof(b), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                      static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      } else {
        std::snprintf(b, sizeof(b), "\\u%04x", static_cast<unsigned>(c));
      }
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

static Status JsonDump(std::string& out, const Value& v, const JsonDumpOptions& opt, int level) {
  switch (v.kind) {
    case Kind::kNone: out += "null"; return OkStatus();
    case Kind::kBool: out += v.b ? "true" : "false"; return OkStatus();
    case Kind::kInt: out += std::to_string(v.i); return OkStatus();
    case Kind::kFloat:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
      else out += FormatFloat(v.f);
      return OkStatus();
    case Kind::kString: JsonString(out, v.s, opt.ensure_ascii); return OkStatus();
    default: break;
  }
  std::string newline;
  if (opt.has_indent) {
    newline = "\n";
    for (int k = 0; k <= level; ++k) newline += opt.indent;
  }
  auto close_line = [&]() {
    if (!opt.has_indent) return;
    out += '\n';
    for (int k = 0; k < level; ++k) out += opt.indent;
  };
  if (v.kind == Kind::kList) {
    const auto& items = v.list->items;
    if (items.empty()) { out += "[]"; return OkStatus(); }
    out += '[';
    for (size_t k = 0; k < items.size(); ++k) {
      if (k) out += opt.item_sep;
      out += newline;
      RETURN_IF_ERROR(JsonDump(out, items[k], opt, level + 1));
    }
    close_line();
    out += ']';
    return OkStatus();
  }
  if (v.kind == Kind::kDict) {
    const auto& entries = v.dict->entries;
    if (entries.empty()) { out += "{}"; return OkStatus(); }
    // Keys become strings first (json.dumps accepts str, int, float, bool, None keys).
    std::vector<std::pair<std::string, const Value*>> items;
    for (const auto& [k, val] : entries) {
      std::string key;
      switch (k.kind) {
        case Kind::kString: key = k.s; break;
        case Kind::kNone: key = "null"; break;
        case Kind::kBool: key = k.b ? "true" : "false"; break;
        case Kind::kInt: key = std::to_string(k.i); break;
        case Kind::kFloat: {
          std::string tmp;
          RETURN_IF_ERROR(JsonDump(tmp, k, opt, level));
          key = tmp;
          break;
        }
        default:
          return InvalidArgument("keys must be str, int, float, bool or None, not " + TypeName(k));
      }
      items.emplace_back(std::move(key), &val);
    }
    if (opt.sort_keys) {
      std::stable_sort(items.begin(), items.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
    }
    out += '{';
    for (size_t k = 0; k < items.size(); ++k) {
      if (k) out += opt.item_sep;
      out += newline;
      JsonString(out, items[k].first, opt.ensure_ascii);
      out += opt.key_sep;
      RETURN_IF_ERROR(JsonDump(out, *items[k].second, opt, level + 1));
    }
    close_line();
    out += '}';
    return OkStatus();
  }
  return InvalidArgument("Object of type " + TypeName(v) + " is not JSON serializable");
}

Result<std::string> ToJson(const Value& v, const JsonDumpOptions& opt) {
  std::string out;
  RETURN_IF_ERROR(JsonDump(out, v, opt, 0));
  return out;
}

template <typename J>
static Result<Value> FromJsonImpl(const J& j, int depth) {
  if (depth > kMaxValueDepth) return InvalidArgument("context nested too deeply");
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::None();
    case nlohmann::json::value_t::boolean: return Value::Bool(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::Int(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value::Float(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::Str(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        ASSIGN_OR_RETURN(Value v, FromJsonImpl(e, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<DictData>();
      for (auto it = j.begin(); it != j.end(); ++it) {
        ASSIGN_OR_RETURN(Value v, FromJsonImpl(it.value(), depth + 1));
        d->Set(Value::Str(it.key()), std::move(v));
      }
      return Value::Dict(std::move(d));
    }
    default: return InvalidArgument("unsupported JSON value in template context");
  }
}

Result<Value> FromJson(const nlohmann::ordered_json& j, int depth) { return FromJsonImpl(j, depth); }
Result<Value> FromJson(const nlohmann::json& j, int depth) { return FromJsonImpl(j, depth); }

}  // namespace tide::jinja
