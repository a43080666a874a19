#include "formats/safetensors.h"

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

std::vector<uint16_t> ToHalf(const std::vector<float>& v, bool bf16) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16 ? F32ToBf16(v[i]) : F32ToF16(v[i]);
  return out;
}

std::string TempPath(const std::string& leaf) {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(testing::TempDir()) /
                              ("tide_st_" + std::to_string(::getpid()) + "_" + info->name());
  std::filesystem::create_directories(dir);
  return (dir / leaf).string();
}

Result<std::vector<TensorInfo>> ParseBytes(const std::string& bytes, std::map<std::string, std::string>* meta = nullptr) {
  return SafetensorsFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "model.safetensors",
                                meta);
}

// A valid two-tensor file: x.weight F32 [2, 2] then y.bias F32 [3].
std::string TwoTensorFile() {
  static const std::vector<float> x = RandomFloats(4, 1);
  static const std::vector<float> y = RandomFloats(3, 2);
  auto bytes = EncodeSafetensors({{"x.weight", DType::kF32, {2, 2}, x.data()}, {"y.bias", DType::kF32, {3}, y.data()}});
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return *bytes;
}

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + data;
}

// Rewrites the JSON header of a file (substring `from` -> `to`), fixing the length
// prefix, so that tests start from a file our writer made and corrupt one field.
std::string EditHeader(const std::string& file, const std::string& from, const std::string& to) {
  uint64_t n;
  std::memcpy(&n, file.data(), 8);
  std::string json = file.substr(8, n);
  const size_t at = json.find(from);
  EXPECT_NE(at, std::string::npos) << "'" << from << "' not in " << json;
  if (at != std::string::npos) json.replace(at, from.size(), to);
  return WithHeader(json, file.substr(8 + n));
}

void ExpectError(const std::string& bytes, StatusCode code, const std::string& needle) {
  auto r = ParseBytes(bytes);
  ASSERT_FALSE(r.ok()) << "parsed, expected error containing: " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message: " << r.status().message() << "\nwanted: " << needle;
}

TEST(SafetensorsTest, RoundTripsEveryDTypeWithValues) {
  const std::vector<float> f32 = RandomFloats(6 * 5, 10);
  const std::vector<float> src16 = RandomFloats(4 * 3 * 2, 11);
  const std::vector<uint16_t> f16 = ToHalf(src16, /*bf16=*/false);
  const std::vector<uint16_t> bf16 = ToHalf(src16, /*bf16=*/true);
  const float scalar = 0.625f;
  const std::string path = TempPath("model.safetensors");
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"a.f32", DType::kF32, {6, 5}, f32.data()},
                                {"b.f16", DType::kF16, {4, 3, 2}, f16.data()},
                                {"c.bf16", DType::kBF16, {2, 3, 2, 2}, bf16.data()},
                                {"d.scalar", DType::kF32, {}, &scalar}},
                               {{"format", "pt"}, {"note", "é unicode"}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const auto& ts = (*file)->tensors();
  ASSERT_EQ(ts.size(), 4u);
  // tensors() is in data-offset order, i.e. the order written.
  EXPECT_EQ(ts[0].name, "a.f32");
  EXPECT_EQ(ts[0].dtype, DType::kF32);
  EXPECT_EQ(ts[0].shape, (Shape{6, 5}));
  EXPECT_EQ(ts[0].nbytes, 120u);
  EXPECT_EQ(ts[0].file, path);
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(ts[0].view().as<const float>()[i], f32[i]) << i;

  EXPECT_EQ(ts[1].name, "b.f16");
  EXPECT_EQ(ts[1].dtype, DType::kF16);
  EXPECT_EQ(ts[1].shape, (Shape{4, 3, 2}));
  std::vector<float> back(src16.size());
  DequantizeRow(DType::kF16, ts[1].data, back.data(), static_cast<int64_t>(back.size()));
  for (size_t i = 0; i < back.size(); ++i) EXPECT_NEAR(back[i], src16[i], 3e-3f) << i;

  EXPECT_EQ(ts[2].name, "c.bf16");
  EXPECT_EQ(ts[2].dtype, DType::kBF16);
  EXPECT_EQ(ts[2].shape, (Shape{2, 3, 2, 2}));
  DequantizeRow(DType::kBF16, ts[2].data, back.data(), static_cast<int64_t>(back.size()));
  for (size_t i = 0; i < back.size(); ++i) EXPECT_NEAR(back[i], src16[i], 2e-2f) << i;
  EXPECT_EQ(std::memcmp(ts[2].data, bf16.data(), bf16.size() * 2), 0);

  EXPECT_EQ(ts[3].shape.ndim, 0);
  EXPECT_EQ(ts[3].nbytes, 4u);
  float got;
  std::memcpy(&got, ts[3].data, 4);
  EXPECT_EQ(got, scalar);

  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->metadata().at("note"), "é unicode");
  EXPECT_EQ((*file)->path(), path);
}

TEST(SafetensorsTest, ParsePointsIntoTheInputWithoutCopying) {
  const std::string bytes = TwoTensorFile();
  auto r = ParseBytes(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "writer pads the header so data starts aligned";
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data()) + 8 + n;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].data, base);
  EXPECT_EQ((*r)[1].data, base + 16);
  EXPECT_EQ((*r)[1].file, "model.safetensors");
}

TEST(SafetensorsTest, EncodeMatchesWrittenFile) {
  const std::vector<float> v = RandomFloats(8, 3);
  const std::vector<SafetensorsWriteEntry> entries = {{"w", DType::kF32, {2, 4}, v.data()}};
  const std::string path = TempPath("enc.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, entries, {{"k", "v"}}).ok());
  auto encoded = EncodeSafetensors(entries, {{"k", "v"}});
  ASSERT_TRUE(encoded.ok());
  auto on_disk = ReadFileToString(path);
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(*on_disk, *encoded);
}

TEST(SafetensorsTest, ZeroSizedTensorsAndEmptyHeaderAreFine) {
  const std::vector<float> v = RandomFloats(2, 4);
  auto bytes = EncodeSafetensors({{"empty", DType::kF32, {0, 7}, nullptr}, {"w", DType::kF32, {2}, v.data()}});
  ASSERT_TRUE(bytes.ok());
  auto r = ParseBytes(*bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 2u);
  auto empty = ParseBytes(WithHeader("{}", ""));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(SafetensorsTest, OpenMissingFileIsNotFound) {
  auto r = SafetensorsFile::Open(TempPath("nope.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

// ---- hostile files ------------------------------------------------------------------

TEST(SafetensorsTest, RejectsShortFiles) {
  for (size_t n = 0; n < 8; ++n) ExpectError(std::string(n, '\0'), StatusCode::kDataLoss, "8-byte header length");
}

TEST(SafetensorsTest, RejectsEveryTruncation) {
  const std::string bytes = TwoTensorFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = ParseBytes(bytes.substr(0, n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
  }
}

TEST(SafetensorsTest, RejectsHeaderLengthPastEnd) {
  std::string bytes = TwoTensorFile();
  const uint64_t n = bytes.size() - 7;
  std::memcpy(bytes.data(), &n, 8);
  ExpectError(bytes, StatusCode::kDataLoss, "runs past the end of the file");
}

TEST(SafetensorsTest, RejectsHeaderOver100MB) {
  std::string bytes = TwoTensorFile();
  const uint64_t n = 100'000'001;
  std::memcpy(bytes.data(), &n, 8);
  ExpectError(bytes, StatusCode::kDataLoss, "exceeds the 100 MB limit");
  const uint64_t huge = ~uint64_t{0};
  std::memcpy(bytes.data(), &huge, 8);
  ExpectError(bytes, StatusCode::kDataLoss, "exceeds the 100 MB limit");
}

TEST(SafetensorsTest, RejectsHeaderThatIsNotAJsonObject) {
  ExpectError(WithHeader("[1, 2]", ""), StatusCode::kDataLoss, "not a JSON object");
  ExpectError(WithHeader("\"x\"", ""), StatusCode::kDataLoss, "not a JSON object");
  ExpectError(WithHeader("{\"a\": ", ""), StatusCode::kDataLoss, "not valid JSON");
  ExpectError(EditHeader(TwoTensorFile(), "}}", "},,}"), StatusCode::kDataLoss, "not valid JSON");
  ExpectError(WithHeader("", ""), StatusCode::kDataLoss, "not valid JSON");
}

TEST(SafetensorsTest, RejectsBadUtf8WithItsPosition) {
  ExpectError(EditHeader(TwoTensorFile(), "x.weight", "x\xff.weight"), StatusCode::kDataLoss,
              "invalid UTF-8 byte 0xff at byte 3");
  ExpectError(EditHeader(TwoTensorFile(), "x.weight", "x\xc0\xaf.weight"), StatusCode::kDataLoss, "overlong UTF-8");
  ExpectError(EditHeader(TwoTensorFile(), "x.weight", "x\xed\xa0\x80.weight"), StatusCode::kDataLoss,
              "invalid UTF-8 code point");
  ExpectError(WithHeader("{\"\xe2\x82", ""), StatusCode::kDataLoss, "truncated UTF-8");
}

TEST(SafetensorsTest, RejectsDeepNesting) {
  ExpectError(WithHeader(std::string(100, '[') + std::string(100, ']'), ""), StatusCode::kDataLoss, "nests deeper");
}

TEST(SafetensorsTest, RejectsMalformedEntries) {
  const std::string good = TwoTensorFile();
  ExpectError(EditHeader(good, "{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", "7"),
              StatusCode::kDataLoss, "tensor 'x.weight': entry is not a JSON object");
  ExpectError(EditHeader(good, "\"dtype\":\"F32\",\"shape\":[2,2]", "\"shape\":[2,2]"), StatusCode::kDataLoss,
              "tensor 'x.weight': 'dtype' missing");
  ExpectError(EditHeader(good, "\"dtype\":\"F32\",\"shape\":[2,2]", "\"dtype\":32,\"shape\":[2,2]"),
              StatusCode::kDataLoss, "'dtype' missing or not a string");
  ExpectError(EditHeader(good, "\"shape\":[2,2]", "\"shape\":4"), StatusCode::kDataLoss, "'shape' missing");
  ExpectError(EditHeader(good, "[0,16]", "[0,16,32]"), StatusCode::kDataLoss, "'data_offsets' missing or not two");
  ExpectError(EditHeader(good, "[0,16]", "[-1,16]"), StatusCode::kDataLoss, "'data_offsets'");
  ExpectError(EditHeader(good, "[0,16]", "[0,16.0]"), StatusCode::kDataLoss, "'data_offsets'");
  ExpectError(EditHeader(good, "[0,16]", "[\"0\",16]"), StatusCode::kDataLoss, "'data_offsets'");
  ExpectError(EditHeader(good, "\"x.weight\"", "\"\""), StatusCode::kDataLoss, "empty name");
}

TEST(SafetensorsTest, RejectsBadShapes) {
  const std::string good = TwoTensorFile();
  ExpectError(EditHeader(good, "[2,2]", "[2,-2]"), StatusCode::kDataLoss, "tensor 'x.weight': shape has a negative dim");
  ExpectError(EditHeader(good, "[2,2]", "[2,2.5]"), StatusCode::kDataLoss, "not an integer");
  ExpectError(EditHeader(good, "[2,2]", "[2,\"2\"]"), StatusCode::kDataLoss, "not an integer");
  ExpectError(EditHeader(good, "[2,2]", "[4294967296,4294967296]"), StatusCode::kDataLoss, "63 bits");
  ExpectError(EditHeader(good, "[2,2]", "[18446744073709551615,2]"), StatusCode::kDataLoss, "63 bits");
  ExpectError(EditHeader(good, "[2,2]", "[4611686018427387904]"), StatusCode::kDataLoss, "more than 2^64 bytes");
  ExpectError(EditHeader(good, "[2,2]", "[1,1,1,2,2]"), StatusCode::kUnimplemented, "at most 4");
  // A zero dim makes numel 0, but the other dims must still not overflow any partial
  // product (found by the fuzzer in the GGUF twin of this rule).
  ExpectError(EditHeader(good, "[2,2]", "[0,9223372036854775808]"), StatusCode::kDataLoss, "63 bits");
  ExpectError(EditHeader(good, "[2,2]", "[4294967296,4294967296,0]"), StatusCode::kDataLoss, "63 bits");
}

TEST(SafetensorsTest, RejectsSizeMismatchNamingFileTensorAndShape) {
  ExpectError(EditHeader(TwoTensorFile(), "[0,16]", "[0,12]"), StatusCode::kDataLoss,
              "model.safetensors: tensor 'x.weight': data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16");
}

TEST(SafetensorsTest, RejectsOffsetsOutOfOrderOrRange) {
  const std::string good = TwoTensorFile();
  ExpectError(EditHeader(good, "[0,16]", "[16,0]"), StatusCode::kDataLoss, "end before they begin");
  ExpectError(EditHeader(good, "[16,28]", "[20,32]"), StatusCode::kDataLoss,
              "tensor 'y.bias': data_offsets [20, 32] run past the end of the data section (28 bytes)");
  ExpectError(EditHeader(good, "[16,28]", "[18446744073709551610,18446744073709551622]"), StatusCode::kDataLoss,
              "'data_offsets'");
}

TEST(SafetensorsTest, RejectsOverlappingTensors) {
  ExpectError(EditHeader(TwoTensorFile(), "[16,28]", "[12,24]"), StatusCode::kDataLoss,
              "tensors 'x.weight' [0, 16] and 'y.bias' [12, 24] overlap");
}

TEST(SafetensorsTest, RejectsDuplicateTensorNames) {
  ExpectError(EditHeader(TwoTensorFile(), "\"y.bias\"", "\"x.weight\""), StatusCode::kDataLoss,
              "tensor 'x.weight' appears twice");
}

TEST(SafetensorsTest, RefusesUnsupportedDTypesByName) {
  for (const char* dtype : {"F64", "I64", "F8_E4M3", "BOOL", "U8", "Q4"}) {
    ExpectError(EditHeader(TwoTensorFile(), "\"dtype\":\"F32\",\"shape\":[3]", std::string("\"dtype\":\"") + dtype +
                                                                               "\",\"shape\":[3]"),
                StatusCode::kUnimplemented, std::string("tensor 'y.bias': dtype ") + dtype + " is not supported");
  }
}

TEST(SafetensorsTest, ValidatesMetadata) {
  std::map<std::string, std::string> meta;
  auto ok = ParseBytes(EditHeader(TwoTensorFile(), "{\"x.weight\"", "{\"__metadata__\":{\"a\":\"b\"},\"x.weight\""),
                       &meta);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(meta.at("a"), "b");
  ExpectError(EditHeader(TwoTensorFile(), "{\"x.weight\"", "{\"__metadata__\":[],\"x.weight\""),
              StatusCode::kDataLoss, "__metadata__ is not a JSON object");
  ExpectError(EditHeader(TwoTensorFile(), "{\"x.weight\"", "{\"__metadata__\":{\"a\":1},\"x.weight\""),
              StatusCode::kDataLoss, "__metadata__ value for 'a' is not a string");
}

TEST(SafetensorsTest, WriterRefusesWhatItCannotWrite) {
  const std::vector<float> v = RandomFloats(32, 5);
  EXPECT_EQ(EncodeSafetensors({{"q", DType::kQ8_0, {32}, v.data()}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeSafetensors({{"a", DType::kF32, {2}, v.data()}, {"a", DType::kF32, {2}, v.data()}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeSafetensors({{"__metadata__", DType::kF32, {2}, v.data()}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeSafetensors({{"bad\xff", DType::kF32, {2}, v.data()}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeSafetensors({{"a", DType::kF32, {2}, nullptr}}).status().code(), StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, FuzzSeedsParse) {
  // The committed seeds (made by formats_fuzz_seeds) must stay valid as the parser changes.
  const std::filesystem::path dir = "tests/fuzz/safetensors_fuzz";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " not found (run from the repo root)";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto file = SafetensorsFile::Open(entry.path().string());
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_LT(entry.file_size(), 4096u);
    ++n;
  }
  EXPECT_GE(n, 3);
}

TEST(SafetensorsTest, SharedStories260K) {
  const std::string path = "../shared/models/stories260K/hf/model.safetensors";
  if (!FileExists(path)) GTEST_SKIP() << path << " not found (shared/ is not beside the repo)";
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->tensors().size(), 47u);  // 5 layers x 9 + embedding + final norm
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  const TensorInfo* embed = nullptr;
  for (const auto& t : (*file)->tensors())
    if (t.name == "model.embed_tokens.weight") embed = &t;
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->dtype, DType::kF32);
  EXPECT_EQ(embed->shape, (Shape{512, 64}));
  // Real weights: finite and not all zero.
  double sum_abs = 0;
  for (int64_t i = 0; i < embed->shape.numel(); ++i) {
    const float v = embed->view().as<const float>()[i];
    ASSERT_TRUE(std::isfinite(v));
    sum_abs += std::abs(v);
  }
  EXPECT_GT(sum_abs, 1.0);
}

}  // namespace
}  // namespace tide
