#include "tokenizer/jinja/lexer.h"

#include <cstring>

#include "tokenizer/jinja/ustring.h"

namespace tide::jinja {
namespace {

Status LexError(int line, const std::string& msg) {
  return InvalidArgument("chat template line " + std::to_string(line) + ": " + msg);
}

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsTagSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Length in bytes of the Python-whitespace code point at s[pos], or 0.
size_t PySpaceAt(std::string_view s, size_t pos) {
  unsigned char c = static_cast<unsigned char>(s[pos]);
  if (c < 0x80) return IsPySpace(c) ? 1 : 0;
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  if (pos + n > s.size()) return 0;
  std::u32string u = DecodeUtf8(s.substr(pos, n));
  return (u.size() == 1 && IsPySpace(u[0])) ? n : 0;
}

// Python's str.rstrip() on UTF-8 text.
void RStripPy(std::string& s) {
  std::u32string u = DecodeUtf8(s);
  size_t e = u.size();
  while (e > 0 && IsPySpace(u[e - 1])) --e;
  if (e != u.size()) s = EncodeUtf8(std::u32string_view(u).substr(0, e));
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  Result<std::vector<Token>> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = FindTagStart(pos);
      std::string text = src_.substr(pos, tag - pos);
      int text_line = line_;
      bool line_starting = pos == 0 || src_[pos - 1] == '\n';
      if (tag == src_.size()) {
        Emit(Tok::kText, std::move(text), text_line);
        break;
      }
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      if (sign == '-') {
        RStripPy(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop the spaces/tabs that alone precede the tag on its line.
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) &&
            text.find_first_not_of(" \t", l_pos) == std::string::npos) {
          text.resize(l_pos);
        }
      }
      Advance(pos, tag);
      Emit(Tok::kText, std::move(text), text_line);
      size_t body = tag + 2 + (sign ? 1 : 0);
      Advance(tag, body);
      pos = body;
      if (kind == '#') {
        RETURN_IF_ERROR(Comment(pos));
      } else if (kind == '%' && IsRaw(pos)) {
        RETURN_IF_ERROR(Raw(pos));
      } else {
        RETURN_IF_ERROR(Tag(pos, kind == '%'));
      }
    }
    Emit(Tok::kEof, "", line_);
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t pos) const {
    while (true) {
      size_t i = src_.find('{', pos);
      if (i == std::string::npos || i + 1 >= src_.size()) return src_.size();
      char c = src_[i + 1];
      if (c == '{' || c == '%' || c == '#') return i;
      pos = i + 1;
    }
  }

  void Advance(size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) {
      if (src_[k] == '\n') ++line_;
    }
  }

  void Emit(Tok type, std::string text, int line) {
    if (type == Tok::kText && text.empty()) return;
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line;
    tokens_.push_back(std::move(t));
  }

  // After a closing delimiter at [pos, end): `-` eats all following whitespace,
  // trim_blocks eats one newline (blocks and comments only), `+` keeps everything.
  size_t AfterClose(size_t end, char sign, bool trim_newline) {
    size_t p = end;
    if (sign == '-') {
      while (p < src_.size()) {
        size_t n = PySpaceAt(src_, p);
        if (n == 0) break;
        p += n;
      }
    } else if (sign != '+' && trim_newline && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    Advance(end - 2 - (sign ? 1 : 0), p);
    return p;
  }

  Status Comment(size_t& pos) {
    size_t end = src_.find("#}", pos);
    if (end == std::string::npos) return LexError(line_, "missing end of comment tag");
    char sign = (end > pos && (src_[end - 1] == '-' || src_[end - 1] == '+')) ? src_[end - 1] : '\0';
    Advance(pos, end - (sign ? 1 : 0));
    pos = AfterClose(end + 2, sign, /*trim_newline=*/true);
    return OkStatus();
  }

  // True when the block tag starting at `pos` (after "{%" and its sign) is "raw".
  bool IsRaw(size_t pos) const {
    size_t p = pos;
    while (p < src_.size() && IsTagSpace(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && IsTagSpace(src_[p])) ++p;
    if (p < src_.size() && src_[p] == '-') ++p;
    return src_.compare(p, 2, "%}") == 0;
  }

  Status Raw(size_t& pos) {
    int start_line = line_;
    size_t p = src_.find("%}", pos);
    char open_sign = src_[p - 1] == '-' ? '-' : '\0';
    // The raw opening tag never trims a newline; only `-%}` strips.
    size_t body = AfterClose(p + 2, open_sign, /*trim_newline=*/false);
    Advance(pos, p + 2 - (open_sign ? 1 : 0));
    // Find "{%" [-+] ws* "endraw" ws* [-+]? "%}".
    size_t search = body;
    while (true) {
      size_t open = src_.find("{%", search);
      if (open == std::string::npos) return LexError(start_line, "missing end of raw directive");
      size_t q = open + 2;
      char sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      while (q < src_.size() && IsTagSpace(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) { search = open + 2; continue; }
      q += 6;
      while (q < src_.size() && IsTagSpace(src_[q])) ++q;
      char close_sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) close_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) { search = open + 2; continue; }
      std::string text = src_.substr(body, open - body);
      if (sign == '-') {
        RStripPy(text);
      } else if (sign != '+') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || src_[body - 1] == '\n') &&
            text.find_first_not_of(" \t", l_pos) == std::string::npos) {
          text.resize(l_pos);
        }
      }
      Emit(Tok::kText, std::move(text), line_);
      Advance(body, q);
      pos = AfterClose(q + 2, close_sign, /*trim_newline=*/true);
      return OkStatus();
    }
  }

  Status Tag(size_t& pos, bool block) {
    int open_line = line_;
    Emit(block ? Tok::kBlockBegin : Tok::kVarBegin, "", line_);
    std::string brackets;  // open ( [ { awaiting their closers
    while (true) {
      while (pos < src_.size() && IsTagSpace(src_[pos])) {
        if (src_[pos] == '\n') ++line_;
        ++pos;
      }
      if (pos >= src_.size()) {
        return LexError(open_line, block ? "missing end of block tag" : "missing end of variable tag");
      }
      // A closing delimiter only counts while no bracket is open (as in jinja2).
      if (brackets.empty()) {
        char sign = (src_[pos] == '-' || (block && src_[pos] == '+')) ? src_[pos] : '\0';
        size_t d = pos + (sign ? 1 : 0);
        if (src_.compare(d, 2, block ? "%}" : "}}") == 0) {
          Emit(block ? Tok::kBlockEnd : Tok::kVarEnd, "", line_);
          pos = AfterClose(d + 2, sign, /*trim_newline=*/block);
          return OkStatus();
        }
      }
      RETURN_IF_ERROR(ExprToken(pos, brackets));
    }
  }

  Status ExprToken(size_t& pos, std::string& brackets) {
    char c = src_[pos];
    if (IsNameStart(c)) {
      size_t e = pos;
      while (e < src_.size() && IsNameChar(src_[e])) ++e;
      Emit(Tok::kName, src_.substr(pos, e - pos), line_);
      pos = e;
      return OkStatus();
    }
    if (c == '\'' || c == '"') return String(pos);
    if (IsDigit(c)) return Number(pos);
    static const char* kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kOps2) {
      if (src_.compare(pos, 2, op) == 0) {
        Emit(Tok::kOp, op, line_);
        pos += 2;
        return OkStatus();
      }
    }
    if (std::strchr("+-*/%~()[]{}.,:|=<>;", c) == nullptr) {
      return LexError(line_, std::string("unexpected char '") + c + "'");
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) return LexError(line_, std::string("unexpected '") + c + "'");
      if (brackets.back() != c) {
        return LexError(line_, std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
      }
      brackets.pop_back();
    }
    Emit(Tok::kOp, std::string(1, c), line_);
    ++pos;
    return OkStatus();
  }

  Status String(size_t& pos) {
    char quote = src_[pos];
    int start_line = line_;
    std::string out;
    size_t p = pos + 1;
    while (true) {
      if (p >= src_.size()) return LexError(start_line, "unterminated string");
      char c = src_[p];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) return LexError(start_line, "unterminated string");
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case '\n': ++line_; break;  // line continuation
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < n; ++k, ++p) {
            char h = p < src_.size() ? src_[p] : '\0';
            int d = IsDigit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                  : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (d < 0) return LexError(line_, std::string("truncated \\") + e + " escape in string");
            cp = cp * 16 + static_cast<char32_t>(d);
          }
          if (cp > 0x10FFFF) return LexError(line_, "illegal Unicode character in string");
          AppendUtf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k, ++p) {
              cp = cp * 8 + static_cast<char32_t>(src_[p] - '0');
            }
            AppendUtf8(out, cp);
          } else {
            out += '\\';  // unknown escapes stay as written, as in Python
            out += e;
            if (e == '\n') ++line_;
          }
      }
    }
    Emit(Tok::kString, std::move(out), start_line);
    pos = p + 1;
    return OkStatus();
  }

  // Digits with optional '_' separators; returns the end.
  size_t Digits(size_t p) const {
    while (p < src_.size() && (IsDigit(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && IsDigit(src_[p + 1]) && p > 0 && IsDigit(src_[p - 1])))) ++p;
    return p;
  }

  Status Number(size_t& pos) {
    bool after_dot = pos > 0 && src_[pos - 1] == '.';
    char c1 = pos + 1 < src_.size() ? static_cast<char>(src_[pos + 1] | 0x20) : '\0';
    if (src_[pos] == '0' && (c1 == 'x' || c1 == 'o' || c1 == 'b')) {
      int base = c1 == 'x' ? 16 : c1 == 'o' ? 8 : 2;
      size_t p = pos + 2;
      int64_t v = 0;
      size_t start = p;
      for (; p < src_.size(); ++p) {
        char h = src_[p];
        if (h == '_') continue;
        int d = IsDigit(h) ? h - '0' : ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') ? (h | 0x20) - 'a' + 10 : 99;
        if (d >= base) break;
        if (v > (INT64_MAX - d) / base) return LexError(line_, "integer literal too large");
        v = v * base + d;
      }
      if (p == start) return LexError(line_, "invalid integer literal");
      Token t;
      t.type = Tok::kInt;
      t.int_value = v;
      t.line = line_;
      tokens_.push_back(t);
      pos = p;
      return OkStatus();
    }
    size_t p = Digits(pos);
    bool is_float = false;
    if (!after_dot) {
      size_t q = p;
      if (q + 1 < src_.size() && src_[q] == '.' && IsDigit(src_[q + 1])) {
        q = Digits(q + 1);
        is_float = true;
      }
      if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t r = q + 1;
        if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
        if (r < src_.size() && IsDigit(src_[r])) {
          q = Digits(r);
          is_float = true;
        }
      }
      if (is_float) p = q;
    }
    std::string lit;
    for (size_t k = pos; k < p; ++k) {
      if (src_[k] != '_') lit += src_[k];
    }
    Token t;
    t.line = line_;
    if (is_float) {
      t.type = Tok::kFloat;
      t.float_value = std::strtod(lit.c_str(), nullptr);
    } else {
      t.type = Tok::kInt;
      int64_t v = 0;
      for (char d : lit) {
        if (v > (INT64_MAX - (d - '0')) / 10) return LexError(line_, "integer literal too large");
        v = v * 10 + (d - '0');
      }
      t.int_value = v;
    }
    tokens_.push_back(t);
    pos = p;
    return OkStatus();
  }

  std::string src_;
  int line_ = 1;
  std::vector<Token> tokens_;
};

// jinja2 splits the source on \r\n, \r and \n, drops one trailing empty line
// (keep_trailing_newline=False) and joins with "\n".
std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    char c = source[i];
    if (c == '\r') {
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      out += '\n';
    } else {
      out += c;
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Result<std::vector<Token>> Tokenize(std::string_view source) {
  Lexer lexer(NormalizeNewlines(source));
  return lexer.Run();
}

}  // namespace tide::jinja
