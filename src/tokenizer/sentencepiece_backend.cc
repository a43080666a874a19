#include "tokenizer/sentencepiece_backend.h"

#include <sentencepiece_processor.h>

namespace tide::tok {
namespace {

class Backend final : public SentencePieceBackend {
 public:
  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int> ids;
    auto st = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!st.ok()) return {};
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    std::vector<int> v(ids.begin(), ids.end());
    if (!sp_.Decode(v, &out).ok()) return {};
    return out;
  }
  int32_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::string IdToPiece(int32_t id) const override { return sp_.IdToPiece(id); }
  int32_t PieceToId(std::string_view piece) const override {
    int id = sp_.PieceToId(absl::string_view(piece.data(), piece.size()));
    // PieceToId returns unk for unknown pieces; only an exact round trip counts.
    return sp_.IdToPiece(id) == piece ? id : -1;
  }
  bool IsControl(int32_t id) const override { return sp_.IsControl(id); }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }

  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

Result<std::unique_ptr<SentencePieceBackend>> SentencePieceBackend::Load(const std::string& path) {
  auto b = std::make_unique<Backend>();
  auto st = b->sp_.Load(path);
  if (!st.ok()) return InvalidArgument(path + ": not a SentencePiece model: " + st.ToString());
  return std::unique_ptr<SentencePieceBackend>(std::move(b));
}

}  // namespace tide::tok
