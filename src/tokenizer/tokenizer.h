// Text <-> token ids, byte-exact with Hugging Face tokenizers (see docs/tokenizer.md for
// what is supported and the known divergences).
//
// Thread-safety: a Tokenizer is immutable after loading (its pre-token cache is
// internally locked), so one instance may encode/decode from many threads at once.
// IncrementalDetokenizer and StopStringMatcher are per-sequence and not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tide {

class GgufFile;
namespace tok {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Loads a folder holding tokenizer.json (plus tokenizer_config.json for bos/eos,
  // add_bos_token, chat_template; chat_template.jinja; generation_config.json for extra
  // eos ids), or only a SentencePiece tokenizer.model (via libsentencepiece).
  // Errors: kNotFound when the folder has neither file; kInvalidArgument /
  // kUnimplemented naming the malformed or unsupported part.
  static Result<std::unique_ptr<Tokenizer>> FromHfFolder(const std::string& dir);
  // Builds the tokenizer from GGUF metadata (tokenizer.ggml.*): model "llama"
  // (SentencePiece scores) or "gpt2" (byte-level BPE; tokenizer.ggml.pre selects the
  // pre-tokenizer). Errors: kInvalidArgument / kUnimplemented naming the key.
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Special-token texts inside `text` are matched as tokens (HF's default).
  // add_special_tokens: apply the post-processor (BOS/EOS). Errors: kInvalidArgument
  // when text is not valid UTF-8.
  Result<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens) const;
  // Invalid byte sequences decode to U+FFFD (as HF). Errors: kOutOfRange for an id
  // outside [0, vocab_size()).
  Result<std::string> Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // Largest id + 1 (model vocabulary and added tokens).
  [[nodiscard]] int32_t vocab_size() const;
  [[nodiscard]] std::optional<int32_t> bos_id() const;
  // Every id that ends generation: eos, eot/eom-like tokens, generation_config's list.
  [[nodiscard]] std::vector<int32_t> eos_ids() const;
  // True for added tokens marked special (what skip_special_tokens removes).
  [[nodiscard]] bool IsSpecial(int32_t id) const;
  // "" when the model has none.
  [[nodiscard]] const std::string& chat_template() const;
  [[nodiscard]] std::string bos_token() const;
  [[nodiscard]] std::string eos_token() const;
  // The vocabulary string of one id ("" when out of range); for debugging and tests.
  [[nodiscard]] std::string IdToToken(int32_t id) const;
  [[nodiscard]] std::optional<int32_t> TokenToId(std::string_view token) const;

  // For the loaders (internal).
  explicit Tokenizer(std::unique_ptr<tok::TokenizerImpl> impl);
  [[nodiscard]] const tok::TokenizerImpl& impl() const { return *impl_; }

 private:
  std::unique_ptr<tok::TokenizerImpl> impl_;
};

// Streaming detokenization: feed ids one by one, get the text that became final.
// Text is released only when it is valid UTF-8 and can no longer change (byte-fallback
// pieces and multi-token characters are held back). Invariant: the concatenation of all
// Push outputs and Flush equals tok.Decode(all ids, skip_special_tokens).
// REQUIRES: `tok` outlives the detokenizer.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tok, bool skip_special_tokens = true);
  // New final text (possibly empty). Ids out of range are ignored.
  std::string Push(int32_t id);
  // Whatever is held back, at the end of the sequence.
  std::string Flush();

 private:
  std::string DecodeRange(size_t begin, size_t end) const;
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // start of the decode window
  size_t read_offset_ = 0;    // ids before this are fully emitted
};

// Stop strings that may span tokens. Text that could be the start of a stop string is
// held back until it is known not to be one.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings);
  struct Output {
    std::string emit;     // text safe to send
    bool stopped = false;  // a stop string was found; emit ends right before it
    int matched = -1;      // index of the stop string found
  };
  // REQUIRES: not yet stopped (later pushes return empty output).
  Output Push(std::string_view text);
  // The held-back text when generation ends for another reason.
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace tide
