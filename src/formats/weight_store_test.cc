#include "formats/weight_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

// A fresh, empty folder per test.
std::string TempDir() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(testing::TempDir()) /
                              ("tide_ws_" + std::to_string(::getpid()) + "_" + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void ExpectError(const Status& st, StatusCode code, const std::vector<std::string>& needles) {
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code) << st.ToString();
  for (const auto& n : needles) EXPECT_NE(st.message().find(n), std::string::npos) << st.message() << "\nwanted: " << n;
}

class ShardedFolder : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    a_ = RandomFloats(4 * 3, 1);
    b_ = RandomFloats(5, 2);
    c_ = RandomFloats(2 * 2, 3);
    ASSERT_TRUE(WriteSafetensors(dir_ + "/model-00001-of-00002.safetensors",
                                 {{"layer.a", DType::kF32, {4, 3}, a_.data()}, {"layer.b", DType::kF32, {5}, b_.data()}})
                    .ok());
    ASSERT_TRUE(
        WriteSafetensors(dir_ + "/model-00002-of-00002.safetensors", {{"layer.c", DType::kF32, {2, 2}, c_.data()}}).ok());
  }
  void WriteIndex(const std::string& weight_map) {
    ASSERT_TRUE(WriteStringToFile(dir_ + "/model.safetensors.index.json",
                                  "{\"metadata\": {\"total_size\": 84}, \"weight_map\": {" + weight_map + "}}")
                    .ok());
  }
  static constexpr char kGoodMap[] =
      "\"layer.a\": \"model-00001-of-00002.safetensors\", \"layer.b\": \"model-00001-of-00002.safetensors\", "
      "\"layer.c\": \"model-00002-of-00002.safetensors\"";
  std::string dir_;
  std::vector<float> a_, b_, c_;
};

TEST_F(ShardedFolder, FindsEveryTensorWithItsValues) {
  WriteIndex(kGoodMap);
  auto store = WeightStore::OpenHfFolder(dir_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->tensors().size(), 3u);
  EXPECT_EQ((*store)->source(), dir_);
  EXPECT_EQ((*store)->gguf(), nullptr);
  auto a = (*store)->Get("layer.a", {4, 3});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(std::memcmp((*a)->data, a_.data(), a_.size() * 4), 0);
  EXPECT_EQ((*a)->file, dir_ + "/model-00001-of-00002.safetensors");
  const TensorInfo* c = (*store)->Find("layer.c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->file, dir_ + "/model-00002-of-00002.safetensors");
  EXPECT_EQ(c->view().as<const float>()[3], c_[3]);
  EXPECT_EQ((*store)->Find("layer.zzz"), nullptr);
}

TEST_F(ShardedFolder, SingleFileWinsOverAnIndex) {
  WriteIndex("\"layer.zzz\": \"missing.safetensors\"");
  const std::vector<float> w = RandomFloats(3, 8);
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model.safetensors", {{"w", DType::kF32, {3}, w.data()}}).ok());
  auto store = WeightStore::OpenHfFolder(dir_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->tensors().size(), 1u);
  EXPECT_NE((*store)->Find("w"), nullptr);
}

TEST_F(ShardedFolder, RejectsMissingShard) {
  WriteIndex(std::string(kGoodMap) + ", \"layer.d\": \"model-00003-of-00002.safetensors\"");
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kNotFound,
              {"model.safetensors.index.json", "shard 'model-00003-of-00002.safetensors' does not exist"});
}

TEST_F(ShardedFolder, RejectsTensorAbsentFromItsShard) {
  WriteIndex(std::string(kGoodMap) + ", \"layer.d\": \"model-00002-of-00002.safetensors\"");
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss,
              {"tensor 'layer.d' is listed in shard", "model-00002-of-00002.safetensors", "absent from it"});
}

TEST_F(ShardedFolder, RejectsTensorInTheWrongShard) {
  WriteIndex(
      "\"layer.a\": \"model-00002-of-00002.safetensors\", \"layer.b\": \"model-00001-of-00002.safetensors\", "
      "\"layer.c\": \"model-00002-of-00002.safetensors\"");
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss,
              {"tensor 'layer.a' is listed in shard", "model-00002-of-00002.safetensors but found in",
               "model-00001-of-00002.safetensors"});
}

TEST_F(ShardedFolder, RejectsTensorInTwoShards) {
  const std::vector<float> again = RandomFloats(5, 9);
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model-00002-of-00002.safetensors",
                               {{"layer.b", DType::kF32, {5}, again.data()}, {"layer.c", DType::kF32, {2, 2}, c_.data()}})
                  .ok());
  WriteIndex(kGoodMap);
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss,
              {"tensor 'layer.b' is in two shards", "model-00001-of-00002.safetensors and",
               "model-00002-of-00002.safetensors"});
}

TEST_F(ShardedFolder, RejectsBadIndexFiles) {
  ASSERT_TRUE(WriteStringToFile(dir_ + "/model.safetensors.index.json", "{\"weight_map\": [").ok());
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss, {"index.json: not valid JSON"});
  ASSERT_TRUE(WriteStringToFile(dir_ + "/model.safetensors.index.json", "{\"weight_map\": \"x\\xff\"}").ok());
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss, {"not valid JSON"});
  ASSERT_TRUE(WriteStringToFile(dir_ + "/model.safetensors.index.json", "[]").ok());
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss, {"not a JSON object"});
  ASSERT_TRUE(WriteStringToFile(dir_ + "/model.safetensors.index.json", "{\"metadata\": {}}").ok());
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss, {"'weight_map' missing"});
  WriteIndex("\"layer.a\": 3");
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss, {"entry 'layer.a' is not a string"});
  WriteIndex("\"layer.a\": \"../model-00001-of-00002.safetensors\"");
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss, {"not a plain file name"});
}

TEST_F(ShardedFolder, ReportsShardCorruptionWithItsPath) {
  WriteIndex(kGoodMap);
  ASSERT_TRUE(WriteStringToFile(dir_ + "/model-00002-of-00002.safetensors", "garbage").ok());
  ExpectError(WeightStore::OpenHfFolder(dir_).status(), StatusCode::kDataLoss,
              {dir_ + "/model-00002-of-00002.safetensors", "8-byte header length"});
}

TEST(WeightStoreTest, OpensSingleFileAndChecksShapes) {
  const std::string dir = TempDir();
  const std::vector<float> w = RandomFloats(6, 4);
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", {{"w", DType::kF32, {2, 3}, w.data()}}).ok());
  auto store = WeightStore::OpenHfFolder(dir);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto ok = (*store)->Get("w", {2, 3});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->view().as<const float>()[5], w[5]);
  ExpectError((*store)->Get("w", {3, 2}).status(), StatusCode::kInvalidArgument,
              {"tensor 'w'", dir + "/model.safetensors", "shape [2, 3], expected [3, 2]"});
  ExpectError((*store)->Get("v", {3, 2}).status(), StatusCode::kNotFound, {"missing tensor v in " + dir});
}

// Progress must climb monotonically to exactly the tensors' byte count and end with
// done == total, in chunks (a 20 MiB tensor crosses the 16 MiB chunk size).
TEST(WeightStoreTest, PrefetchReportsProgressUpToTheTotal) {
  const std::string dir = TempDir();
  const std::vector<float> big = RandomFloats(5 << 20, 7), small = RandomFloats(6, 8);
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors",
                               {{"big", DType::kF32, {5, 1 << 20}, big.data()}, {"small", DType::kF32, {2, 3}, small.data()}})
                  .ok());
  auto store = WeightStore::OpenHfFolder(dir);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::pair<int64_t, int64_t>> calls;
  const int64_t total = (*store)->Prefetch([&](int64_t done, int64_t all) { calls.emplace_back(done, all); });
  const int64_t want = static_cast<int64_t>((big.size() + small.size()) * sizeof(float));
  EXPECT_EQ(total, want);
  ASSERT_GE(calls.size(), 3u);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, want);
    if (i > 0) {
      EXPECT_GT(calls[i].first, calls[i - 1].first);
    }
  }
  EXPECT_EQ(calls.back().first, want);
  EXPECT_EQ((*store)->Prefetch(), want);  // no callback is fine
}

TEST(WeightStoreTest, EmptyFolderIsNotFound) {
  ExpectError(WeightStore::OpenHfFolder(TempDir()).status(), StatusCode::kNotFound,
              {"neither model.safetensors nor model.safetensors.index.json"});
}

TEST(WeightStoreTest, FromGgufKeepsTensorsAndNamesUnsupportedOnes) {
  const std::vector<float> a = RandomFloats(8, 5);
  const std::vector<float> b = RandomFloats(8, 6);
  auto bytes = EncodeGguf({}, {{"t.a", DType::kF32, {2, 4}, a.data()}, {"t.b", DType::kF32, {8}, b.data()}});
  ASSERT_TRUE(bytes.ok());
  // Make t.b a Q4_K tensor: its type field follows name, n_dims and one ne.
  const size_t type_at = bytes->rfind("t.b") + 3 + 4 + 8;
  const uint32_t q4_k = 12;
  std::memcpy(bytes->data() + type_at, &q4_k, 4);
  const std::string path = std::filesystem::path(TempDir()) / "m.gguf";
  ASSERT_TRUE(WriteStringToFile(path, *bytes).ok());
  auto gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto store = WeightStore::FromGguf(std::move(*gguf));
  ASSERT_TRUE(store.ok());
  EXPECT_NE((*store)->gguf(), nullptr);
  EXPECT_EQ((*store)->source(), path);
  auto t = (*store)->Get("t.a", {2, 4});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->view().as<const float>()[7], a[7]);
  ExpectError((*store)->Get("t.b", {8}).status(), StatusCode::kUnimplemented, {"'t.b'", "Q4_K (12)"});
  ExpectError((*store)->Get("t.c", {8}).status(), StatusCode::kNotFound, {"missing tensor t.c in " + path});
  EXPECT_EQ(WeightStore::FromGguf(nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(WeightStoreTest, SharedStories260KTwinsMatch) {
  const std::string hf = "../shared/models/stories260K/hf";
  const std::string gguf_path = "../shared/models/stories260K/stories260K.gguf";
  if (!IsDirectory(hf) || !FileExists(gguf_path)) GTEST_SKIP() << "../shared/models/stories260K not found";
  auto st = WeightStore::OpenHfFolder(hf);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto gguf = GgufFile::Open(gguf_path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto gg = WeightStore::FromGguf(std::move(*gguf));
  ASSERT_TRUE(gg.ok());
  // The HF twin ties lm_head to the embedding; the GGUF stores output.weight apart.
  EXPECT_EQ((*st)->tensors().size() + 1, (*gg)->tensors().size());
  ASSERT_NE((*gg)->Find("output.weight"), nullptr);
  EXPECT_EQ((*gg)->Find("output.weight")->shape, (Shape{512, 64}));
  // HF name -> llama.cpp name for one layer's worth of weights and the globals.
  const std::pair<const char*, const char*> twins[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
      {"model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"},
      {"model.layers.0.self_attn.k_proj.weight", "blk.0.attn_k.weight"},
      {"model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight"},
      {"model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight"},
      {"model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight"},
      {"model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight"},
      {"model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight"},
      {"model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"},
  };
  for (const auto& [hf_name, gguf_name] : twins) {
    const TensorInfo* a = (*st)->Find(hf_name);
    const TensorInfo* b = (*gg)->Find(gguf_name);
    ASSERT_NE(a, nullptr) << hf_name;
    ASSERT_NE(b, nullptr) << gguf_name;
    EXPECT_EQ(a->shape, b->shape) << hf_name << " vs " << gguf_name;
  }
  EXPECT_EQ((*st)->Find("model.embed_tokens.weight")->shape, (Shape{512, 64}));
  // Weights that llama.cpp's converter does not permute are byte-identical.
  const TensorInfo* e1 = (*st)->Find("model.embed_tokens.weight");
  const TensorInfo* e2 = (*gg)->Find("token_embd.weight");
  EXPECT_EQ(std::memcmp(e1->data, e2->data, e1->nbytes), 0);
}

}  // namespace
}  // namespace tide
