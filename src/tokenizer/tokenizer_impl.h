// The state behind a Tokenizer, shared by the loaders (hf_loader.cc, gguf_loader.cc)
// and tokenizer.cc. Internal to tokenizer/.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_vocab.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/sentencepiece_backend.h"

namespace tide::tok {

struct TokenizerImpl {
  // The HF pipeline (unset stages are skipped), or `sp` for a bare tokenizer.model.
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  AddedVocab added;
  std::unique_ptr<SentencePieceBackend> sp;
  bool sp_add_bos = true;
  bool sp_add_eos = false;

  // Filled by Finish(): the string each id decodes from, and its special flag.
  std::vector<std::string> id_to_token;
  std::vector<uint8_t> special;

  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  std::vector<int32_t> extra_eos_ids;
  std::string chat_template;

  // Builds id_to_token/special and the eos list. REQUIRES: model or sp set, added built.
  void Finish();
  std::vector<int32_t> eos_ids;
};

// Known end-of-turn token texts: llama.cpp's EOG heuristics, applied to special tokens.
bool IsEndOfTurnText(std::string_view text);

}  // namespace tide::tok
