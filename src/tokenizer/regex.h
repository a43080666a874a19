// A compiled PCRE2 pattern (UTF + UCP, JIT when available), the regex engine of the
// pre-tokenizers and of Replace/Split patterns. Immutable after Compile, so one Regex may
// be shared by threads; each FindAll call uses its own match data.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "tokenizer/pipeline.h"

namespace tide::tok {

class Regex {
 public:
  // Errors: kInvalidArgument with PCRE2's message and offset for a bad pattern.
  static Result<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  // Escapes a literal string so that it matches itself.
  static std::string Quote(std::string_view literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls fn(start, end) for each non-empty, non-overlapping match, left to right.
  // REQUIRES: text is valid UTF-8 (checked by the caller once per input).
  void FindAll(std::string_view text, FunctionRef<void(size_t, size_t)> fn) const;

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace tide::tok
