// Tokenizer::FromHfFolder: tokenizer.json (+ tokenizer_config.json, chat_template.jinja,
// generation_config.json), or a bare SentencePiece tokenizer.model.
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "tokenizer/models.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace tide {
namespace {

using nlohmann::json;
using tok::TokenizerImpl;

Result<json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, size_t{1} << 30));
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return InvalidArgument(path + ": invalid JSON: " + e.what());
  }
}

Result<std::unique_ptr<tok::Model>> MakeModel(const json& j) {
  const std::string type = j.value("type", std::string("BPE"));
  std::vector<std::pair<std::string, int32_t>> vocab;
  if (j.contains("vocab") && j.at("vocab").is_object()) {
    vocab.reserve(j.at("vocab").size());
    for (auto it = j.at("vocab").begin(); it != j.at("vocab").end(); ++it) vocab.emplace_back(it.key(), it.value().get<int32_t>());
  }
  auto opt_string = [&](const char* key) -> std::optional<std::string> {
    if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
    return j.at(key).get<std::string>();
  };
  if (type == "BPE") {
    tok::BpeOptions o;
    o.unk_token = opt_string("unk_token");
    o.continuing_subword_prefix = opt_string("continuing_subword_prefix").value_or("");
    o.end_of_word_suffix = opt_string("end_of_word_suffix").value_or("");
    o.fuse_unk = j.value("fuse_unk", false);
    o.byte_fallback = j.value("byte_fallback", false);
    o.ignore_merges = j.value("ignore_merges", false);
    std::vector<std::pair<std::string, std::string>> merges;
    if (j.contains("merges")) {
      merges.reserve(j.at("merges").size());
      for (const json& m : j.at("merges")) {
        if (m.is_array()) {
          if (m.size() != 2) return InvalidArgument("tokenizer.json: a merge pair must have 2 entries");
          merges.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
        } else {
          const std::string s = m.get<std::string>();
          size_t sp = s.find(' ');
          if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
            return InvalidArgument("tokenizer.json: merge '" + s + "' is not two space-separated tokens");
          }
          merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
        }
      }
    }
    ASSIGN_OR_RETURN(auto m, tok::BpeModel::Create(o, std::move(vocab), merges));
    return std::unique_ptr<tok::Model>(std::move(m));
  }
  if (type == "WordPiece") {
    ASSIGN_OR_RETURN(auto m, tok::WordPieceModel::Create(std::move(vocab), j.value("unk_token", std::string("[UNK]")),
                                                         j.value("continuing_subword_prefix", std::string("##")),
                                                         j.value("max_input_chars_per_word", size_t{100})));
    return std::unique_ptr<tok::Model>(std::move(m));
  }
  if (type == "Unigram") {
    // "vocab" is a list of [piece, score]; its position is the id.
    if (!j.contains("vocab") || !j.at("vocab").is_array()) return InvalidArgument("tokenizer.json: Unigram vocab must be a list");
    std::vector<tok::UnigramPiece> pieces;
    pieces.reserve(j.at("vocab").size());
    for (const json& e : j.at("vocab")) {
      if (!e.is_array() || e.size() != 2 || !e.at(0).is_string() || !e.at(1).is_number()) {
        return InvalidArgument("tokenizer.json: a Unigram vocab entry must be [piece, score]");
      }
      pieces.push_back({e.at(0).get<std::string>(), e.at(1).get<double>()});
    }
    std::optional<int32_t> unk_id;
    if (j.contains("unk_id") && !j.at("unk_id").is_null()) unk_id = j.at("unk_id").get<int32_t>();
    ASSIGN_OR_RETURN(auto m, tok::UnigramModel::Create(std::move(pieces), unk_id, j.value("byte_fallback", false)));
    return std::unique_ptr<tok::Model>(std::move(m));
  }
  return Unimplemented("tokenizer.json model type '" + type + "' is not supported (BPE, WordPiece and Unigram are)");
}

// tokenizer_config.json token fields are a string or an AddedToken object.
std::optional<std::string> TokenText(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const json& v = cfg.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

Status LoadTokenizerJson(const json& tj, TokenizerImpl* m) {
  ASSIGN_OR_RETURN(m->model, MakeModel(tj.at("model")));
  if (tj.contains("added_tokens")) {
    for (const json& a : tj.at("added_tokens")) {
      tok::AddedToken t;
      t.id = a.at("id").get<int32_t>();
      if (t.id < 0 || t.id >= (1 << 26)) return InvalidArgument("tokenizer.json: added token id out of range");
      t.content = a.at("content").get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      t.normalized = a.value("normalized", !t.special);
      m->added.Add(std::move(t));
    }
  }
  m->added.Build();
  auto field = [&](const char* k) -> const json& {
    static const json kNull;
    return tj.contains(k) ? tj.at(k) : kNull;
  };
  ASSIGN_OR_RETURN(m->normalizer, tok::MakeNormalizer(field("normalizer")));
  ASSIGN_OR_RETURN(m->pre_tokenizer, tok::MakePreTokenizer(field("pre_tokenizer")));
  ASSIGN_OR_RETURN(m->post_processor, tok::MakePostProcessor(field("post_processor")));
  ASSIGN_OR_RETURN(m->decoder, tok::MakeDecoder(field("decoder")));
  return OkStatus();
}

// Llama-family slow/fast tokenizers rebuild their post-processor from add_bos_token /
// add_eos_token (transformers' update_post_processor), overriding tokenizer.json.
bool ConfigOwnsSpecialTokens(const json& cfg) {
  std::string cls = cfg.value("tokenizer_class", std::string());
  return (cls.rfind("LlamaTokenizer", 0) == 0 || cls.rfind("CodeLlamaTokenizer", 0) == 0 ||
          cls.rfind("GemmaTokenizer", 0) == 0) &&
         (cfg.contains("add_bos_token") || cfg.contains("add_eos_token"));
}

class ConfigPostProcessor final : public tok::PostProcessor {
 public:
  ConfigPostProcessor(std::optional<int32_t> bos, std::optional<int32_t> eos) : bos_(bos), eos_(eos) {}
  void Process(std::vector<int32_t>* ids) const override {
    if (bos_) ids->insert(ids->begin(), *bos_);
    if (eos_) ids->push_back(*eos_);
  }

 private:
  std::optional<int32_t> bos_, eos_;
};

Status LoadFolder(const std::string& dir, TokenizerImpl* m) {
  const std::string tj_path = dir + "/tokenizer.json";
  const std::string sp_path = dir + "/tokenizer.model";
  json cfg = json::object();
  if (FileExists(dir + "/tokenizer_config.json")) {
    ASSIGN_OR_RETURN(cfg, ReadJson(dir + "/tokenizer_config.json"));
    if (!cfg.is_object()) return InvalidArgument(dir + "/tokenizer_config.json: not a JSON object");
  }
  if (FileExists(tj_path)) {
    ASSIGN_OR_RETURN(json tj, ReadJson(tj_path));
    RETURN_IF_ERROR(LoadTokenizerJson(tj, m).WithContext(tj_path));
  } else if (FileExists(sp_path)) {
    ASSIGN_OR_RETURN(m->sp, tok::SentencePieceBackend::Load(sp_path));
    m->added.Build();
    if (m->sp->bos_id() >= 0) m->bos_id = m->sp->bos_id();
    if (m->sp->eos_id() >= 0) m->eos_id = m->sp->eos_id();
    m->sp_add_bos = cfg.value("add_bos_token", true);
    m->sp_add_eos = cfg.value("add_eos_token", false);
  } else {
    return NotFound(dir + ": no tokenizer.json or tokenizer.model");
  }
  auto lookup = [&](const std::optional<std::string>& text) -> std::optional<int32_t> {
    if (!text) return std::nullopt;
    if (auto id = m->added.FindByContent(*text)) return id;
    if (m->sp) {
      int32_t id = m->sp->PieceToId(*text);
      return id < 0 ? std::nullopt : std::optional<int32_t>(id);
    }
    return m->model->TokenToId(*text);
  };
  if (auto b = lookup(TokenText(cfg, "bos_token"))) m->bos_id = b;
  if (auto e = lookup(TokenText(cfg, "eos_token"))) m->eos_id = e;
  if (!m->sp && ConfigOwnsSpecialTokens(cfg)) {
    m->post_processor = std::make_unique<ConfigPostProcessor>(
        cfg.value("add_bos_token", true) ? m->bos_id : std::nullopt,
        cfg.value("add_eos_token", false) ? m->eos_id : std::nullopt);
  }
  // Chat template: chat_template.jinja (transformers 5) wins over the config's.
  if (FileExists(dir + "/chat_template.jinja")) {
    ASSIGN_OR_RETURN(m->chat_template, ReadFileToString(dir + "/chat_template.jinja"));
  } else if (cfg.contains("chat_template")) {
    const json& ct = cfg.at("chat_template");
    if (ct.is_string()) {
      m->chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const json& named : ct) {
        if (named.is_object() && named.value("name", std::string()) == "default" && named.contains("template")) {
          m->chat_template = named.at("template").get<std::string>();
        }
      }
    }
  }
  if (FileExists(dir + "/generation_config.json")) {
    ASSIGN_OR_RETURN(json gen, ReadJson(dir + "/generation_config.json"));
    if (gen.is_object() && gen.contains("eos_token_id")) {
      const json& e = gen.at("eos_token_id");
      if (e.is_number_integer()) m->extra_eos_ids.push_back(e.get<int32_t>());
      if (e.is_array()) {
        for (const json& x : e) {
          if (x.is_number_integer()) m->extra_eos_ids.push_back(x.get<int32_t>());
        }
      }
    }
  }
  m->Finish();
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromHfFolder(const std::string& dir) {
  auto impl = std::make_unique<TokenizerImpl>();
  try {
    RETURN_IF_ERROR(LoadFolder(dir, impl.get()));
  } catch (const json::exception& e) {
    return InvalidArgument(dir + ": malformed tokenizer files: " + e.what());
  }
  return std::make_unique<Tokenizer>(std::move(impl));
}

}  // namespace tide
