// Template text -> tokens, with jinja2's whitespace rules applied to the text tokens:
// newlines normalised to "\n" and one trailing newline dropped (keep_trailing_newline
// is off); `{%-`/`-%}` (and the `{{`, `{#` forms) strip all whitespace on that side;
// trim_blocks drops the first newline after a block or comment tag; lstrip_blocks drops
// spaces and tabs between the start of a line and a block or comment tag (`{%+`
// keeps them). `{% raw %}` bodies come out as one text token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tide::jinja {

enum class Tok {
  kText,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // text = the unescaped value
  kInt,
  kFloat,
  kOp,          // text = the operator: + - * / // % ** ~ ( ) [ ] { } . , : | = == != < <= > >=
  kEof,
};

struct Token {
  Tok type = Tok::kEof;
  std::string text;
  int line = 1;
  int64_t int_value = 0;
  double float_value = 0;
};

// Errors: kInvalidArgument "chat template line N: ..." for unterminated tags, comments,
// strings and raw blocks, and characters that start no token.
Result<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace tide::jinja
