// The stages of Hugging Face's tokenization pipeline, as tide implements them:
//   added-token split -> Normalizer -> PreTokenizer -> Model -> PostProcessor (encode)
//   ids -> token strings -> Decoder chain -> text                            (decode)
// Stages other than the model are built from their tokenizer.json objects (the GGUF
// loader synthesises the same objects), see docs/tokenizer.md. Internal to tokenizer/.
// All stages are immutable after construction and safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"

namespace tide::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Normalize(std::string_view s) const = 0;
};

// One pre-token. `at_start`: it begins at offset 0 of the original input (Metaspace's
// prepend_scheme "first" only prepends there).
struct Piece {
  std::string text;
  bool at_start = false;
};

// A non-owning callable reference (the callee must not keep it past the call).
template <typename Sig>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F>
  FunctionRef(F&& f) : obj_(const_cast<void*>(static_cast<const void*>(&f))),  // NOLINT: implicit on purpose
                       call_([](void* o, Args... a) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(a...); }) {}
  R operator()(Args... a) const { return call_(obj_, a...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

using PieceSink = FunctionRef<void(std::string_view text, bool at_start)>;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and may rewrite) every piece; pieces become empty only to be dropped.
  virtual void Apply(std::vector<Piece>* pieces) const = 0;
  // The same split, one input piece at a time, handing each output piece to `sink`
  // (the encode hot path: no vector of pieces is built). Default: via Apply.
  virtual void Stream(std::string_view text, bool at_start, PieceSink sink) const;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-token. Characters the model cannot represent become
  // the unknown token (or are dropped when there is none).
  virtual void Tokenize(std::string_view word, std::vector<int32_t>* out) const = 0;
  [[nodiscard]] virtual int32_t vocab_size() const = 0;
  [[nodiscard]] virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  // "" when id is out of range or unassigned.
  [[nodiscard]] virtual std::string_view IdToToken(int32_t id) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the template's special tokens around one sequence.
  virtual void Process(std::vector<int32_t>* ids) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (HF's decode_chain); the result is joined.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// Factories from tokenizer.json objects. A JSON null yields nullptr (stage absent).
// Errors: kInvalidArgument naming the unsupported type or the malformed field.
// `token_to_id` resolves template token names for post-processors.
Result<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& j);
Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& j);
Result<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& j);
Result<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& j);

}  // namespace tide::tok
