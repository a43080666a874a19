// A bare SentencePiece tokenizer.model, run by libsentencepiece itself (so ids equal
// Python sentencepiece's). Keeps sentencepiece's headers out of the rest of tide.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tide::tok {

class SentencePieceBackend {
 public:
  // Errors: kInvalidArgument when the file is not a SentencePiece model.
  static Result<std::unique_ptr<SentencePieceBackend>> Load(const std::string& path);
  virtual ~SentencePieceBackend() = default;
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::string IdToPiece(int32_t id) const = 0;
  virtual int32_t PieceToId(std::string_view piece) const = 0;  // -1 when absent
  virtual bool IsControl(int32_t id) const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when none
  virtual int32_t eos_id() const = 0;
};

}  // namespace tide::tok
