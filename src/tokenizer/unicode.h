// UTF-8 helpers shared by the tokenizer pipeline: code-point iteration, validation,
// lossy decoding with Unicode's "maximal subpart" rule (what Rust's
// String::from_utf8_lossy does, so byte-level decodes match Hugging Face), and the GPT-2
// byte-level alphabet (every byte gets a printable code point).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tide::tok {

// Length of the UTF-8 sequence introduced by lead byte `c` (1 for stray bytes), so
// iteration never stalls on invalid input.
inline size_t Utf8SeqLen(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// Decodes the code point at s[*i] and advances *i. REQUIRES: s is valid UTF-8.
char32_t NextCodePoint(std::string_view s, size_t* i);
void AppendUtf8(char32_t cp, std::string* out);
bool IsValidUtf8(std::string_view s);
// Invalid sequences become U+FFFD, one per maximal subpart.
std::string Utf8Lossy(std::string_view bytes);
// True when s ends with U+FFFD (EF BF BD).
bool EndsWithReplacementChar(std::string_view s);

// GPT-2's bytes_to_unicode: bytes that are printable Latin-1 map to themselves, the
// other 68 map to U+0100.. in byte order.
class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& Get();
  // UTF-8 text of the code point standing for byte b.
  const std::string& Encode(uint8_t b) const { return enc_[b]; }
  // Maps a byte-level string back to bytes; false if a code point is not in the alphabet.
  bool Decode(std::string_view s, std::string* out) const;
  void EncodeString(std::string_view bytes, std::string* out) const {
    for (unsigned char c : bytes) out->append(enc_[c]);
  }

 private:
  ByteLevelAlphabet();
  std::array<std::string, 256> enc_;
  std::array<int16_t, 324> dec_;  // code point -> byte, -1 if none (max code point 323)
};

// Unicode classes as Rust's char methods define them (the HF pre-tokenizers use these).
bool IsWhitespace(char32_t c);
bool IsAlphanumeric(char32_t c);
bool IsNumeric(char32_t c);   // Nd, Nl, No
bool IsPunctuation(char32_t c);  // ASCII punctuation or Unicode P*

}  // namespace tide::tok
