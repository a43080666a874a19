// Pre-tokenizers (tokenizer.json "pre_tokenizer"): split each normalized segment into
// the words the model sees. Splitting follows HF's SplitDelimiterBehavior semantics.
#include <algorithm>
#include <functional>

#include <nlohmann/json.hpp>

#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace tide::tok {

void PreTokenizer::Stream(std::string_view text, bool at_start, PieceSink sink) const {
  std::vector<Piece> pieces{Piece{std::string(text), at_start}};
  Apply(&pieces);
  for (const Piece& p : pieces) sink(p.text, p.at_start);
}

namespace {

using nlohmann::json;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Result<Behavior> ParseBehavior(const std::string& s) {
  if (s == "Removed") return Behavior::kRemoved;
  if (s == "Isolated") return Behavior::kIsolated;
  if (s == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::kMergedWithNext;
  if (s == "Contiguous") return Behavior::kContiguous;
  return InvalidArgument("unknown split behavior '" + s + "'");
}

struct Span {
  size_t b, e;
  bool is_match;
};

// Turns the match list of one piece into new pieces per `behavior`.
void EmitSplits(const Piece& piece, std::vector<Span> spans, Behavior behavior, std::vector<Piece>* out) {
  std::vector<std::pair<size_t, size_t>> r;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) r.push_back({s.b, s.e});
      }
      break;
    case Behavior::kIsolated:
      for (const Span& s : spans) r.push_back({s.b, s.e});
      break;
    case Behavior::kContiguous: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (!r.empty() && s.is_match == prev_match) {
          r.back().second = s.e;
        } else {
          r.push_back({s.b, s.e});
        }
        prev_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !prev_match && !r.empty()) {
          r.back().second = s.e;
        } else {
          r.push_back({s.b, s.e});
        }
        prev_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev_match = false;  // whether the span after this one (in text order) matched
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.is_match && !prev_match && !r.empty()) {
          r.back().first = s.b;
        } else {
          r.push_back({s.b, s.e});
        }
        prev_match = s.is_match;
      }
      std::reverse(r.begin(), r.end());
      break;
    }
  }
  for (const auto& [b, e] : r) {
    if (e > b) out->push_back(Piece{piece.text.substr(b, e - b), piece.at_start && b == 0});
  }
}

// Matches -> spans covering the whole text (gaps are non-matches); `invert` swaps them.
std::vector<Span> SpansFromMatches(size_t n, const std::vector<std::pair<size_t, size_t>>& m, bool invert) {
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [b, e] : m) {
    if (b > last) spans.push_back({last, b, invert});
    spans.push_back({b, e, !invert});
    last = e;
  }
  if (last < n) spans.push_back({last, n, invert});
  return spans;
}

class RegexSplit final : public PreTokenizer {
 public:
  RegexSplit(std::unique_ptr<Regex> re, Behavior b, bool invert) : re_(std::move(re)), behavior_(b), invert_(invert) {}
  void Apply(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces->size() * 4);
    std::vector<std::pair<size_t, size_t>> m;
    for (const Piece& p : *pieces) {
      m.clear();
      re_->FindAll(p.text, [&](size_t b, size_t e) { m.push_back({b, e}); });
      EmitSplits(p, SpansFromMatches(p.text.size(), m, invert_), behavior_, &out);
    }
    *pieces = std::move(out);
  }
  void Stream(std::string_view text, bool at_start, PieceSink sink) const override {
    if (behavior_ != Behavior::kIsolated || invert_) {
      PreTokenizer::Stream(text, at_start, sink);
      return;
    }
    size_t last = 0;
    re_->FindAll(text, [&](size_t b, size_t e) {
      if (b > last) sink(text.substr(last, b - last), at_start && last == 0);
      sink(text.substr(b, e - b), at_start && b == 0);
      last = e;
    });
    if (last < text.size()) sink(text.substr(last), at_start && last == 0);
  }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

// Splits where `pred` holds for a code point; each such code point is its own match
// (Contiguous merges runs, as Digits(individual_digits=false) needs).
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> pred, Behavior b) : pred_(std::move(pred)), behavior_(b) {}
  void Apply(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    std::vector<std::pair<size_t, size_t>> m;
    for (const Piece& p : *pieces) {
      m.clear();
      size_t i = 0;
      while (i < p.text.size()) {
        size_t b = i;
        if (pred_(NextCodePoint(p.text, &i))) m.push_back({b, i});
      }
      EmitSplits(p, SpansFromMatches(p.text.size(), m, false), behavior_, &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre final : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, std::unique_ptr<Regex> re) : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  void Apply(std::vector<Piece>* pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : *pieces) {
        if (!p.text.empty() && p.text[0] != ' ') p.text.insert(p.text.begin(), ' ');
      }
    }
    const auto& alpha = ByteLevelAlphabet::Get();
    std::vector<Piece> out;
    out.reserve(pieces->size() * 4);
    for (const Piece& p : *pieces) {
      auto emit = [&](size_t b, size_t e) {
        Piece q{std::string(), p.at_start && b == 0};
        q.text.reserve((e - b) * 2);
        alpha.EncodeString(std::string_view(p.text).substr(b, e - b), &q.text);
        out.push_back(std::move(q));
      };
      if (re_) {
        size_t last = 0;
        re_->FindAll(p.text, [&](size_t b, size_t e) {
          if (b > last) emit(last, b);
          emit(b, e);
          last = e;
        });
        if (last < p.text.size()) emit(last, p.text.size());
      } else if (!p.text.empty()) {
        emit(0, p.text.size());
      }
    }
    *pieces = std::move(out);
  }
  void Stream(std::string_view text, bool at_start, PieceSink sink) const override {
    std::string prefixed;
    if (add_prefix_space_ && !text.empty() && text[0] != ' ') {
      prefixed = " ";
      prefixed.append(text);
      text = prefixed;
    }
    const auto& alpha = ByteLevelAlphabet::Get();
    std::string buf;
    auto emit = [&](size_t b, size_t e) {
      buf.clear();
      alpha.EncodeString(text.substr(b, e - b), &buf);
      sink(buf, at_start && b == 0);
    };
    if (re_) {
      size_t last = 0;
      re_->FindAll(text, [&](size_t b, size_t e) {
        if (b > last) emit(last, b);
        emit(b, e);
        last = e;
      });
      if (last < text.size()) emit(last, text.size());
    } else if (!text.empty()) {
      emit(0, text.size());
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePre final : public PreTokenizer {
 public:
  MetaspacePre(std::string replacement, PrependScheme scheme, bool split)
      : repl_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Apply(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    for (Piece& p : *pieces) {
      std::string t;
      t.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') {
          t.append(repl_);
        } else {
          t.push_back(c);
        }
      }
      bool prepend = scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start);
      if (prepend && !t.empty() && t.compare(0, repl_.size(), repl_) != 0) t.insert(0, repl_);
      Piece q{std::move(t), p.at_start};
      if (!split_) {
        if (!q.text.empty()) out.push_back(std::move(q));
        continue;
      }
      std::vector<Span> spans;
      size_t last = 0;
      for (size_t f = q.text.find(repl_); f != std::string::npos; f = q.text.find(repl_, f + repl_.size())) {
        if (f > last) spans.push_back({last, f, false});
        spans.push_back({f, f + repl_.size(), true});
        last = f + repl_.size();
      }
      if (last < q.text.size()) spans.push_back({last, q.text.size(), false});
      EmitSplits(q, std::move(spans), Behavior::kMergedWithNext, &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::string repl_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePre final : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void Apply(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->Apply(pieces);
  }
  void Stream(std::string_view text, bool at_start, PieceSink sink) const override { StreamFrom(0, text, at_start, sink); }

 private:
  void StreamFrom(size_t k, std::string_view text, bool at_start, PieceSink sink) const {
    if (k == parts_.size()) {
      sink(text, at_start);
      return;
    }
    parts_[k]->Stream(text, at_start, [&](std::string_view t, bool a) { StreamFrom(k + 1, t, a, sink); });
  }
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Result<std::unique_ptr<PreTokenizer>> MakeRegexSplit(const std::string& pattern, Behavior b, bool invert) {
  ASSIGN_OR_RETURN(auto re, Regex::Compile(pattern));
  return std::unique_ptr<PreTokenizer>(new RegexSplit(std::move(re), b, invert));
}

Result<std::unique_ptr<PreTokenizer>> MakePreTokenizerImpl(const json& j) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> re;
    if (j.value("use_regex", true)) {
      ASSIGN_OR_RETURN(re, Regex::Compile(kGpt2Pattern));
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevelPre(j.value("add_prefix_space", true), std::move(re)));
  }
  if (type == "Split") {
    const json& pat = j.at("pattern");
    std::string regex = pat.contains("Regex") ? pat.at("Regex").get<std::string>()
                                              : Regex::Quote(pat.at("String").get<std::string>());
    ASSIGN_OR_RETURN(Behavior b, ParseBehavior(j.at("behavior").get<std::string>()));
    return MakeRegexSplit(regex, b, j.value("invert", false));
  }
  if (type == "Metaspace") {
    PrependScheme scheme = PrependScheme::kAlways;
    if (j.contains("prepend_scheme")) {
      std::string s = j.at("prepend_scheme").get<std::string>();
      if (s == "first") {
        scheme = PrependScheme::kFirst;
      } else if (s == "never") {
        scheme = PrependScheme::kNever;
      } else if (s != "always") {
        return InvalidArgument("unknown Metaspace prepend_scheme '" + s + "'");
      }
    } else if (!j.value("add_prefix_space", true)) {
      scheme = PrependScheme::kNever;
    }
    std::string repl = j.contains("replacement") ? j.at("replacement").get<std::string>() : "\xE2\x96\x81";
    return std::unique_ptr<PreTokenizer>(new MetaspacePre(repl, scheme, j.value("split", true)));
  }
  if (type == "Digits") {
    bool individual = j.value("individual_digits", false);
    return std::unique_ptr<PreTokenizer>(
        new CharSplit(IsNumeric, individual ? Behavior::kIsolated : Behavior::kContiguous));
  }
  if (type == "Punctuation") {
    ASSIGN_OR_RETURN(Behavior b, ParseBehavior(j.value("behavior", std::string("Isolated"))));
    return std::unique_ptr<PreTokenizer>(new CharSplit(IsPunctuation, b));
  }
  if (type == "Whitespace") return MakeRegexSplit(R"(\w+|[^\w\s]+)", Behavior::kRemoved, /*invert=*/true);
  if (type == "WhitespaceSplit") return MakeRegexSplit(R"(\s+)", Behavior::kRemoved, /*invert=*/false);
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    ASSIGN_OR_RETURN(auto ws, MakeRegexSplit(R"(\s+)", Behavior::kRemoved, false));
    parts.push_back(std::move(ws));
    parts.push_back(std::unique_ptr<PreTokenizer>(new CharSplit(IsPunctuation, Behavior::kIsolated)));
    return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const json& p : j.at("pretokenizers")) {
      ASSIGN_OR_RETURN(auto part, MakePreTokenizerImpl(p));
      if (part) parts.push_back(std::move(part));
    }
    return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
  }
  return Unimplemented("pre-tokenizer type '" + type + "' is not supported");
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json& j) {
  try {
    return MakePreTokenizerImpl(j);
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed pre_tokenizer: ") + e.what());
  }
}

}  // namespace tide::tok
