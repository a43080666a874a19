// UTF-8 helpers that give strings Python's str semantics: indexing, len() and slicing
// count code points, and whitespace / case follow Python's Unicode rules.
//
// Bytes that are not valid UTF-8 (possible only in a template's own text) decode to
// U+DC80..U+DCFF and encode back to the same byte, like Python's surrogateescape, so
// nothing is lost or invented.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tide::jinja {

std::u32string DecodeUtf8(std::string_view s);
// Decodes the code point starting at s[*pos] and advances *pos past it (same rules as
// DecodeUtf8). REQUIRES: *pos < s.size().
char32_t NextCodePoint(std::string_view s, size_t* pos);
// Start of the code point that ends at s[end - 1]. REQUIRES: end > 0.
size_t PrevCodePointStart(std::string_view s, size_t end);
std::string EncodeUtf8(std::u32string_view s);
void AppendUtf8(std::string& out, char32_t c);
size_t CountCodePoints(std::string_view s);
bool IsAscii(std::string_view s);

// str.isspace() for one code point (also what re's \s and str.split() use).
bool IsPySpace(char32_t c);
char32_t ToUpperCp(char32_t c);
char32_t ToLowerCp(char32_t c);
bool IsAlphaCp(char32_t c);
bool IsDigitCp(char32_t c);
// str.isprintable() for one code point (what repr() leaves unescaped).
bool IsPrintableCp(char32_t c);

std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
// str.strip/lstrip/rstrip; `chars` null = whitespace.
std::string PyStrip(std::string_view s, const std::string* chars, bool left, bool right);

}  // namespace tide::jinja
