// Loading real checkpoint layouts and refusing broken ones: every error names the file
// and the tensor. Uses the qwen2 golden fixture (tests/golden/qwen2) as the source of
// real weights, rewritten into broken safetensors folders and into GGUF files of every
// weight dtype tide reads.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "model/weights.h"

namespace tide {
namespace {

constexpr const char* kFixture = "tests/golden/qwen2";

struct F32Tensor {
  std::string name;
  Shape shape;
  std::vector<float> data;
};

std::vector<F32Tensor> ReadFixture() {
  auto store = WeightStore::OpenHfFolder(kFixture);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  std::vector<F32Tensor> out;
  for (const auto& [name, t] : (*store)->tensors()) {
    F32Tensor f{name, t.shape, std::vector<float>(static_cast<size_t>(t.shape.numel()))};
    DequantizeRow(t.dtype, t.data, f.data.data(), t.shape.numel());
    out.push_back(std::move(f));
  }
  return out;
}

std::string TempDir(const std::string& name) {
  std::string d = ::testing::TempDir() + "tide_model_load_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

Status WriteFolder(const std::string& dir, const std::vector<F32Tensor>& tensors) {
  auto config = ReadFileToString(std::string(kFixture) + "/config.json");
  if (!config.ok()) return config.status();
  RETURN_IF_ERROR(WriteStringToFile(dir + "/config.json", *config));
  std::vector<SafetensorsWriteEntry> e;
  for (const auto& t : tensors) e.push_back({t.name, DType::kF32, t.shape, t.data.data()});
  return WriteSafetensors(dir + "/model.safetensors", e);
}

std::vector<double> LastLogprobs(Model& model, const std::vector<int32_t>& ids) {
  const ModelConfig& c = model.config();
  auto cache = KvCache::Create({c.num_layers, 4, 16, c.num_kv_heads, c.head_dim});
  EXPECT_TRUE(cache.ok());
  ForwardBatch b;
  b.tokens = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    b.positions.push_back(static_cast<int32_t>(i));
    b.slots.push_back(static_cast<int64_t>(i));
  }
  b.q_start = {0, static_cast<int32_t>(ids.size())};
  b.kv_len = {static_cast<int32_t>(ids.size())};
  b.max_blocks_per_seq = 4;
  b.block_table = {0, 1, 2, 3};
  b.logit_rows = {static_cast<int32_t>(ids.size()) - 1};
  std::vector<float> logits;
  ThreadPool pool(2);
  ExecContext ctx;
  ctx.pool = &pool;
  Status s = model.Forward(ctx, b, *cache, &logits);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<double> lp(logits.size());
  double mx = -INFINITY, sum = 0;
  for (float x : logits) mx = std::max(mx, static_cast<double>(x));
  for (float x : logits) sum += std::exp(x - mx);
  for (size_t i = 0; i < logits.size(); ++i) lp[i] = logits[i] - mx - std::log(sum);
  return lp;
}

const std::vector<int32_t> kPrompt = {5, 17, 42, 99, 3, 250, 7, 8, 64, 31};

TEST(ModelLoadTest, MissingTensorIsNamed) {
  auto tensors = ReadFixture();
  ASSERT_FALSE(tensors.empty());
  std::erase_if(tensors, [](const F32Tensor& t) { return t.name == "model.layers.1.self_attn.k_proj.weight"; });
  const std::string dir = TempDir("missing");
  ASSERT_TRUE(WriteFolder(dir, tensors).ok());
  auto m = Model::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.layers.1.self_attn.k_proj.weight"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find(dir), std::string::npos) << m.status().message();
}

TEST(ModelLoadTest, WrongShapeIsNamedWithBothShapes) {
  auto tensors = ReadFixture();
  for (auto& t : tensors)
    if (t.name == "model.layers.0.mlp.down_proj.weight") std::swap(t.shape.dims[0], t.shape.dims[1]);
  const std::string dir = TempDir("shape");
  ASSERT_TRUE(WriteFolder(dir, tensors).ok());
  auto m = Model::Load(dir);
  ASSERT_FALSE(m.ok());
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find("model.layers.0.mlp.down_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[64, 128]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[128, 64]"), std::string::npos) << msg;
}

TEST(ModelLoadTest, MissingFolderAndBadConfigAreErrors) {
  EXPECT_EQ(Model::Load("/nonexistent/model").status().code(), StatusCode::kNotFound);
  const std::string dir = TempDir("badconfig");
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json", "{\"architectures\": [\"BertModel\"]}").ok());
  auto m = Model::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("BertModel"), std::string::npos);
}

// Writes the fixture as a GGUF `qwen2` file with every matrix in `dtype` and returns
// the f32 values the file actually holds (after quantisation) for a reference model.
Result<std::vector<F32Tensor>> WriteGgufModel(const std::string& path, DType dtype) {
  std::vector<F32Tensor> tensors = ReadFixture();
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<GgufWriteTensor> out;
  bytes.reserve(tensors.size());
  for (auto& t : tensors) {
    const DType dt = t.shape.ndim == 2 ? dtype : DType::kF32;
    bytes.emplace_back(DTypeBytes(dt, static_cast<uint64_t>(t.shape.numel())));
    QuantizeRow(dt, t.data.data(), bytes.back().data(), t.shape.numel());
    DequantizeRow(dt, bytes.back().data(), t.data.data(), t.shape.numel());  // what the file holds
    const std::string name = GgufTensorName(t.name);
    if (name.empty()) return Internal("no GGUF name for " + t.name);
    out.push_back({name, dt, t.shape, bytes.back().data()});
  }
  auto u = [](uint64_t v) { GgufValue x; x.kind = GgufValue::Kind::kUInt; x.u = v; return x; };
  auto f = [](double v) { GgufValue x; x.kind = GgufValue::Kind::kFloat; x.f = v; return x; };
  GgufValue arch;
  arch.kind = GgufValue::Kind::kString;
  arch.s = "qwen2";
  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", arch},           {"qwen2.vocab_size", u(320)},
      {"qwen2.embedding_length", u(64)},        {"qwen2.block_count", u(2)},
      {"qwen2.feed_forward_length", u(128)},    {"qwen2.attention.head_count", u(4)},
      {"qwen2.attention.head_count_kv", u(2)},  {"qwen2.context_length", u(1024)},
      {"qwen2.attention.layer_norm_rms_epsilon", f(1e-6)}, {"qwen2.rope.freq_base", f(1e6)},
  };
  RETURN_IF_ERROR(WriteGguf(path, meta, out));
  return tensors;
}

TEST(ModelLoadTest, GgufOfEveryWeightDtypeMatchesItsDequantisedTwin) {
  auto hf = Model::Load(kFixture);
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  const std::vector<double> want_exact = LastLogprobs(**hf, kPrompt);
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(std::string(DTypeName(dt)));
    const std::string dir = TempDir(std::string(DTypeName(dt)));
    auto held = WriteGgufModel(dir + "/model.gguf", dt);
    ASSERT_TRUE(held.ok()) << held.status().ToString();
    auto gguf = Model::Load(dir + "/model.gguf");
    ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
    EXPECT_TRUE(gguf.value()->config().qkv_bias);
    // The quantised kernels must compute exactly what the dequantised weights say.
    const std::string twin = TempDir(std::string(DTypeName(dt)) + "_twin");
    ASSERT_TRUE(WriteFolder(twin, *held).ok());
    auto ref = Model::Load(twin);
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    const std::vector<double> got = LastLogprobs(**gguf, kPrompt);
    const std::vector<double> want = LastLogprobs(**ref, kPrompt);
    double worst = 0, drift = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(got[i] - want[i]));
      drift = std::max(drift, std::fabs(got[i] - want_exact[i]));
    }
    // f32 accumulation in a different order than the f32 twin: rounding only.
    EXPECT_LT(worst, 1e-4) << "max |dlogp| vs dequantised twin";
    if (dt == DType::kF32 || dt == DType::kBF16) {
      EXPECT_LT(drift, 1e-4);  // the fixture's weights are bf16: both hold them exactly
    }
    if (dt == DType::kQ4_0) {
      EXPECT_GT(drift, 1e-4) << "q4_0 weights should differ from the bf16 originals";
    }
  }
}

}  // namespace
}  // namespace tide
