// Tokenizer::FromGguf: GGUF tokenizer.ggml.* metadata mapped onto the same pipeline
// stages a Hugging Face tokenizer.json would describe (see docs/tokenizer.md):
//   llama -> Prepend/Replace "▁" normalizer, SpmModel (scores), byte-fallback decoder
//   gpt2  -> Split regexes chosen by tokenizer.ggml.pre + ByteLevel, BpeModel (merges)
//   bert  -> BERT normalizer/pre-tokenizer, WordPiece
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "tokenizer/models.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace tide {
namespace {

using nlohmann::json;
using tok::TokenizerImpl;

// GGUF token types (llama.cpp's llama_token_type).
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct PreTokenizerSpec {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool add_bos = false;
};

constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The pre-tokenizer regexes of each tokenizer.ggml.pre value (the HF pre-tokenizers of
// those model families, as llama.cpp's converter names them).
Result<PreTokenizerSpec> SpecForPre(const std::string& pre) {
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "pixtral" ||
      pre == "dbrx" || pre == "smaug-bpe" || pre == "chatglm-bpe" || pre == "glm4") {
    bool llama = pre != "dbrx" && pre != "smaug-bpe" && pre != "chatglm-bpe" && pre != "glm4";
    return PreTokenizerSpec{{kLlama3Regex}, llama, llama};
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2" || pre == "megrez" || pre == "hunyuan") {
    return PreTokenizerSpec{{kQwen2Regex}};
  }
  if (pre == "deepseek-llm") {
    // Written with code points: several range ends have canonical equivalents (e.g.
    // U+1FDB vs U+038A) that an editor's normalization would silently swap.
    return PreTokenizerSpec{
        {"[\r\n]",
         "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
         "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
         "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
         "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
         "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
         "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
         "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
         "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
         "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
         "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
         "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
         "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
         "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
         "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
         "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
         "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
         "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"}};
  }
  if (pre == "deepseek-coder") {
    return PreTokenizerSpec{{"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"}};
  }
  if (pre == "deepseek-v3") {
    return PreTokenizerSpec{{"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
                             "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
                             "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}};
  }
  if (pre == "falcon") return PreTokenizerSpec{{"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2Regex, "[0-9][0-9][0-9]"}};
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva-7b") {
    return PreTokenizerSpec{{"\\p{N}", kGpt2Regex}};
  }
  if (pre == "gpt-2" || pre == "phi-2" || pre == "mpt" || pre == "olmo" || pre == "jais" || pre == "jina-es" ||
      pre == "jina-de" || pre == "gpt-neox" || pre == "trillion" || pre == "exaone4" || pre == "roberta-bpe") {
    return PreTokenizerSpec{{kGpt2Regex}};
  }
  if (pre == "poro-chat" || pre == "bloom" || pre == "gpt3-finnish") {
    return PreTokenizerSpec{{" ?[^(\\s|.,!?…。，、।۔،)]+"}};
  }
  if (pre == "default" || pre.empty()) {
    return PreTokenizerSpec{{"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2Regex, "\\p{N}+", "[0-9][0-9][0-9]"}};
  }
  return Unimplemented("GGUF tokenizer.ggml.pre '" + pre + "' is not supported");
}

Result<std::vector<std::string>> StringArray(const GgufFile& g, const std::string& key, bool required) {
  const auto* a = g.GetArray(key);
  std::vector<std::string> out;
  if (a == nullptr) {
    if (required) return InvalidArgument("GGUF: missing " + key);
    return out;
  }
  out.reserve(a->size());
  for (const GgufValue& v : *a) {
    if (v.kind != GgufValue::Kind::kString) return InvalidArgument("GGUF: " + key + " must be an array of strings");
    out.push_back(v.s);
  }
  return out;
}

json SingleTemplate(std::optional<int32_t> bos, std::optional<int32_t> eos) {
  json single = json::array();
  json specials = json::object();
  if (bos) {
    single.push_back({{"SpecialToken", {{"id", "bos"}}}});
    specials["bos"] = {{"ids", {*bos}}};
  }
  single.push_back({{"Sequence", {{"id", "A"}}}});
  if (eos) {
    single.push_back({{"SpecialToken", {{"id", "eos"}}}});
    specials["eos"] = {{"ids", {*eos}}};
  }
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
}

Status Load(const GgufFile& g, TokenizerImpl* m) {
  auto model_name = g.GetString("tokenizer.ggml.model");
  if (!model_name) return InvalidArgument("GGUF: missing tokenizer.ggml.model");
  ASSIGN_OR_RETURN(std::vector<std::string> tokens, StringArray(g, "tokenizer.ggml.tokens", true));
  const size_t n = tokens.size();
  std::vector<int64_t> types(n, kNormal);
  if (const auto* a = g.GetArray("tokenizer.ggml.token_type")) {
    if (a->size() != n) return InvalidArgument("GGUF: tokenizer.ggml.token_type length differs from tokens");
    for (size_t i = 0; i < n; ++i) types[i] = (*a)[i].kind == GgufValue::Kind::kInt ? (*a)[i].i : static_cast<int64_t>((*a)[i].u);
  }
  auto id_key = [&](const char* key) -> std::optional<int32_t> {
    auto v = g.GetInt(key);
    if (!v || *v < 0 || static_cast<size_t>(*v) >= n) return std::nullopt;
    return static_cast<int32_t>(*v);
  };
  m->bos_id = id_key("tokenizer.ggml.bos_token_id");
  m->eos_id = id_key("tokenizer.ggml.eos_token_id");
  for (const char* k : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (auto id = id_key(k)) m->extra_eos_ids.push_back(*id);
  }
  m->chat_template = g.GetString("tokenizer.chat_template").value_or("");
  // Control, unknown and user-defined tokens are matched in the input like HF's added
  // tokens; control and unknown ones are special (skipped by skip_special_tokens).
  for (size_t i = 0; i < n; ++i) {
    if (types[i] == kControl || types[i] == kUnknown || types[i] == kUserDefined) {
      tok::AddedToken t;
      t.id = static_cast<int32_t>(i);
      t.content = tokens[i];
      t.special = types[i] != kUserDefined;
      m->added.Add(std::move(t));
    }
  }
  m->added.Build();
  bool add_bos = false;
  json normalizer, pre, decoder;
  if (*model_name == "llama") {
    std::vector<tok::SpmPiece> pieces(n);
    const auto* scores = g.GetArray("tokenizer.ggml.scores");
    if (scores && scores->size() != n) return InvalidArgument("GGUF: tokenizer.ggml.scores length differs from tokens");
    for (size_t i = 0; i < n; ++i) {
      pieces[i].text = tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : tokens[i];
      if (scores) pieces[i].score = static_cast<float>((*scores)[i].f);
    }
    ASSIGN_OR_RETURN(auto spm, tok::SpmModel::Create(std::move(pieces), id_key("tokenizer.ggml.unknown_token_id")));
    m->model = std::move(spm);
    bool space_prefix = g.GetBool("tokenizer.ggml.add_space_prefix").value_or(true);
    json norms = json::array();
    if (space_prefix) norms.push_back({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}});
    norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}});
    normalizer = {{"type", "Sequence"}, {"normalizers", norms}};
    json decs = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                             {{"type", "ByteFallback"}},
                             {{"type", "Fuse"}}});
    if (space_prefix) decs.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    decoder = {{"type", "Sequence"}, {"decoders", decs}};
    add_bos = true;
  } else if (*model_name == "gpt2") {
    std::string pre_name = g.GetString("tokenizer.ggml.pre").value_or("default");
    ASSIGN_OR_RETURN(PreTokenizerSpec spec, SpecForPre(pre_name));
    ASSIGN_OR_RETURN(std::vector<std::string> merge_strs, StringArray(g, "tokenizer.ggml.merges", true));
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(merge_strs.size());
    for (const std::string& s : merge_strs) {
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) return InvalidArgument("GGUF: merge '" + s + "' has no space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
    std::vector<std::pair<std::string, int32_t>> vocab;
    vocab.reserve(n);
    for (size_t i = 0; i < n; ++i) vocab.emplace_back(tokens[i], static_cast<int32_t>(i));
    tok::BpeOptions o;
    o.ignore_merges = spec.ignore_merges;
    o.skip_invalid_merges = true;
    ASSIGN_OR_RETURN(auto bpe, tok::BpeModel::Create(o, std::move(vocab), merges));
    m->model = std::move(bpe);
    json pres = json::array();
    for (const std::string& r : spec.regexes) {
      pres.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}, {"invert", false}});
    }
    pres.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
    pre = {{"type", "Sequence"}, {"pretokenizers", pres}};
    decoder = {{"type", "ByteLevel"}};
    add_bos = spec.add_bos;
  } else if (*model_name == "bert") {
    // llama.cpp's converter marks word starts with "▁" and strips "##"; undo that.
    std::vector<std::pair<std::string, int32_t>> vocab;
    for (size_t i = 0; i < n; ++i) {
      std::string t = tokens[i];
      if (types[i] == kNormal) t = t.rfind("\xE2\x96\x81", 0) == 0 ? t.substr(3) : "##" + t;
      vocab.emplace_back(std::move(t), static_cast<int32_t>(i));
    }
    auto unk = id_key("tokenizer.ggml.unknown_token_id");
    ASSIGN_OR_RETURN(auto wp, tok::WordPieceModel::Create(std::move(vocab), unk ? tokens[*unk] : "[UNK]", "##", 100));
    m->model = std::move(wp);
    normalizer = {{"type", "BertNormalizer"}, {"lowercase", true}};
    pre = {{"type", "BertPreTokenizer"}};
    decoder = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  } else {
    return Unimplemented("GGUF tokenizer.ggml.model '" + *model_name + "' is not supported (llama, gpt2, bert are)");
  }
  ASSIGN_OR_RETURN(m->normalizer, tok::MakeNormalizer(normalizer));
  ASSIGN_OR_RETURN(m->pre_tokenizer, tok::MakePreTokenizer(pre));
  ASSIGN_OR_RETURN(m->decoder, tok::MakeDecoder(decoder));
  add_bos = g.GetBool("tokenizer.ggml.add_bos_token").value_or(add_bos);
  bool add_eos = g.GetBool("tokenizer.ggml.add_eos_token").value_or(false);
  ASSIGN_OR_RETURN(m->post_processor, tok::MakePostProcessor(SingleTemplate(add_bos ? m->bos_id : std::nullopt,
                                                                           add_eos ? m->eos_id : std::nullopt)));
  m->Finish();
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  auto impl = std::make_unique<TokenizerImpl>();
  try {
    RETURN_IF_ERROR(Load(gguf, impl.get()).WithContext(gguf.path()));
  } catch (const json::exception& e) {
    return Internal(std::string("GGUF tokenizer: ") + e.what());
  }
  return std::make_unique<Tokenizer>(std::move(impl));
}

}  // namespace tide
