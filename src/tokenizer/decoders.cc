// Decoders (tokenizer.json "decoder") and post-processors ("post_processor").
#include <nlohmann/json.hpp>

#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace tide::tok {
namespace {

using nlohmann::json;

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    const auto& alpha = ByteLevelAlphabet::Get();
    std::string bytes;
    std::string tmp;
    for (const std::string& t : *tokens) {
      tmp.clear();
      // A token with a character outside the alphabet (an added token) keeps its bytes.
      if (alpha.Decode(t, &tmp)) {
        bytes += tmp;
      } else {
        bytes += t;
      }
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string repl, bool strip_first) : repl_(std::move(repl)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      std::string out;
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, repl_.size(), repl_) == 0) {
          out.push_back(' ');
          p += repl_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      if (i == 0 && strip_first_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
      t = std::move(out);
    }
  }

 private:
  std::string repl_;
  bool strip_first_;
};

// "<0xNN>" -> byte value, or -1.
int ParseByteToken(const std::string& t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int h = hex(t[3]), l = hex(t[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t n_bytes = 0;
    auto flush = [&] {
      if (n_bytes == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        // HF emits one U+FFFD per byte token when the run is not valid UTF-8.
        for (size_t k = 0; k < n_bytes; ++k) out.push_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      n_bytes = 0;
    };
    for (std::string& t : *tokens) {
      int b = ParseByteToken(t);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++n_bytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const auto& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (content_.empty()) return;
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0; ++k) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::string out;
      size_t last = 0;
      if (re_) {
        re_->FindAll(t, [&](size_t b, size_t e) {
          out.append(t, last, b - last);
          out += content_;
          last = e;
        });
      } else if (!literal_.empty()) {
        for (size_t p = t.find(literal_); p != std::string::npos; p = t.find(literal_, last)) {
          out.append(t, last, p - last);
          out += content_;
          last = p + literal_.size();
        }
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) {
          t.erase(0, prefix_.size());
        } else {
          t.insert(t.begin(), ' ');
        }
      }
      if (cleanup_) t = Cleanup(t);
    }
  }

 private:
  static std::string Cleanup(std::string s) {
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) {
      std::string f(from), out;
      size_t last = 0;
      for (size_t p = s.find(f); p != std::string::npos; p = s.find(f, last)) {
        out.append(s, last, p - last);
        out += to;
        last = p + f.size();
      }
      out.append(s, last, std::string::npos);
      s = std::move(out);
    }
    return s;
  }
  std::string prefix_;
  bool cleanup_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

Result<std::unique_ptr<Decoder>> MakeDecoderImpl(const json& j) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Metaspace") {
    bool strip = true;
    if (j.contains("prepend_scheme")) {
      strip = j.at("prepend_scheme").get<std::string>() != "never";
    } else {
      strip = j.value("add_prefix_space", true);
    }
    std::string repl = j.contains("replacement") ? j.at("replacement").get<std::string>() : "\xE2\x96\x81";
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(repl, strip));
  }
  if (type == "Strip") {
    return std::unique_ptr<Decoder>(new StripDecoder(j.at("content").get<std::string>(), j.value("start", size_t{0}),
                                                     j.value("stop", size_t{0})));
  }
  if (type == "Replace") {
    const json& pat = j.at("pattern");
    std::string content = j.at("content").get<std::string>();
    if (pat.contains("Regex")) {
      ASSIGN_OR_RETURN(auto re, Regex::Compile(pat.at("Regex").get<std::string>()));
      return std::unique_ptr<Decoder>(new ReplaceDecoder("", std::move(re), std::move(content)));
    }
    return std::unique_ptr<Decoder>(new ReplaceDecoder(pat.at("String").get<std::string>(), nullptr, std::move(content)));
  }
  if (type == "WordPiece") {
    return std::unique_ptr<Decoder>(new WordPieceDecoder(j.value("prefix", std::string("##")), j.value("cleanup", true)));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const json& d : j.at("decoders")) {
      ASSIGN_OR_RETURN(auto part, MakeDecoderImpl(d));
      if (part) parts.push_back(std::move(part));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(parts)));
  }
  return Unimplemented("decoder type '" + type + "' is not supported");
}

// Template ids around the single sequence "A" (pairs are not used by an LLM server).
class AffixPostProcessor final : public PostProcessor {
 public:
  AffixPostProcessor(std::vector<int32_t> prefix, std::vector<int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void Process(std::vector<int32_t>* ids) const override {
    ids->insert(ids->begin(), prefix_.begin(), prefix_.end());
    ids->insert(ids->end(), suffix_.begin(), suffix_.end());
  }

 private:
  std::vector<int32_t> prefix_, suffix_;
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void Process(std::vector<int32_t>* ids) const override {
    for (const auto& p : parts_) p->Process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

Result<std::unique_ptr<PostProcessor>> MakePostProcessorImpl(const json& j) {
  if (j.is_null()) return std::unique_ptr<PostProcessor>();
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>();  // offsets only
  if (type == "TemplateProcessing") {
    std::vector<int32_t> prefix, suffix;
    bool seen_seq = false;
    for (const json& item : j.at("single")) {
      if (item.contains("Sequence")) {
        seen_seq = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      const json& st = j.at("special_tokens");
      if (!st.contains(name)) return InvalidArgument("TemplateProcessing: special token '" + name + "' not defined");
      for (const json& id : st.at(name).at("ids")) (seen_seq ? suffix : prefix).push_back(id.get<int32_t>());
    }
    return std::unique_ptr<PostProcessor>(new AffixPostProcessor(std::move(prefix), std::move(suffix)));
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    int32_t cls = j.at("cls").at(1).get<int32_t>(), sep = j.at("sep").at(1).get<int32_t>();
    return std::unique_ptr<PostProcessor>(new AffixPostProcessor({cls}, {sep}));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (const json& p : j.at("processors")) {
      ASSIGN_OR_RETURN(auto part, MakePostProcessorImpl(p));
      if (part) parts.push_back(std::move(part));
    }
    return std::unique_ptr<PostProcessor>(new SequencePostProcessor(std::move(parts)));
  }
  return Unimplemented("post-processor type '" + type + "' is not supported");
}

}  // namespace

Result<std::unique_ptr<Decoder>> MakeDecoder(const json& j) {
  try {
    return MakeDecoderImpl(j);
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed decoder: ") + e.what());
  }
}

Result<std::unique_ptr<PostProcessor>> MakePostProcessor(const json& j) {
  try {
    return MakePostProcessorImpl(j);
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed post_processor: ") + e.what());
  }
}

}  // namespace tide::tok
