// Normalizers (tokenizer.json "normalizer"): whole-string rewrites applied to each
// non-added-token segment before pre-tokenization.
#include <utf8proc.h>

#include <nlohmann/json.hpp>

#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace tide::tok {
namespace {

using nlohmann::json;

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  // Only the spans around non-ASCII text can change: an ASCII character followed by
  // another ASCII character is a stable boundary for every normalization form (ASCII
  // has combining class 0 and composes with nothing that is ASCII). Prose and code are
  // mostly ASCII, so this keeps utf8proc off the hot path.
  std::string Normalize(std::string_view s) const override {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      while (j < s.size() && static_cast<unsigned char>(s[j]) < 0x80) ++j;
      if (j == s.size()) {
        out.append(s.substr(i));
        break;
      }
      // s[j] is non-ASCII: its run starts at the preceding character (a possible base).
      size_t b = j > i ? j - 1 : j;
      out.append(s.substr(i, b - i));
      size_t e = j;
      while (e < s.size()) {
        if (static_cast<unsigned char>(s[e]) >= 0x80) {
          ++e;
        } else if (e + 1 < s.size() && static_cast<unsigned char>(s[e + 1]) >= 0x80) {
          e += 2;  // one ASCII char between non-ASCII ones may be a base: keep the run
        } else {
          break;
        }
      }
      out.append(Map(s.substr(b, e - b)));
      i = e;
    }
    return out;
  }

 private:
  std::string Map(std::string_view s) const {
    if (s.empty()) return {};
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                      static_cast<utf8proc_ssize_t>(s.size()), &out,
                                      static_cast<utf8proc_option_t>(options_));
    if (n < 0) return std::string(s);  // input is validated UTF-8; keep it on failure
    std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    free(out);
    return r;
  }

  int options_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string Normalize(std::string_view s) const override {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      char32_t c = NextCodePoint(s, &i);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      } else if (c == 0x130) {
        out.append("i\xCC\x87");  // the one full (multi-char) lowercase mapping Rust applies
      } else {
        AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))), &out);
      }
    }
    return out;
  }
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prefix_(std::move(p)) {}
  std::string Normalize(std::string_view s) const override {
    if (s.empty()) return {};
    std::string out = prefix_;
    out.append(s);
    return out;
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  std::string Normalize(std::string_view s) const override {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    size_t last = 0;
    if (re_) {
      re_->FindAll(s, [&](size_t b, size_t e) {
        out.append(s.substr(last, b - last));
        out.append(content_);
        last = e;
      });
    } else if (!literal_.empty()) {
      for (size_t p = s.find(literal_); p != std::string_view::npos; p = s.find(literal_, last)) {
        out.append(s.substr(last, p - last));
        out.append(content_);
        last = p + literal_.size();
      }
    }
    out.append(s.substr(last));
    return out;
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t i = b;
        if (!IsWhitespace(NextCodePoint(s, &i))) break;
        b = i;
      }
    }
    if (right_) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!IsWhitespace(NextCodePoint(s, &i))) break;
        e = start;
      }
    }
    return std::string(s.substr(b, e - b));
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  std::string Normalize(std::string_view s) const override {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      size_t b = i;
      char32_t c = NextCodePoint(s, &i);
      if (utf8proc_category(static_cast<utf8proc_int32_t>(c)) != UTF8PROC_CATEGORY_MN) out.append(s.substr(b, i - b));
    }
    return out;
  }
};

// BERT's: drop control characters, whitespace -> ' ', spaces around CJK ideographs,
// optional accent stripping (after NFD) and lowercasing.
class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean, bool chinese, bool strip_accents, bool lower)
      : clean_(clean), chinese_(chinese), strip_(strip_accents), lower_(lower) {}
  std::string Normalize(std::string_view s) const override {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      size_t b = i;
      char32_t c = NextCodePoint(s, &i);
      if (clean_) {
        if (c == 0 || c == 0xFFFD) continue;
        if (c == '\t' || c == '\n' || c == '\r' || IsWhitespace(c)) {
          out.push_back(' ');
          continue;
        }
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CN ||
            cat == UTF8PROC_CATEGORY_CO) {
          continue;
        }
      }
      bool cjk = chinese_ && ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
                              (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
                              (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
                              (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F));
      if (cjk) out.push_back(' ');
      out.append(s.substr(b, i - b));
      if (cjk) out.push_back(' ');
    }
    if (strip_) out = StripAccentsNormalizer().Normalize(UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE).Normalize(out));
    if (lower_) out = LowercaseNormalizer().Normalize(out);
    return out;
  }

 private:
  bool clean_, chinese_, strip_, lower_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string Normalize(std::string_view s) const override {
    std::string cur(s);
    for (const auto& p : parts_) cur = p->Normalize(cur);
    return cur;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

Result<std::unique_ptr<Normalizer>> MakeNormalizerImpl(const json& j) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  const std::string type = j.at("type").get<std::string>();
  constexpr int kStable = UTF8PROC_STABLE;
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(kStable | UTF8PROC_COMPOSE));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(kStable | UTF8PROC_DECOMPOSE));
  if (type == "NFKC") {
    return std::unique_ptr<Normalizer>(new UnicodeNormalizer(kStable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "NFKD") {
    return std::unique_ptr<Normalizer>(new UnicodeNormalizer(kStable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccentsNormalizer());
  if (type == "Prepend") return std::unique_ptr<Normalizer>(new PrependNormalizer(j.at("prepend").get<std::string>()));
  if (type == "Strip") {
    return std::unique_ptr<Normalizer>(
        new StripNormalizer(j.value("strip_left", true), j.value("strip_right", true)));
  }
  if (type == "Replace") {
    const json& pat = j.at("pattern");
    std::string content = j.at("content").get<std::string>();
    if (pat.contains("Regex")) {
      ASSIGN_OR_RETURN(auto re, Regex::Compile(pat.at("Regex").get<std::string>()));
      return std::unique_ptr<Normalizer>(new ReplaceNormalizer("", std::move(re), std::move(content)));
    }
    return std::unique_ptr<Normalizer>(
        new ReplaceNormalizer(pat.at("String").get<std::string>(), nullptr, std::move(content)));
  }
  if (type == "BertNormalizer") {
    bool lower = j.value("lowercase", true);
    bool strip = j.contains("strip_accents") && !j.at("strip_accents").is_null() ? j.at("strip_accents").get<bool>()
                                                                                  : lower;
    return std::unique_ptr<Normalizer>(
        new BertNormalizer(j.value("clean_text", true), j.value("handle_chinese_chars", true), strip, lower));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const json& n : j.at("normalizers")) {
      ASSIGN_OR_RETURN(auto p, MakeNormalizerImpl(n));
      if (p) parts.push_back(std::move(p));
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(parts)));
  }
  return Unimplemented("normalizer type '" + type + "' is not supported");
}

}  // namespace

Result<std::unique_ptr<Normalizer>> MakeNormalizer(const json& j) {
  try {
    return MakeNormalizerImpl(j);
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed normalizer: ") + e.what());
  }
}

}  // namespace tide::tok
