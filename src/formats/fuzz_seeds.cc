// Writes the fuzz seed corpora: small valid files made with our own writers.
//   formats_fuzz_seeds tests/fuzz   (run from the repo root; rewrites the seed files)
// Seeds are committed; rerun this only when the writers or the formats change.
#include <cstdio>
#include <string>
#include <vector>

#include "base/rng.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

namespace tide {
namespace {

std::vector<float> RandomFloats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.Uniform(-2.0f, 2.0f);
  return v;
}

std::vector<uint8_t> As(DType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(DTypeBytes(t, v.size()));
  QuantizeRow(t, v.data(), out.data(), static_cast<int64_t>(v.size()));
  return out;
}

GgufValue Val(GgufValue::Kind kind) {
  GgufValue v;
  v.kind = kind;
  return v;
}
GgufValue Str(const std::string& s) { GgufValue v = Val(GgufValue::Kind::kString); v.s = s; return v; }
GgufValue UInt(uint64_t u) { GgufValue v = Val(GgufValue::Kind::kUInt); v.u = u; return v; }
GgufValue Int(int64_t i) { GgufValue v = Val(GgufValue::Kind::kInt); v.i = i; return v; }
GgufValue Float(double f) { GgufValue v = Val(GgufValue::Kind::kFloat); v.f = f; return v; }
GgufValue Bool(bool b) { GgufValue v = Val(GgufValue::Kind::kBool); v.b = b; return v; }
GgufValue Array(std::vector<GgufValue> a) { GgufValue v = Val(GgufValue::Kind::kArray); v.array = std::move(a); return v; }

int Run(const std::string& root) {
  const auto f32 = RandomFloats(12, 1);
  const auto f16 = As(DType::kF16, RandomFloats(8, 2));
  const auto bf16 = As(DType::kBF16, RandomFloats(6, 3));
  const auto q8 = As(DType::kQ8_0, RandomFloats(64, 4));
  const auto q4 = As(DType::kQ4_0, RandomFloats(32, 5));
  const float scalar = 1.25f;
  const std::string st = root + "/safetensors_fuzz/";
  const std::string gg = root + "/gguf_fuzz/";
  std::vector<Status> results = {
      WriteSafetensors(st + "f32_two.safetensors",
                       {{"model.embed.weight", DType::kF32, {3, 2}, f32.data()},
                        {"model.norm.weight", DType::kF32, {6}, f32.data() + 6}},
                       {{"format", "pt"}}),
      WriteSafetensors(st + "half.safetensors",
                       {{"h.f16", DType::kF16, {2, 2, 2}, f16.data()}, {"h.bf16", DType::kBF16, {1, 2, 3}, bf16.data()}}),
      WriteSafetensors(st + "scalar_empty.safetensors",
                       {{"s", DType::kF32, {}, &scalar}, {"e", DType::kF32, {0, 4}, nullptr}}),
      WriteSafetensors(st + "no_tensors.safetensors", {}, {{"k", "v"}}),
      WriteGguf(gg + "f32_small.gguf",
                {{"general.architecture", Str("llama")}, {"llama.block_count", UInt(2)},
                 {"llama.rope.freq_base", Float(10000.0)}},
                {{"token_embd.weight", DType::kF32, {3, 2}, f32.data()},
                 {"output_norm.weight", DType::kF32, {6}, f32.data() + 6}}),
      WriteGguf(gg + "all_dtypes.gguf", {},
                {{"q8", DType::kQ8_0, {1, 64}, q8.data()}, {"q4", DType::kQ4_0, {32}, q4.data()},
                 {"f16", DType::kF16, {2, 4}, f16.data()}, {"bf16", DType::kBF16, {1, 1, 6}, bf16.data()}}),
      WriteGguf(gg + "metadata_aligned.gguf",
                {{"general.alignment", UInt(64)}, {"u.big", UInt(uint64_t{1} << 40)}, {"i", Int(-3)},
                 {"f", Float(0.1)}, {"b", Bool(true)},
                 {"tokens", Array({Str("<unk>"), Str("<s>"), Str("</s>")})},
                 {"nested", Array({Array({Int(1), Int(-1)}), Array({})})}},
                {{"w", DType::kF32, {4}, f32.data()}}),
      WriteGguf(gg + "metadata_only.gguf",
                {{"tokenizer.ggml.model", Str("llama")}, {"tokenizer.ggml.scores", Array({Float(0.5), Float(-1.0)})},
                 {"tokenizer.ggml.token_type", Array({Int(1), Int(3)})}},
                {}),
  };
  for (const Status& s : results) {
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace tide

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s tests/fuzz\n", argv[0]);
    return 2;
  }
  return tide::Run(argv[1]);
}
