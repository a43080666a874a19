#include "formats/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "base/rng.h"

namespace tide {
namespace {

std::vector<float> RandomFloats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.Uniform(-3.0f, 3.0f);
  return v;
}

// Encodes f32 values as `t` (row by row, `row` values each).
std::vector<uint8_t> Encode(DType t, const std::vector<float>& v, int64_t row) {
  std::vector<uint8_t> out(DTypeBytes(t, v.size()));
  const uint64_t row_bytes = DTypeBytes(t, static_cast<uint64_t>(row));
  for (size_t r = 0; r * static_cast<size_t>(row) < v.size(); ++r) {
    QuantizeRow(t, v.data() + r * static_cast<size_t>(row), out.data() + r * row_bytes, row);
  }
  return out;
}

std::string TempPath(const std::string& leaf) {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(testing::TempDir()) /
                              ("tide_gguf_" + std::to_string(::getpid()) + "_" + info->name());
  std::filesystem::create_directories(dir);
  return (dir / leaf).string();
}

// Little-endian byte builder for files our writer cannot produce (every value width).
struct Bytes {
  std::string s;
  template <typename T>
  Bytes& Put(T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& Str(const std::string& x) {
    Put<uint64_t>(x.size());
    s += x;
    return *this;
  }
  // Header for a file of 0 tensors and `n_kv` entries.
  static Bytes Header(uint64_t n_kv, uint64_t n_tensors = 0) {
    Bytes b;
    b.s = "GGUF";
    b.Put<uint32_t>(3).Put<uint64_t>(n_tensors).Put<uint64_t>(n_kv);
    return b;
  }
};

template <typename T>
void PatchAt(std::string* s, size_t pos, T v) {
  ASSERT_LE(pos + sizeof v, s->size());
  std::memcpy(s->data() + pos, &v, sizeof v);
}

// Where the fields of one tensor-info record sit in a file.
struct InfoAt {
  size_t n_dims, ne, type, offset;
};
InfoAt FindInfo(const std::string& file, const std::string& name, int n_dims) {
  std::string needle(8, '\0');
  const uint64_t len = name.size();
  std::memcpy(needle.data(), &len, 8);
  needle += name;
  const size_t at = file.rfind(needle);
  EXPECT_NE(at, std::string::npos) << name;
  const size_t p = at + needle.size();
  const size_t ne = p + 4;
  const size_t type = ne + 8 * static_cast<size_t>(n_dims);
  return {p, ne, type, type + 4};
}

Result<std::unique_ptr<GgufFile>> ParseBytes(const std::string& b) {
  return GgufFile::Parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "model.gguf");
}

void ExpectError(const std::string& bytes, StatusCode code, const std::string& needle) {
  auto r = ParseBytes(bytes);
  ASSERT_FALSE(r.ok()) << "parsed, expected error containing: " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message: " << r.status().message() << "\nwanted: " << needle;
}

GgufValue Str(const std::string& s) {
  GgufValue v;
  v.kind = GgufValue::Kind::kString;
  v.s = s;
  return v;
}
GgufValue UInt(uint64_t u) {
  GgufValue v;
  v.kind = GgufValue::Kind::kUInt;
  v.u = u;
  return v;
}
GgufValue Int(int64_t i) {
  GgufValue v;
  v.kind = GgufValue::Kind::kInt;
  v.i = i;
  return v;
}
GgufValue Float(double f) {
  GgufValue v;
  v.kind = GgufValue::Kind::kFloat;
  v.f = f;
  return v;
}
GgufValue Array(std::vector<GgufValue> a) {
  GgufValue v;
  v.kind = GgufValue::Kind::kArray;
  v.array = std::move(a);
  return v;
}

// A small valid file: two F32 tensors "t.a" [2, 3] and "t.b" [4, 8] (offsets 0 and 32)
// and two metadata keys.
std::string SmallFile() {
  static const std::vector<float> a = RandomFloats(6, 1);
  static const std::vector<float> b = RandomFloats(32, 2);
  auto bytes = EncodeGguf({{"general.architecture", Str("llama")}, {"general.aaa", UInt(7)}},
                          {{"t.a", DType::kF32, {2, 3}, a.data()}, {"t.b", DType::kF32, {4, 8}, b.data()}});
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return *bytes;
}

TEST(GgufTest, RoundTripsEveryDTypeWithValues) {
  const std::vector<float> f32 = RandomFloats(3 * 5, 10);
  const std::vector<float> f16_src = RandomFloats(4 * 6, 11);
  const std::vector<float> bf16_src = RandomFloats(2 * 8, 12);
  const std::vector<float> q8_src = RandomFloats(3 * 64, 13);
  const std::vector<float> q4_src = RandomFloats(2 * 32, 14);
  const auto f16 = Encode(DType::kF16, f16_src, 6);
  const auto bf16 = Encode(DType::kBF16, bf16_src, 8);
  const auto q8 = Encode(DType::kQ8_0, q8_src, 64);
  const auto q4 = Encode(DType::kQ4_0, q4_src, 32);
  const std::string path = TempPath("model.gguf");
  ASSERT_TRUE(WriteGguf(path, {{"general.architecture", Str("llama")}, {"llama.block_count", UInt(5)}},
                        {{"t.f32", DType::kF32, {3, 5}, f32.data()},
                         {"t.f16", DType::kF16, {4, 6}, f16.data()},
                         {"t.bf16", DType::kBF16, {2, 8}, bf16.data()},
                         {"t.q8_0", DType::kQ8_0, {3, 64}, q8.data()},
                         {"t.q4_0", DType::kQ4_0, {1, 2, 32}, q4.data()}})
                  .ok());
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const GgufFile& g = **file;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.path(), path);
  EXPECT_EQ(g.GetString("general.architecture"), "llama");
  EXPECT_EQ(g.GetInt("llama.block_count"), 5);
  EXPECT_TRUE(g.unsupported_tensors().empty());
  const auto& ts = g.tensors();
  ASSERT_EQ(ts.size(), 5u);

  struct Want {
    const char* name;
    DType dtype;
    Shape shape;
    const std::vector<float>* src;
    const void* bytes;
    float tol;
  };
  const Want want[] = {
      {"t.f32", DType::kF32, {3, 5}, &f32, f32.data(), 0.0f},
      {"t.f16", DType::kF16, {4, 6}, &f16_src, f16.data(), 3e-3f},
      {"t.bf16", DType::kBF16, {2, 8}, &bf16_src, bf16.data(), 2e-2f},
      {"t.q8_0", DType::kQ8_0, {3, 64}, &q8_src, q8.data(), 3e-2f},
      {"t.q4_0", DType::kQ4_0, {1, 2, 32}, &q4_src, q4.data(), 0.45f},
  };
  for (size_t k = 0; k < 5; ++k) {
    const TensorInfo& t = ts[k];
    const Want& w = want[k];
    SCOPED_TRACE(w.name);
    EXPECT_EQ(t.name, w.name);
    EXPECT_EQ(t.dtype, w.dtype);
    EXPECT_EQ(t.shape, w.shape);
    EXPECT_EQ(t.nbytes, DTypeBytes(w.dtype, w.src->size()));
    EXPECT_EQ(t.file, path);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << "data section and offsets are 32-aligned";
    EXPECT_EQ(std::memcmp(t.data, w.bytes, t.nbytes), 0);
    std::vector<float> back(w.src->size());
    DequantizeRow(t.dtype, t.data, back.data(), static_cast<int64_t>(back.size()));
    for (size_t i = 0; i < back.size(); ++i) EXPECT_NEAR(back[i], (*w.src)[i], w.tol) << i;
  }

  // On disk ne[] is fastest-varying first: [3, 5] is stored as ne = {5, 3}.
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  const InfoAt at = FindInfo(*bytes, "t.f32", 2);
  uint64_t ne[2];
  std::memcpy(ne, bytes->data() + at.ne, 16);
  EXPECT_EQ(ne[0], 5u);
  EXPECT_EQ(ne[1], 3u);
}

TEST(GgufTest, EncodeMatchesWrittenFile) {
  const std::string path = TempPath("enc.gguf");
  const std::vector<float> a = RandomFloats(6, 1);
  const std::vector<float> b = RandomFloats(32, 2);
  const std::vector<std::pair<std::string, GgufValue>> meta = {{"general.architecture", Str("llama")}};
  const std::vector<GgufWriteTensor> tensors = {{"t.a", DType::kF32, {2, 3}, a.data()},
                                                {"t.b", DType::kF32, {4, 8}, b.data()}};
  ASSERT_TRUE(WriteGguf(path, meta, tensors).ok());
  auto on_disk = ReadFileToString(path);
  auto encoded = EncodeGguf(meta, tensors);
  ASSERT_TRUE(on_disk.ok());
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(*on_disk, *encoded);
}

TEST(GgufTest, ReadsEveryMetadataValueType) {
  Bytes b = Bytes::Header(16);
  b.Str("k.u8").Put<uint32_t>(0).Put<uint8_t>(200);
  b.Str("k.i8").Put<uint32_t>(1).Put<int8_t>(-100);
  b.Str("k.u16").Put<uint32_t>(2).Put<uint16_t>(60000);
  b.Str("k.i16").Put<uint32_t>(3).Put<int16_t>(-30000);
  b.Str("k.u32").Put<uint32_t>(4).Put<uint32_t>(4000000000u);
  b.Str("k.i32").Put<uint32_t>(5).Put<int32_t>(-2000000000);
  b.Str("k.f32").Put<uint32_t>(6).Put<float>(1.5f);
  b.Str("k.bool").Put<uint32_t>(7).Put<uint8_t>(1);
  b.Str("k.str").Put<uint32_t>(8).Str("héllo");
  b.Str("k.arr_u8").Put<uint32_t>(9).Put<uint32_t>(0).Put<uint64_t>(3).Put<uint8_t>(1).Put<uint8_t>(2).Put<uint8_t>(3);
  b.Str("k.arr_str").Put<uint32_t>(9).Put<uint32_t>(8).Put<uint64_t>(2).Str("a").Str("");
  b.Str("k.nested").Put<uint32_t>(9).Put<uint32_t>(9).Put<uint64_t>(2);
  b.Put<uint32_t>(11).Put<uint64_t>(1).Put<int64_t>(-7);      // [i64: -7]
  b.Put<uint32_t>(12).Put<uint64_t>(2).Put<double>(0.1).Put<double>(-2.0);  // [f64: 0.1, -2]
  b.Str("k.u64").Put<uint32_t>(10).Put<uint64_t>(~uint64_t{0});
  b.Str("k.i64").Put<uint32_t>(11).Put<int64_t>(INT64_MIN);
  b.Str("k.f64").Put<uint32_t>(12).Put<double>(3.25e300);
  b.Str("k.false").Put<uint32_t>(7).Put<uint8_t>(0);
  auto r = ParseBytes(b.s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& g = **r;
  EXPECT_EQ(g.metadata().size(), 16u);
  EXPECT_TRUE(g.tensors().empty());
  EXPECT_EQ(g.Find("k.u8")->kind, GgufValue::Kind::kUInt);
  EXPECT_EQ(g.Find("k.u8")->u, 200u);
  EXPECT_EQ(g.Find("k.i8")->kind, GgufValue::Kind::kInt);
  EXPECT_EQ(g.GetInt("k.i8"), -100);
  EXPECT_EQ(g.GetInt("k.u16"), 60000);
  EXPECT_EQ(g.GetInt("k.i16"), -30000);
  EXPECT_EQ(g.GetInt("k.u32"), 4000000000LL);
  EXPECT_EQ(g.GetInt("k.i32"), -2000000000);
  EXPECT_EQ(g.GetFloat("k.f32"), 1.5);
  EXPECT_EQ(g.GetBool("k.bool"), true);
  EXPECT_EQ(g.GetBool("k.false"), false);
  EXPECT_EQ(g.GetString("k.str"), "héllo");
  EXPECT_EQ(g.Find("k.u64")->u, ~uint64_t{0});
  EXPECT_EQ(g.GetInt("k.u64"), std::nullopt) << "does not fit int64";
  EXPECT_EQ(g.GetInt("k.i64"), INT64_MIN);
  EXPECT_EQ(g.GetFloat("k.f64"), 3.25e300);
  EXPECT_EQ(g.GetFloat("k.i32"), -2000000000.0) << "GetFloat takes ints too";
  const auto* arr = g.GetArray("k.arr_u8");
  ASSERT_NE(arr, nullptr);
  ASSERT_EQ(arr->size(), 3u);
  EXPECT_EQ((*arr)[2].u, 3u);
  const auto* strs = g.GetArray("k.arr_str");
  ASSERT_NE(strs, nullptr);
  ASSERT_EQ(strs->size(), 2u);
  EXPECT_EQ((*strs)[0].s, "a");
  EXPECT_EQ((*strs)[1].s, "");
  const auto* nested = g.GetArray("k.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->size(), 2u);
  ASSERT_EQ((*nested)[0].array.size(), 1u);
  EXPECT_EQ((*nested)[0].array[0].i, -7);
  ASSERT_EQ((*nested)[1].array.size(), 2u);
  EXPECT_EQ((*nested)[1].array[0].f, 0.1);
  EXPECT_EQ((*nested)[1].array[1].f, -2.0);
  // Typed look-ups refuse other kinds and absent keys.
  EXPECT_EQ(g.GetString("k.u8"), std::nullopt);
  EXPECT_EQ(g.GetInt("k.str"), std::nullopt);
  EXPECT_EQ(g.GetBool("k.u8"), std::nullopt);
  EXPECT_EQ(g.GetFloat("k.bool"), std::nullopt);
  EXPECT_EQ(g.GetArray("k.str"), nullptr);
  EXPECT_EQ(g.Find("absent"), nullptr);
  EXPECT_EQ(g.GetInt("absent"), std::nullopt);
}

TEST(GgufTest, WriterKeepsMetadataValuesExact) {
  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"u.small", UInt(7)},
      {"u.big", UInt(uint64_t{1} << 40)},
      {"i.neg", Int(-5)},
      {"i.big", Int(-(int64_t{1} << 40))},
      {"f.exact", Float(0.5)},
      {"f.inexact", Float(0.1)},
      {"b", GgufValue{GgufValue::Kind::kBool, 0, 0, 0, true, {}, {}}},
      {"s", Str("text")},
      {"a.mixed_width", Array({UInt(1), UInt(uint64_t{1} << 40)})},
      {"a.nested", Array({Array({Str("x")}), Array({})})},
      {"a.empty", Array({})},
  };
  auto bytes = EncodeGguf(meta, {});
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto r = ParseBytes(*bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& g = **r;
  EXPECT_EQ(g.Find("u.big")->u, uint64_t{1} << 40);
  EXPECT_EQ(g.GetInt("u.small"), 7);
  EXPECT_EQ(g.GetInt("i.neg"), -5);
  EXPECT_EQ(g.GetInt("i.big"), -(int64_t{1} << 40));
  EXPECT_EQ(g.GetFloat("f.exact"), 0.5);
  EXPECT_EQ(g.GetFloat("f.inexact"), 0.1);
  EXPECT_EQ(g.GetBool("b"), true);
  EXPECT_EQ(g.GetString("s"), "text");
  ASSERT_EQ(g.GetArray("a.mixed_width")->size(), 2u);
  EXPECT_EQ((*g.GetArray("a.mixed_width"))[1].u, uint64_t{1} << 40);
  EXPECT_EQ((*g.GetArray("a.nested"))[0].array[0].s, "x");
  EXPECT_TRUE((*g.GetArray("a.nested"))[1].array.empty());
  EXPECT_TRUE(g.GetArray("a.empty")->empty());
  EXPECT_EQ(EncodeGguf({{"a", Array({UInt(1), Str("x")})}}, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeGguf({{"a", UInt(1)}, {"a", UInt(2)}}, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(GgufTest, AcceptsVersion2) {
  std::string b = SmallFile();
  PatchAt<uint32_t>(&b, 4, 2);
  auto r = ParseBytes(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->version(), 2u);
  EXPECT_EQ((*r)->tensors().size(), 2u);
}

TEST(GgufTest, RefusesVersion1AndUnknownVersions) {
  std::string b = SmallFile();
  PatchAt<uint32_t>(&b, 4, 1);
  ExpectError(b, StatusCode::kUnimplemented, "GGUF v1 is not supported");
  PatchAt<uint32_t>(&b, 4, 4);
  ExpectError(b, StatusCode::kUnimplemented, "version 4 is not supported");
  PatchAt<uint32_t>(&b, 4, 0x03000000);
  ExpectError(b, StatusCode::kUnimplemented, "big-endian");
}

TEST(GgufTest, RejectsBadMagic) {
  std::string b = SmallFile();
  b[0] = 'X';
  ExpectError(b, StatusCode::kDataLoss, "model.gguf: not a GGUF file");
  ExpectError("", StatusCode::kDataLoss, "not a GGUF file");
  ExpectError("GGU", StatusCode::kDataLoss, "not a GGUF file");
}

TEST(GgufTest, RejectsEveryTruncation) {
  const std::string b = SmallFile();
  for (size_t n = 0; n < b.size(); ++n) {
    auto r = ParseBytes(b.substr(0, n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
  }
}

TEST(GgufTest, RejectsAbsurdCounts) {
  std::string b = SmallFile();
  PatchAt<uint64_t>(&b, 8, uint64_t{1} << 40);
  ExpectError(b, StatusCode::kDataLoss, "more than the");
  b = SmallFile();
  PatchAt<uint64_t>(&b, 16, ~uint64_t{0});
  ExpectError(b, StatusCode::kDataLoss, "metadata entries, more than the");
  b = SmallFile();
  PatchAt<uint64_t>(&b, 8, ~uint64_t{0} / 24 + 1);
  PatchAt<uint64_t>(&b, 16, ~uint64_t{0} / 13 + 1);
  ExpectError(b, StatusCode::kDataLoss, "more than the");
}

TEST(GgufTest, RejectsStringLengthsPastTheEnd) {
  std::string b = SmallFile();
  PatchAt<uint64_t>(&b, 24, ~uint64_t{0});  // first key's length
  ExpectError(b, StatusCode::kDataLoss, "runs past the end of the file");
  b = SmallFile();
  const InfoAt at = FindInfo(b, "t.a", 2);
  PatchAt<uint64_t>(&b, at.n_dims - 3 - 8, uint64_t{1} << 33);  // the name's length
  ExpectError(b, StatusCode::kDataLoss, "length 8589934592 of a tensor name runs past the end");
}

TEST(GgufTest, RejectsBadValues) {
  Bytes arr = Bytes::Header(1);
  arr.Str("k").Put<uint32_t>(9).Put<uint32_t>(10).Put<uint64_t>(uint64_t{1} << 50);
  ExpectError(arr.s, StatusCode::kDataLoss, "metadata 'k' claims 1125899906842624 elements");
  Bytes type = Bytes::Header(1);
  type.Str("k").Put<uint32_t>(13).Put<uint32_t>(0);
  ExpectError(type.s, StatusCode::kDataLoss, "metadata 'k' has unknown value type 13");
  Bytes elem = Bytes::Header(1);
  elem.Str("k").Put<uint32_t>(9).Put<uint32_t>(77).Put<uint64_t>(0);
  ExpectError(elem.s, StatusCode::kDataLoss, "unknown element type 77");
  Bytes boolean = Bytes::Header(1);
  boolean.Str("k").Put<uint32_t>(7).Put<uint8_t>(2);
  ExpectError(boolean.s, StatusCode::kDataLoss, "bool of value 2");
  Bytes deep = Bytes::Header(1);
  deep.Str("k").Put<uint32_t>(9);
  for (int i = 0; i < 12; ++i) deep.Put<uint32_t>(9).Put<uint64_t>(1);
  deep.Put<uint32_t>(0).Put<uint64_t>(0);
  ExpectError(deep.s, StatusCode::kDataLoss, "nests arrays deeper than 8");
}

TEST(GgufTest, RejectsDuplicateKeysAndTensorNames) {
  Bytes dup = Bytes::Header(2);
  dup.Str("general.aaa").Put<uint32_t>(4).Put<uint32_t>(1).Str("general.aaa").Put<uint32_t>(4).Put<uint32_t>(2);
  ExpectError(dup.s, StatusCode::kDataLoss, "metadata key 'general.aaa' appears twice");
  std::string b = SmallFile();
  const size_t name = b.rfind("t.b");
  b.replace(name, 3, "t.a");
  ExpectError(b, StatusCode::kDataLoss, "tensor 't.a' appears twice");
}

TEST(GgufTest, HonoursAndChecksAlignment) {
  const std::vector<float> a = RandomFloats(6, 1);
  const std::vector<float> c = RandomFloats(8, 2);
  auto bytes = EncodeGguf({{"general.alignment", UInt(64)}},
                          {{"t.a", DType::kF32, {6}, a.data()}, {"t.c", DType::kF32, {8}, c.data()}});
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto r = ParseBytes(*bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto* base = reinterpret_cast<const uint8_t*>(bytes->data());
  EXPECT_EQ(((*r)->tensors()[0].data - base) % 64, 0);
  EXPECT_EQ((*r)->tensors()[1].data - (*r)->tensors()[0].data, 64);
  EXPECT_EQ(std::memcmp((*r)->tensors()[1].data, c.data(), 32), 0);

  // The value sits right after the key "general.alignment" and its type (u32).
  const size_t value = bytes->find("general.alignment") + 17 + 4;
  for (uint32_t bad : {0u, 48u, 3u}) {
    std::string b = *bytes;
    PatchAt<uint32_t>(&b, value, bad);
    ExpectError(b, StatusCode::kDataLoss, "general.alignment must be a power of two");
  }
  std::string as_float = *bytes;
  PatchAt<uint32_t>(&as_float, value - 4, 6);  // f32 type id
  PatchAt<float>(&as_float, value, 64.0f);
  ExpectError(as_float, StatusCode::kDataLoss, "general.alignment must be a power of two");
  EXPECT_EQ(EncodeGguf({{"general.alignment", UInt(48)}}, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(GgufTest, RejectsMisalignedAndOutOfRangeOffsets) {
  std::string b = SmallFile();
  const InfoAt at = FindInfo(b, "t.b", 2);
  PatchAt<uint64_t>(&b, at.offset, 36);
  ExpectError(b, StatusCode::kDataLoss, "tensor 't.b' at offset 36 is not aligned to 32 bytes");
  PatchAt<uint64_t>(&b, at.offset, uint64_t{1} << 40);
  ExpectError(b, StatusCode::kDataLoss, "tensor 't.b' at offset 1099511627776 with 128 bytes runs past the end");
  PatchAt<uint64_t>(&b, at.offset, 64);  // 64 + 128 > 160 bytes of data
  ExpectError(b, StatusCode::kDataLoss, "runs past the end of the data section (160 bytes)");
  PatchAt<uint64_t>(&b, at.offset, ~uint64_t{0} - 31);  // aligned, and offset + size wraps
  ExpectError(b, StatusCode::kDataLoss, "runs past the end");
}

TEST(GgufTest, RejectsOverlappingTensors) {
  std::string b = SmallFile();
  PatchAt<uint64_t>(&b, FindInfo(b, "t.b", 2).offset, 0);
  PatchAt<uint64_t>(&b, FindInfo(b, "t.a", 2).offset, 32);
  ExpectError(b, StatusCode::kDataLoss, "tensors 't.b' (offset 0) and 't.a' (offset 32) overlap");
}

TEST(GgufTest, RejectsBadShapes) {
  std::string b = SmallFile();
  const InfoAt at = FindInfo(b, "t.a", 2);
  PatchAt<uint32_t>(&b, at.n_dims, 5);
  ExpectError(b, StatusCode::kDataLoss, "tensor 't.a' has 5 dims (GGUF allows at most 4)");
  b = SmallFile();
  PatchAt<uint64_t>(&b, at.ne, uint64_t{1} << 40);
  PatchAt<uint64_t>(&b, at.ne + 8, uint64_t{1} << 40);
  ExpectError(b, StatusCode::kDataLoss, "tensor 't.a' has more elements than fit in 63 bits");
  b = SmallFile();
  PatchAt<uint64_t>(&b, at.ne, uint64_t{1} << 63);
  ExpectError(b, StatusCode::kDataLoss, "more elements than fit in 63 bits");
  // Found by the fuzzer: ne = {0, 2^40, 2^40} has numel 0, but the row-major Shape
  // [2^40, 2^40, 0] overflowed in Shape::numel(). Such shapes are refused.
  auto empty = EncodeGguf({}, {{"t.z", DType::kF32, {1, 1, 0}, nullptr}});
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  ASSERT_TRUE(ParseBytes(*empty).ok());
  const InfoAt z = FindInfo(*empty, "t.z", 3);
  PatchAt<uint64_t>(&*empty, z.ne + 8, uint64_t{1} << 40);
  PatchAt<uint64_t>(&*empty, z.ne + 16, uint64_t{1} << 40);
  ExpectError(*empty, StatusCode::kDataLoss, "tensor 't.z' has more elements than fit in 63 bits");
}

TEST(GgufTest, RejectsQuantisedRowsNotAMultipleOfTheBlock) {
  const auto q8 = Encode(DType::kQ8_0, RandomFloats(2 * 64, 3), 64);
  auto bytes = EncodeGguf({}, {{"t.q", DType::kQ8_0, {2, 64}, q8.data()}});
  ASSERT_TRUE(bytes.ok());
  PatchAt<uint64_t>(&*bytes, FindInfo(*bytes, "t.q", 2).ne, 48);
  ExpectError(*bytes, StatusCode::kDataLoss, "rows of 48 values, not a multiple of the block size 32");
}

TEST(GgufTest, KeepsUnsupportedTypesAside) {
  std::string b = SmallFile();
  PatchAt<uint32_t>(&b, FindInfo(b, "t.b", 2).type, 12);  // Q4_K
  auto r = ParseBytes(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)->tensors().size(), 1u);
  EXPECT_EQ((*r)->tensors()[0].name, "t.a");
  EXPECT_EQ((*r)->unsupported_tensors().at("t.b"), 12u);
  EXPECT_EQ(GgmlTypeName(12), "Q4_K");
  EXPECT_EQ(GgmlTypeName(30), "BF16");
  EXPECT_EQ(GgmlTypeName(4), "unknown");
  EXPECT_EQ(GgmlTypeName(100000), "unknown");
  // Unknown extent still may not start inside another tensor, nor at the end of the data.
  PatchAt<uint32_t>(&b, FindInfo(b, "t.a", 2).type, 999);
  PatchAt<uint64_t>(&b, FindInfo(b, "t.b", 2).offset, 0);
  ExpectError(b, StatusCode::kDataLoss, "overlap");
  PatchAt<uint64_t>(&b, FindInfo(b, "t.b", 2).offset, 160);
  ExpectError(b, StatusCode::kDataLoss, "runs past the end");
}

TEST(GgufTest, WriterRefusesWhatItCannotWrite) {
  const std::vector<float> v = RandomFloats(64, 4);
  EXPECT_EQ(EncodeGguf({}, {{"i", DType::kI32, {4}, v.data()}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeGguf({}, {{"q", DType::kQ8_0, {2, 16}, v.data()}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeGguf({}, {{"a", DType::kF32, {4}, v.data()}, {"a", DType::kF32, {4}, v.data()}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeGguf({}, {{"a", DType::kF32, {}, v.data()}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(WriteGguf("/nonexistent-dir/x.gguf", {}, {}).ok());
}

TEST(GgufTest, FuzzSeedsParse) {
  // The committed seeds (made by formats_fuzz_seeds) must stay valid as the parser changes.
  const std::filesystem::path dir = "tests/fuzz/gguf_fuzz";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " not found (run from the repo root)";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto file = GgufFile::Open(entry.path().string());
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_LT(entry.file_size(), 4096u);
    ++n;
  }
  EXPECT_GE(n, 3);
}

TEST(GgufTest, SharedStories260K) {
  const std::string path = "../shared/models/stories260K/stories260K.gguf";
  if (!FileExists(path)) GTEST_SKIP() << path << " not found (shared/ is not beside the repo)";
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const GgufFile& g = **file;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.GetString("general.architecture"), "llama");
  EXPECT_EQ(g.GetInt("llama.block_count"), 5);
  EXPECT_EQ(g.GetInt("llama.embedding_length"), 64);
  const auto* tokens = g.GetArray("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1].s, "<s>");
  EXPECT_TRUE(g.unsupported_tensors().empty());
  const TensorInfo* embd = nullptr;
  for (const auto& t : g.tensors())
    if (t.name == "token_embd.weight") embd = &t;
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dtype, DType::kF32);
  EXPECT_EQ(embd->shape, (Shape{512, 64}));
  double sum_abs = 0;
  for (int64_t i = 0; i < embd->shape.numel(); ++i) {
    const float v = embd->view().as<const float>()[i];
    ASSERT_TRUE(std::isfinite(v));
    sum_abs += std::abs(v);
  }
  EXPECT_GT(sum_abs, 1.0);
}

}  // namespace
}  // namespace tide
