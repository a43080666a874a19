// The decoder-only transformer shared by every supported architecture:
//   x = embed(tokens)
//   for each layer:  x += attn(norm(x));  x += mlp_or_moe(norm(x))
//   logits = lm_head(norm(x))      (only for the rows that sample)
// Architectures differ by switches in ModelConfig (qkv bias, q/k norm, MoE layers,
// shared expert, tied embeddings, rope scaling), never by copies of this file.
//
// Device placement: weights, scratch, the batch's index arrays and the KV cache live on
// the device of the ExecContext (PlaceOn moves the weights; the cache is created on the
// device). The code below is the same for both devices: scratch grows through
// Scratch<T>, copies go through backend/device_memory.h, and only the final logits come
// back to the host (MoE routing and expert grouping stay on the device).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

#include "backend/device_graph.h"
#include "backend/device_memory.h"
#include "base/file.h"
#include "base/log.h"
#include "model/model.h"
#include "model/weights.h"
#include "ops/attention/attention.h"
#include "ops/cache_write/cache_write.h"
#include "ops/embedding/embedding.h"
#include "ops/matmul/matmul.h"
#include "ops/moe_experts/moe_experts.h"
#include "ops/moe_route/moe_route.h"
#include "ops/rms_norm/rms_norm.h"
#include "ops/rope/rope.h"
#include "ops/rope_cache_write/rope_cache_write.h"
#include "ops/silu_mul/silu_mul.h"

namespace tide {

namespace {

// A scratch array on the model's device, grown on demand and reused every step (no
// allocation in steady state). On the CPU it is a std::vector as it always was.
// Every reallocation on the device bumps a counter: captured decode graphs hold the old
// addresses and are recaptured when it moves.
int64_t g_scratch_moves = 0;

template <typename T>
class Scratch {
 public:
  Result<T*> Grow(DeviceKind device, int64_t n) {
    if (device == DeviceKind::kCpu) {
      if (static_cast<int64_t>(host_.size()) < n) host_.resize(static_cast<size_t>(n));
      return host_.data();
    }
    const int64_t need = std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(T));
    if (dev_.size() < need) {
      // Headroom, so that arrays growing a little each step (a server's batch, block tables
      // a block longer every block_size tokens) do not reallocate — cudaFree waits for the
      // device and a move recaptures the decode graphs — every few steps; capped at 1 MiB
      // so the large activations stay at what the largest step needs.
      const int64_t cap = need + std::min<int64_t>(std::max<int64_t>(dev_.size(), need), int64_t{1} << 20);
      dev_ = DeviceBuffer();  // free first: the old and new buffers need not fit together
      ASSIGN_OR_RETURN(dev_, DeviceBuffer::Allocate(device, cap));
      ++g_scratch_moves;
    }
    return dev_.as<T>();
  }

 private:
  std::vector<T> host_;
  DeviceBuffer dev_;
};

// The index arrays of one ForwardBatch on the step's device.
struct BatchIndex {
  const int32_t* tokens = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* q_start = nullptr;
  const int32_t* kv_len = nullptr;
  const int32_t* block_table = nullptr;
  const int64_t* slots = nullptr;
};

// The shape of one step as the kernels see it (the index arrays hold the rest).
struct StepShape {
  int64_t n_tokens = 0;
  int n_seqs = 0;
  int max_blocks_per_seq = 0;
  // Rows of h whose logits are wanted; null: every row, in order (no gather).
  const std::vector<int32_t>* logit_rows = nullptr;
};

// The async engine's hook (Model::ForwardKeepLogits): tokens the previous step sampled
// on the device are copied into this step's token array in stream order, runs of
// consecutive rows as one copy, so the host never waits for them.
Status GatherPrevTokens(const ExecContext& ctx, const ForwardBatch& b, const int32_t* prev, int32_t* tokens) {
  if (!b.has_prev_samples()) return OkStatus();
  if (prev == nullptr) return InvalidArgument("the batch reads tokens of the previous step's samples, but none were given");
  const int64_t t = b.num_tokens();
  for (int64_t i = 0; i < t;) {
    const int32_t r = b.prev_sample_row[static_cast<size_t>(i)];
    if (r < 0) {
      ++i;
      continue;
    }
    int64_t n = 1;
    while (i + n < t && b.prev_sample_row[static_cast<size_t>(i + n)] == r + n) ++n;
    RETURN_IF_ERROR(CopyOnDevice(ctx, tokens + i, prev + r, n * 4));
    i += n;
  }
  return OkStatus();
}

// Decode graphs: one per (batch bucket, block-table width). A batch of n decode rows runs
// the graph of the smallest bucket >= n, padded; the block table is padded to a power of
// two >= its width, so a graph serves contexts up to width * block_size.
constexpr int kGraphBuckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256};
constexpr int kGraphMinWidth = 4;

struct DecodeGraph {
  DeviceGraph graph;
  DeviceBuffer inputs;  // the padded index arrays the graph reads, refilled before each launch
  // What the graph's addresses were taken from: a change in any makes it stale.
  int64_t scratch_moves = -1, op_scratch_generation = -1;
  const float* cache_k0 = nullptr;
  int64_t cache_blocks = 0;
  int cache_block_size = 0;
};

}  // namespace

struct Model::Impl {
  ModelConfig config;
  std::unique_ptr<WeightStore> store;
  TransformerWeights w;
  std::vector<float> inv_freq;                 // [rotary_dim / 2]
  std::vector<std::vector<uint8_t>> realigned;  // copies of tensors the file left misaligned

  // Device placement (PlaceOn). On kCuda every Tensor in `w` points to device memory;
  // the f32 vectors (norms, biases) stay on the host too and are found on the device
  // through dev_vectors, keyed by their host data pointer.
  DeviceKind device = DeviceKind::kCpu;
  std::vector<DeviceBuffer> dev_weights;
  std::unordered_map<const float*, const float*> dev_vectors;
  const float* dev_inv_freq = nullptr;
  int64_t dev_weight_bytes = 0;

  // Scratch, grown on demand and reused every step (no allocation in steady state).
  Scratch<float> resid, h, delta, q, k, v, qkv, attn, gate_up, gate, up, act;
  Scratch<float> router_logits, shared_y, shared_gate, logit_h, logits_dev;
  Scratch<int32_t> expert_ids;
  Scratch<float> expert_weights;
  Scratch<float> logits_host;  // the CPU's logits before they are copied out
  Scratch<uint8_t> batch_dev;  // the batch's index arrays, back to back (kCuda)
  std::vector<uint8_t> batch_host;
  std::vector<int32_t> tokens_host;  // the CPU's tokens with the previous step's samples in

  // CUDA decode graphs (Model::SetDecodeGraphs).
  bool decode_graphs = false;
  std::map<std::pair<int, int>, DecodeGraph> graphs;

  // MoE layers (BuildMoeExperts), indexed by layer: each one's expert weights for
  // moe_experts (tensors on the model's device) and, on CUDA, their device pointer table.
  std::vector<std::vector<MoeExpertWeights>> moe_experts;
  std::vector<DeviceBuffer> moe_tables;
  Scratch<uint8_t> moe_workspace;

  Status LoadWeights();
  Result<const TensorInfo*> Find(const WeightDecl& d) const;
  // A norm weight or bias on the model's device (null for an empty vector).
  const float* Vec(const std::vector<float>& v) const {
    if (v.empty()) return nullptr;
    if (device == DeviceKind::kCpu) return v.data();
    return dev_vectors.at(v.data());
  }
  void Linear(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y) const;
  // Linear with the matmul decode fusions (MatmulParams): RMSNorm of x by `norm_weight`
  // first when set, and y += product when `accumulate`.
  void LinearFused(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y,
                   const float* norm_weight, float eps, bool accumulate) const;
  Result<BatchIndex> UploadBatch(const ExecContext& ctx, const ForwardBatch& b, const int32_t* prev_tokens);
  // Queues the whole step on ctx.stream (no host waits) and writes [rows, vocab] logits
  // to `out` on the model's device.
  Status Queue(const ExecContext& ctx, const StepShape& s, const BatchIndex& bi, KvCache& cache, float* out);
  // A decode batch through its captured graph (captured on first use). *logits: device
  // rows [bucket, vocab], the first n real. False in *used when the batch does not qualify.
  Status RunDecodeGraph(const ExecContext& ctx, const ForwardBatch& b, KvCache& cache, bool* used,
                        const float** logits, const int32_t* prev_tokens);
  Status StackOnDevice(const ExecContext& ctx, std::unordered_map<const void*, void*>* moved);
  Status Mlp(const ExecContext& ctx, const MlpWeights& m, int64_t inter, const float* x, int64_t n, float* y);
  Status Moe(const ExecContext& ctx, const LayerWeights& lw, int64_t n_tokens, const float* x, float* out);
  // Fills moe_experts (and moe_tables on CUDA) from `w` as it is now on ctx.device.
  Status BuildMoeExperts(const ExecContext& ctx);
  Status PlaceOn(const ExecContext& ctx, const std::function<void(int64_t, int64_t)>& progress);
};

namespace {

int Alignment(DType t) { return t == DType::kF32 || t == DType::kI32 ? 4 : 2; }

// Every matrix and every f32 vector of the weights (tied lm_head included: callers
// deduplicate by data pointer).
void ForEachMatrix(TransformerWeights& w, const std::function<void(Tensor&)>& fn) {
  auto mlp = [&](MlpWeights& m) {
    fn(m.gate.w);
    fn(m.up.w);
    fn(m.down.w);
  };
  fn(w.embed);
  fn(w.lm_head);
  for (LayerWeights& l : w.layers) {
    for (LinearWeights* lin : {&l.q, &l.k, &l.v, &l.o}) fn(lin->w);
    mlp(l.mlp);
    fn(l.router);
    for (MlpWeights& e : l.experts) mlp(e);
    mlp(l.shared_expert);
    fn(l.shared_expert_gate);
  }
}

void ForEachVector(TransformerWeights& w, const std::function<void(std::vector<float>&)>& fn) {
  auto mlp = [&](MlpWeights& m) {
    fn(m.gate.bias);
    fn(m.up.bias);
    fn(m.down.bias);
  };
  fn(w.final_norm);
  for (LayerWeights& l : w.layers) {
    for (std::vector<float>* v : {&l.attn_norm, &l.ffn_norm, &l.q_norm, &l.k_norm}) fn(*v);
    for (LinearWeights* lin : {&l.q, &l.k, &l.v, &l.o, &l.qkv, &l.mlp.gate_up}) fn(lin->bias);
    mlp(l.mlp);
    for (MlpWeights& e : l.experts) mlp(e);
    mlp(l.shared_expert);
  }
}

}  // namespace

void Model::Impl::Linear(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y) const {
  LinearFused(ctx, lw, x, m, y, /*norm_weight=*/nullptr, MatmulParams{}.norm_eps, /*accumulate=*/false);
}

void Model::Impl::LinearFused(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y,
                              const float* norm_weight, float eps, bool accumulate) const {
  MatmulParams p;
  p.x = x;
  p.w = lw.w;
  p.bias = Vec(lw.bias);
  p.y = y;
  p.m = m;
  p.n = lw.w.shape[0];
  p.k = lw.w.shape[1];
  p.norm_weight = norm_weight;
  p.norm_eps = eps;
  p.accumulate = accumulate;
  Matmul(ctx, p);
}

Result<const TensorInfo*> Model::Impl::Find(const WeightDecl& d) const {
  std::string name = d.name;
  if (store->gguf() != nullptr) {
    name = GgufTensorName(d.name);
    if (name.empty()) return Unimplemented(store->source() + ": no GGUF tensor corresponds to " + d.name);
    if (store->gguf()->unsupported_tensors().count(name) != 0)
      return Unimplemented(store->source() + ": tensor '" + name + "' has a GGML type tide cannot read yet (type id " +
                           std::to_string(store->gguf()->unsupported_tensors().at(name)) + ")");
  }
  return store->Get(name, d.shape);
}

Status Model::Impl::LoadWeights() {
  const std::vector<WeightDecl> decls = DeclareWeights(config, &w);
  for (const WeightDecl& d : decls) {
    ASSIGN_OR_RETURN(const TensorInfo* t, Find(d));
    const uint8_t* data = t->data;
    if (reinterpret_cast<uintptr_t>(data) % static_cast<uintptr_t>(Alignment(t->dtype)) != 0) {
      // Kernels read typed pointers; a file whose header length leaves data misaligned
      // gets an aligned private copy of that tensor.
      realigned.emplace_back(t->data, t->data + t->nbytes);
      data = realigned.back().data();
    }
    if (d.matrix != nullptr) {
      if (t->dtype == DType::kI32)
        return InvalidArgument(t->file + ": tensor '" + t->name + "' has integer dtype; expected a float weight");
      const int block = GetDTypeInfo(t->dtype).block_elems;
      if (t->shape[1] % block != 0)
        return InvalidArgument(t->file + ": tensor '" + t->name + "' rows of " + std::to_string(t->shape[1]) +
                               " values are not whole " + std::string(DTypeName(t->dtype)) + " blocks");
      *d.matrix = Tensor{t->dtype, t->shape, const_cast<uint8_t*>(data)};
    } else if (d.vector != nullptr) {
      const int64_t n = t->shape.numel();
      if (GetDTypeInfo(t->dtype).block_elems != 1 && n % GetDTypeInfo(t->dtype).block_elems != 0)
        return InvalidArgument(t->file + ": tensor '" + t->name + "' is not whole quantisation blocks");
      d.vector->resize(static_cast<size_t>(n));
      DequantizeRow(t->dtype, data, d.vector->data(), n);
    }
  }
  if (config.tie_word_embeddings) w.lm_head = w.embed;

  inv_freq = RopeInvFreq(config.rope_theta, config.rotary_dim, config.rope_scaling);
  // llama.cpp stores Llama 3.1 frequency scaling as per-pair divisors instead of config.
  if (store->gguf() != nullptr) {
    if (const TensorInfo* rf = store->Find("rope_freqs.weight")) {
      if (rf->dtype != DType::kF32 || rf->shape.numel() != config.rotary_dim / 2)
        return InvalidArgument(rf->file + ": rope_freqs.weight must be f32 [" + std::to_string(config.rotary_dim / 2) + "]");
      std::vector<float> f(static_cast<size_t>(rf->shape.numel()));
      std::memcpy(f.data(), rf->data, f.size() * 4);
      for (size_t i = 0; i < f.size(); ++i) inv_freq[i] /= f[i];
    }
  }
  return OkStatus();
}

Status Model::Impl::Mlp(const ExecContext& ctx, const MlpWeights& m, int64_t inter, const float* x, int64_t n,
                        float* y) {
  ASSIGN_OR_RETURN(float* gu, gate_up.Grow(device, n * 2 * inter));
  if (m.gate_up.w.data != nullptr) {
    Linear(ctx, m.gate_up, x, n, gu);  // [gate; up] stacked at placement: rows come out as [gate | up]
  } else if (n == 1) {
    // One row: [gate | up] is already the layout silu_mul wants.
    Linear(ctx, m.gate, x, 1, gu);
    Linear(ctx, m.up, x, 1, gu + inter);
  } else {
    ASSIGN_OR_RETURN(float* g, gate.Grow(device, n * inter));
    ASSIGN_OR_RETURN(float* u, up.Grow(device, n * inter));
    Linear(ctx, m.gate, x, n, g);
    Linear(ctx, m.up, x, n, u);
    const int64_t row = inter * 4;
    RETURN_IF_ERROR(CopyOnDevice2D(ctx, gu, 2 * row, g, row, row, n));
    RETURN_IF_ERROR(CopyOnDevice2D(ctx, gu + inter, 2 * row, u, row, row, n));
  }
  ASSIGN_OR_RETURN(float* a, act.Grow(device, n * inter));
  SiluMul(ctx, SiluMulParams{gu, a, n, inter});
  Linear(ctx, m.down, a, n, y);
  return OkStatus();
}

// x: the normed hidden states [t, hidden]; the result goes to `out` [t, hidden].
Status Model::Impl::Moe(const ExecContext& ctx, const LayerWeights& lw, int64_t t, const float* x, float* out) {
  const int64_t hd = config.hidden_size;
  const int n_exp = config.num_experts, top_k = config.num_experts_per_tok;
  ASSIGN_OR_RETURN(float* logits, router_logits.Grow(device, t * n_exp));
  MatmulParams rp;
  rp.x = x;
  rp.w = lw.router;
  rp.y = logits;
  rp.m = t;
  rp.n = n_exp;
  rp.k = hd;
  Matmul(ctx, rp);
  ASSIGN_OR_RETURN(int32_t* ids, expert_ids.Grow(device, t * top_k));
  ASSIGN_OR_RETURN(float* wts, expert_weights.Grow(device, t * top_k));
  MoeRoute(ctx, MoeRouteParams{logits, ids, wts, t, n_exp, top_k, config.norm_topk_prob});
  if (moe_experts.empty()) RETURN_IF_ERROR(BuildMoeExperts(ctx));
  const auto layer = static_cast<size_t>(&lw - w.layers.data());
  MoeExpertsParams p;
  p.x = x;
  p.expert_ids = ids;
  p.weights = wts;
  p.experts = moe_experts[layer].data();
  p.expert_table = moe_tables[layer].as<const void* const>();
  if (config.shared_expert_intermediate_size > 0) {
    ASSIGN_OR_RETURN(float* ys, shared_y.Grow(device, t * hd));
    RETURN_IF_ERROR(Mlp(ctx, lw.shared_expert, config.shared_expert_intermediate_size, x, t, ys));
    ASSIGN_OR_RETURN(float* g, shared_gate.Grow(device, t));
    MatmulParams gp;
    gp.x = x;
    gp.w = lw.shared_expert_gate;
    gp.y = g;
    gp.m = t;
    gp.n = 1;
    gp.k = hd;
    Matmul(ctx, gp);
    p.shared_y = ys;
    p.shared_gate = g;
  }
  p.out = out;
  p.n_tokens = t;
  p.hidden = hd;
  p.inter = config.moe_intermediate_size;
  p.n_experts = n_exp;
  p.top_k = top_k;
  p.workspace_bytes = MoeExpertsWorkspaceBytes(device, t, hd, p.inter, n_exp, top_k);
  if (p.workspace_bytes > 0) {
    ASSIGN_OR_RETURN(uint8_t* ws, moe_workspace.Grow(device, p.workspace_bytes));
    p.workspace = ws;
  }
  return MoeExperts(ctx, p);
}

Status Model::Impl::BuildMoeExperts(const ExecContext& ctx) {
  if (ctx.device == DeviceKind::kCuda && config.num_experts_per_tok > kMoeExpertsMaxTopK)
    return Unimplemented("CUDA MoE layers route each token to at most " + std::to_string(kMoeExpertsMaxTopK) +
                         " experts; this model routes to " + std::to_string(config.num_experts_per_tok));
  moe_experts.assign(w.layers.size(), {});
  moe_tables.clear();
  moe_tables.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    if (!lw.moe) continue;
    for (const MlpWeights& e : lw.experts) moe_experts[l].push_back(MoeExpertWeights{e.gate.w, e.up.w, e.down.w});
    if (ctx.device == DeviceKind::kCuda) {
      ASSIGN_OR_RETURN(moe_tables[l], MoeExpertsTable(ctx, moe_experts[l].data(), static_cast<int>(lw.experts.size())));
    }
  }
  return OkStatus();
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
const ModelConfig& Model::config() const noexcept { return impl_->config; }
const WeightStore& Model::weights() const noexcept { return *impl_->store; }

Result<std::unique_ptr<Model>> Model::FromStore(ModelConfig config, std::unique_ptr<WeightStore> store) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->store = std::move(store);
  RETURN_IF_ERROR(impl->LoadWeights());
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

Result<std::unique_ptr<Model>> Model::Load(const std::string& path) {
  if (IsDirectory(path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path + "/config.json", 16u << 20));
    ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(text, path + "/config.json"));
    ASSIGN_OR_RETURN(std::unique_ptr<WeightStore> store, WeightStore::OpenHfFolder(path));
    return FromStore(std::move(config), std::move(store));
  }
  if (!FileExists(path)) return NotFound(path + ": no such model folder or file");
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
  ASSIGN_OR_RETURN(ModelConfig config, ConfigFromGguf(*gguf));
  ASSIGN_OR_RETURN(std::unique_ptr<WeightStore> store, WeightStore::FromGguf(std::move(gguf)));
  return FromStore(std::move(config), std::move(store));
}

Result<BatchIndex> Model::Impl::UploadBatch(const ExecContext& ctx, const ForwardBatch& b,
                                            const int32_t* prev_tokens) {
  if (device == DeviceKind::kCpu) {
    const int32_t* tokens = b.tokens.data();
    if (b.has_prev_samples()) {
      tokens_host = b.tokens;
      RETURN_IF_ERROR(GatherPrevTokens(ctx, b, prev_tokens, tokens_host.data()));
      tokens = tokens_host.data();
    }
    return BatchIndex{tokens, b.positions.data(), b.q_start.data(), b.kv_len.data(), b.block_table.data(),
                      b.slots.data()};
  }
  // One host buffer, one copy: slots (8-byte) first, then the int32 arrays.
  const size_t n_slots = b.slots.size() * 8;
  const std::vector<int32_t>* arrays[] = {&b.tokens, &b.positions, &b.q_start, &b.kv_len, &b.block_table};
  size_t bytes = n_slots;
  for (const auto* a : arrays) bytes += a->size() * 4;
  batch_host.resize(bytes);
  std::memcpy(batch_host.data(), b.slots.data(), n_slots);
  size_t off = n_slots;
  size_t offsets[5];
  for (int i = 0; i < 5; ++i) {
    offsets[i] = off;
    if (!arrays[i]->empty()) std::memcpy(batch_host.data() + off, arrays[i]->data(), arrays[i]->size() * 4);
    off += arrays[i]->size() * 4;
  }
  ASSIGN_OR_RETURN(uint8_t* d, batch_dev.Grow(device, static_cast<int64_t>(bytes)));
  RETURN_IF_ERROR(CopyToDevice(ctx, d, batch_host.data(), static_cast<int64_t>(bytes)));
  RETURN_IF_ERROR(GatherPrevTokens(ctx, b, prev_tokens, reinterpret_cast<int32_t*>(d + offsets[0])));
  auto at = [&](int i) { return reinterpret_cast<const int32_t*>(d + offsets[i]); };
  return BatchIndex{at(0), at(1), at(2), at(3), at(4), reinterpret_cast<const int64_t*>(d)};
}

// Stacks q/k/v and gate/up of every dense layer into one device matrix each (see
// LayerWeights::qkv): one longer GEMV reads the same bytes in fewer, better-filled
// launches. Parts are uploaded straight into their rows; `moved` maps each part's host
// data to its device rows, so q, k, v, gate and up keep working as separate matrices.
// A group is left unstacked when its parts differ in dtype or width, share storage, or
// only some have a bias.
Status Model::Impl::StackOnDevice(const ExecContext& ctx, std::unordered_map<const void*, void*>* moved) {
  auto placed_dtype = [](DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0 ? DType::kF32 : t; };
  auto stack = [&](std::initializer_list<LinearWeights*> parts, LinearWeights* out) -> Status {
    const Tensor& first = (*parts.begin())->w;
    if (first.data == nullptr) return OkStatus();
    int64_t rows = 0, bytes = 0;
    size_t with_bias = 0;
    for (LinearWeights* p : parts) {
      const Tensor& t = p->w;
      if (t.data == nullptr || placed_dtype(t.dtype) != placed_dtype(first.dtype) || t.shape[1] != first.shape[1] ||
          moved->count(t.data) != 0)
        return OkStatus();
      for (LinearWeights* o : parts)
        if (o != p && o->w.data == t.data) return OkStatus();
      rows += t.shape[0];
      bytes += static_cast<int64_t>(DTypeBytes(placed_dtype(t.dtype), static_cast<uint64_t>(t.numel())));
      with_bias += p->bias.empty() ? 0 : 1;
    }
    if (with_bias != 0 && with_bias != parts.size()) return OkStatus();
    ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Allocate(ctx.device, bytes));
    auto* dst = static_cast<uint8_t*>(buf.data());
    std::vector<float> widened;
    for (LinearWeights* p : parts) {
      const Tensor& t = p->w;
      const auto n = static_cast<int64_t>(DTypeBytes(placed_dtype(t.dtype), static_cast<uint64_t>(t.numel())));
      if (placed_dtype(t.dtype) != t.dtype) {
        widened.resize(static_cast<size_t>(t.numel()));
        DequantizeRow(t.dtype, t.data, widened.data(), t.numel());
        RETURN_IF_ERROR(CopyToDeviceStaged(ctx, dst, widened.data(), n));
      } else {
        RETURN_IF_ERROR(CopyToDeviceStaged(ctx, dst, t.data, n));
      }
      (*moved)[t.data] = dst;
      dst += n;
      out->bias.insert(out->bias.end(), p->bias.begin(), p->bias.end());
    }
    out->w = Tensor{placed_dtype(first.dtype), Shape{rows, first.shape[1]}, buf.data()};
    dev_weights.push_back(std::move(buf));
    return OkStatus();
  };
  for (LayerWeights& l : w.layers) {
    RETURN_IF_ERROR(stack({&l.q, &l.k, &l.v}, &l.qkv));
    if (!l.moe) RETURN_IF_ERROR(stack({&l.mlp.gate, &l.mlp.up}, &l.mlp.gate_up));
  }
  return OkStatus();
}

Status Model::Impl::PlaceOn(const ExecContext& ctx, const std::function<void(int64_t, int64_t)>& progress) {
  if (ctx.device == device) return OkStatus();
  if (device != DeviceKind::kCpu || ctx.device != DeviceKind::kCuda)
    return Unimplemented("a model moves from the CPU to CUDA once; it cannot move back or twice");
  if (config.num_experts > 512) return Unimplemented("CUDA MoE routing supports at most 512 experts");
  // Bytes to move, for progress: each distinct matrix once (a tied lm_head is the embedding).
  std::unordered_map<const void*, Tensor> todo;
  int64_t total = 0;
  ForEachMatrix(w, [&](Tensor& t) {
    if (t.data == nullptr || todo.count(t.data) != 0) return;
    const bool widen = t.dtype == DType::kQ8_0 || t.dtype == DType::kQ4_0;
    todo[t.data] = t;
    total += widen ? t.numel() * 4 : static_cast<int64_t>(t.nbytes());
  });
  std::unordered_map<const void*, void*> moved;
  RETURN_IF_ERROR(StackOnDevice(ctx, &moved));
  int64_t done = 0;
  for (const auto& [host, dev] : moved) {
    const Tensor& t = todo.at(host);
    done += t.dtype == DType::kQ8_0 || t.dtype == DType::kQ4_0 ? t.numel() * 4 : static_cast<int64_t>(t.nbytes());
  }
  if (progress && done > 0) progress(done, total);
  std::vector<float> widened;
  for (auto& [host, t] : todo) {
    if (moved.count(host) != 0) continue;  // uploaded as part of a stacked matrix
    // Quantised blocks have no CUDA kernels yet: they are widened to f32 (exact).
    const bool widen = t.dtype == DType::kQ8_0 || t.dtype == DType::kQ4_0;
    const int64_t bytes = widen ? t.numel() * 4 : static_cast<int64_t>(t.nbytes());
    ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Allocate(ctx.device, bytes));
    if (widen) {
      widened.resize(static_cast<size_t>(t.numel()));
      DequantizeRow(t.dtype, t.data, widened.data(), t.numel());
      RETURN_IF_ERROR(CopyToDeviceStaged(ctx, buf.data(), widened.data(), bytes));
    } else {
      RETURN_IF_ERROR(CopyToDeviceStaged(ctx, buf.data(), t.data, bytes));
    }
    moved[host] = buf.data();
    dev_weights.push_back(std::move(buf));
    done += bytes;
    if (progress) progress(done, total);
  }
  ForEachMatrix(w, [&](Tensor& t) {
    if (t.data == nullptr) return;
    if (t.dtype == DType::kQ8_0 || t.dtype == DType::kQ4_0) t.dtype = DType::kF32;
    t.data = moved.at(t.data);
  });
  // Norm weights and biases: small, one buffer each.
  Status st = OkStatus();
  auto upload = [&](const float* data, int64_t n) -> Result<const float*> {
    ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Allocate(ctx.device, n * 4));
    RETURN_IF_ERROR(CopyToDevice(ctx, buf.data(), data, n * 4));
    dev_weights.push_back(std::move(buf));
    return dev_weights.back().as<const float>();
  };
  ForEachVector(w, [&](std::vector<float>& v) {
    if (v.empty() || !st.ok() || dev_vectors.count(v.data()) != 0) return;
    Result<const float*> d = upload(v.data(), static_cast<int64_t>(v.size()));
    if (!d.ok()) {
      st = d.status();
      return;
    }
    dev_vectors[v.data()] = *d;
  });
  RETURN_IF_ERROR(st);
  ASSIGN_OR_RETURN(dev_inv_freq, upload(inv_freq.data(), static_cast<int64_t>(inv_freq.size())));
  RETURN_IF_ERROR(BuildMoeExperts(ctx));
  RETURN_IF_ERROR(Synchronize(ctx));
  for (const DeviceBuffer& b : dev_weights) dev_weight_bytes += b.size();
  device = ctx.device;
  return OkStatus();
}

Status Model::PlaceOn(const ExecContext& ctx, const std::function<void(int64_t, int64_t)>& progress) {
  return impl_->PlaceOn(ctx, progress);
}
DeviceKind Model::device() const noexcept { return impl_->device; }
int64_t Model::device_weight_bytes() const noexcept { return impl_->dev_weight_bytes; }

Status Model::Impl::Queue(const ExecContext& ctx, const StepShape& st, const BatchIndex& bi, KvCache& cache,
                          float* out) {
  const ModelConfig& c = config;
  const KvCacheShape& cs = cache.shape();
  const DeviceKind dev = device;
  const int64_t t = st.n_tokens, hd = c.hidden_size;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  ASSIGN_OR_RETURN(float* res, resid.Grow(dev, t * hd));
  ASSIGN_OR_RETURN(float* hh, h.Grow(dev, t * hd));
  ASSIGN_OR_RETURN(float* dl, delta.Grow(dev, t * hd));
  ASSIGN_OR_RETURN(float* qq, q.Grow(dev, t * q_dim));
  ASSIGN_OR_RETURN(float* kk, k.Grow(dev, t * kv_dim));
  ASSIGN_OR_RETURN(float* vv, v.Grow(dev, t * kv_dim));
  ASSIGN_OR_RETURN(float* at, attn.Grow(dev, t * q_dim));
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float* rope_freq = dev == DeviceKind::kCpu ? inv_freq.data() : dev_inv_freq;

  // Decode on CUDA (rows the GEMV kernels take): the pre-norms run inside the next
  // projection and the block outputs add into the residual inside the o and down
  // projections, so no launch sits between those GEMVs for them.
  const bool fuse = dev == DeviceKind::kCuda && t <= kMatmulFusedMaxRows;
  // dl holds a block output not yet added to res (joined by the next pre-norm).
  bool pending = false;
  auto norm_into_hh = [&](const std::vector<float>& g) {
    RmsNorm(ctx, RmsNormParams{pending ? dl : res, pending ? res : nullptr, Vec(g), hh, t, hd, eps});
    pending = false;
  };

  Embedding(ctx, EmbeddingParams{bi.tokens, w.embed, res, t});
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const bool fuse_qkv = fuse && !pending && lw.qkv.w.data != nullptr && !c.qk_norm;
    // Pre-norm; from the second layer on, the previous block's output joins the residual here.
    if (!fuse_qkv) norm_into_hh(lw.attn_norm);

    // 1. Projections [t, heads * head_dim]  2. q/k norm per head  3. RoPE  4. K/V into
    // the paged cache  5. attention over the cache  6. output projection.
    if (lw.qkv.w.data != nullptr && !c.qk_norm) {
      // Stacked projection (CUDA): RoPE and the cache write read its rows in place.
      const int64_t stride = q_dim + 2 * kv_dim;
      ASSIGN_OR_RETURN(float* x3, qkv.Grow(dev, t * stride));
      if (fuse_qkv) {
        LinearFused(ctx, lw.qkv, res, t, x3, Vec(lw.attn_norm), eps, false);
      } else {
        Linear(ctx, lw.qkv, hh, t, x3);
      }
      RopeCacheWriteParams rc;
      rc.qkv = x3;
      rc.qkv_stride = stride;
      rc.q_out = qq;
      rc.k_cache = cache.k(l);
      rc.v_cache = cache.v(l);
      rc.slots = bi.slots;
      rc.positions = bi.positions;
      rc.inv_freq = rope_freq;
      rc.n_tokens = t;
      rc.num_blocks = cs.num_blocks;
      rc.block_size = cs.block_size;
      rc.n_heads = c.num_heads;
      rc.n_kv_heads = c.num_kv_heads;
      rc.head_dim = c.head_dim;
      rc.rotary_dim = c.rotary_dim;
      rc.style = c.rope_style;
      RopeCacheWrite(ctx, rc);
    } else {
      if (lw.qkv.w.data != nullptr) {
        // Stacked projection, but q/k RMSNorm runs before RoPE: split the rows first.
        const int64_t stride = q_dim + 2 * kv_dim;
        ASSIGN_OR_RETURN(float* x3, qkv.Grow(dev, t * stride));
        Linear(ctx, lw.qkv, hh, t, x3);
        RETURN_IF_ERROR(CopyOnDevice2D(ctx, qq, q_dim * 4, x3, stride * 4, q_dim * 4, t));
        RETURN_IF_ERROR(CopyOnDevice2D(ctx, kk, kv_dim * 4, x3 + q_dim, stride * 4, kv_dim * 4, t));
        RETURN_IF_ERROR(CopyOnDevice2D(ctx, vv, kv_dim * 4, x3 + q_dim + kv_dim, stride * 4, kv_dim * 4, t));
      } else {
        Linear(ctx, lw.q, hh, t, qq);
        Linear(ctx, lw.k, hh, t, kk);
        Linear(ctx, lw.v, hh, t, vv);
      }
      if (c.qk_norm) {
        RmsNorm(ctx, RmsNormParams{qq, nullptr, Vec(lw.q_norm), qq, t * c.num_heads, c.head_dim, eps});
        RmsNorm(ctx, RmsNormParams{kk, nullptr, Vec(lw.k_norm), kk, t * c.num_kv_heads, c.head_dim, eps});
      }
      RopeParams rp;
      rp.q = qq;
      rp.k = kk;
      rp.positions = bi.positions;
      rp.inv_freq = rope_freq;
      rp.n_tokens = t;
      rp.n_heads = c.num_heads;
      rp.n_kv_heads = c.num_kv_heads;
      rp.head_dim = c.head_dim;
      rp.rotary_dim = c.rotary_dim;
      rp.style = c.rope_style;
      Rope(ctx, rp);
      CacheWriteParams cw;
      cw.k = kk;
      cw.v = vv;
      cw.k_cache = cache.k(l);
      cw.v_cache = cache.v(l);
      cw.slots = bi.slots;
      cw.n_tokens = t;
      cw.num_blocks = cs.num_blocks;
      cw.block_size = cs.block_size;
      cw.n_kv_heads = c.num_kv_heads;
      cw.head_dim = c.head_dim;
      CacheWrite(ctx, cw);
    }
    AttentionParams ap;
    ap.q = qq;
    ap.k_cache = cache.k(l);
    ap.v_cache = cache.v(l);
    ap.out = at;
    ap.q_start = bi.q_start;
    ap.kv_len = bi.kv_len;
    ap.block_table = bi.block_table;
    ap.n_seqs = st.n_seqs;
    ap.max_blocks_per_seq = st.max_blocks_per_seq;
    ap.n_tokens = t;
    ap.num_blocks = cs.num_blocks;
    ap.n_heads = c.num_heads;
    ap.n_kv_heads = c.num_kv_heads;
    ap.head_dim = c.head_dim;
    ap.block_size = cs.block_size;
    ap.scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
    Attention(ctx, ap);
    if (fuse) {
      LinearFused(ctx, lw.o, at, t, res, nullptr, 0.f, true);
    } else {
      Linear(ctx, lw.o, at, t, dl);
      pending = true;
    }

    if (fuse && !lw.moe && lw.mlp.gate_up.w.data != nullptr) {
      // The dense MLP of Mlp() with the pre-norm in gate_up and the residual add in down.
      const int64_t inter = c.intermediate_size;
      ASSIGN_OR_RETURN(float* gu, gate_up.Grow(dev, t * 2 * inter));
      if (pending) {
        norm_into_hh(lw.ffn_norm);
        Linear(ctx, lw.mlp.gate_up, hh, t, gu);
      } else {
        LinearFused(ctx, lw.mlp.gate_up, res, t, gu, Vec(lw.ffn_norm), eps, false);
      }
      ASSIGN_OR_RETURN(float* a, act.Grow(dev, t * inter));
      SiluMul(ctx, SiluMulParams{gu, a, t, inter});
      LinearFused(ctx, lw.mlp.down, a, t, res, nullptr, 0.f, true);
    } else {
      norm_into_hh(lw.ffn_norm);
      if (lw.moe) {
        RETURN_IF_ERROR(Moe(ctx, lw, t, hh, dl));
      } else {
        RETURN_IF_ERROR(Mlp(ctx, lw.mlp, c.intermediate_size, hh, t, dl));
      }
      pending = true;
    }
  }
  norm_into_hh(w.final_norm);

  const int64_t r = st.logit_rows != nullptr ? static_cast<int64_t>(st.logit_rows->size()) : t;
  if (r == 0) return OkStatus();
  const float* lx = hh;
  if (st.logit_rows != nullptr) {
    // Only the sampling rows go through the LM head; a batch whose rows are all of them,
    // in order, needs no gather.
    bool identity = r == t;
    for (int64_t i = 0; identity && i < r; ++i) identity = (*st.logit_rows)[static_cast<size_t>(i)] == i;
    if (!identity) {
      ASSIGN_OR_RETURN(float* lh, logit_h.Grow(dev, r * hd));
      for (int64_t i = 0; i < r; ++i)
        RETURN_IF_ERROR(
            CopyOnDevice(ctx, lh + i * hd, hh + int64_t{(*st.logit_rows)[static_cast<size_t>(i)]} * hd, hd * 4));
      lx = lh;
    }
  }
  MatmulParams lp;
  lp.x = lx;
  lp.w = w.lm_head;
  lp.y = out;
  lp.m = r;
  lp.n = c.vocab_size;
  lp.k = hd;
  Matmul(ctx, lp);
  return OkStatus();
}

Status Model::Impl::RunDecodeGraph(const ExecContext& ctx, const ForwardBatch& b, KvCache& cache, bool* used,
                                   const float** logits, const int32_t* prev_tokens) {
  *used = false;
  if (!decode_graphs || device != DeviceKind::kCuda || ctx.stream == nullptr) return OkStatus();
  const int n = b.num_seqs();
  if (n == 0 || b.num_tokens() != n || n > kGraphBuckets[std::size(kGraphBuckets) - 1]) return OkStatus();
  for (int i = 0; i <= n; ++i)
    if (b.q_start[static_cast<size_t>(i)] != i) return OkStatus();
  if (b.logit_rows.size() != static_cast<size_t>(n)) return OkStatus();
  for (int i = 0; i < n; ++i)
    if (b.logit_rows[static_cast<size_t>(i)] != i) return OkStatus();
  int bucket = 0;
  for (int cand : kGraphBuckets)
    if (cand >= n) {
      bucket = cand;
      break;
    }
  // MoE steps whose experts run through the matmul op wait for the host mid-step (their
  // group sizes): those buckets run eagerly, the smaller ones stay in graphs.
  for (const LayerWeights& l : w.layers)
    if (l.moe && MoeExpertsUsesMatmul(device, bucket, config.hidden_size, config.moe_intermediate_size,
                                      config.num_experts, config.num_experts_per_tok))
      return OkStatus();
  int width = kGraphMinWidth;
  while (width < b.max_blocks_per_seq) width *= 2;

  // The padded batch: rows past n decode token 0 at position 0 over one key of block 0
  // (written by nobody this step: slot -1), so they read finite cache contents and write
  // nothing; their logits are ignored.
  const size_t nb = static_cast<size_t>(bucket), wd = static_cast<size_t>(width);
  const size_t bytes = nb * 8 + (nb * 4 + 1) * 4 + nb * wd * 4;
  batch_host.assign(bytes, 0);
  auto* slots = reinterpret_cast<int64_t*>(batch_host.data());
  auto* tokens = reinterpret_cast<int32_t*>(batch_host.data() + nb * 8);
  int32_t* positions = tokens + nb;
  int32_t* q_start = positions + nb;
  int32_t* kv_len = q_start + nb + 1;
  int32_t* table = kv_len + nb;
  const size_t mb = static_cast<size_t>(b.max_blocks_per_seq);
  for (size_t i = 0; i < nb; ++i) {
    const bool real = i < static_cast<size_t>(n);
    slots[i] = real ? b.slots[i] : -1;
    tokens[i] = real ? b.tokens[i] : 0;
    positions[i] = real ? b.positions[i] : 0;
    q_start[i] = static_cast<int32_t>(i);
    kv_len[i] = real ? b.kv_len[i] : 1;
    for (size_t j = 0; j < wd; ++j)
      table[i * wd + j] = real ? (j < mb ? b.block_table[i * mb + j] : -1) : (j == 0 ? 0 : -1);
  }
  q_start[nb] = static_cast<int32_t>(nb);

  DecodeGraph& g = graphs[{bucket, width}];
  if (g.inputs.size() < static_cast<int64_t>(bytes)) {
    g = DecodeGraph();
    ASSIGN_OR_RETURN(g.inputs, DeviceBuffer::Allocate(device, static_cast<int64_t>(bytes)));
  }
  RETURN_IF_ERROR(CopyToDevice(ctx, g.inputs.data(), batch_host.data(), static_cast<int64_t>(bytes)));
  RETURN_IF_ERROR(
      GatherPrevTokens(ctx, b, prev_tokens, reinterpret_cast<int32_t*>(static_cast<uint8_t*>(g.inputs.data()) + nb * 8)));
  ASSIGN_OR_RETURN(float* out, logits_dev.Grow(device, int64_t{bucket} * config.vocab_size));
  const bool fresh = g.graph.valid() && g.scratch_moves == g_scratch_moves &&
                     g.op_scratch_generation == DeviceScratchGeneration() && g.cache_k0 == cache.k(0) &&
                     g.cache_blocks == cache.shape().num_blocks && g.cache_block_size == cache.shape().block_size;
  *used = true;
  *logits = out;
  if (fresh) return g.graph.Launch(ctx);

  auto* d = static_cast<uint8_t*>(g.inputs.data());
  auto at = [&](const int32_t* host) {
    return reinterpret_cast<const int32_t*>(d + (reinterpret_cast<const uint8_t*>(host) - batch_host.data()));
  };
  const BatchIndex bi{at(tokens), at(positions), at(q_start), at(kv_len), at(table), reinterpret_cast<const int64_t*>(d)};
  const StepShape st{bucket, bucket, width, nullptr};
  // This step runs eagerly (growing any scratch it needs); the same launches are then
  // recorded, which runs nothing, for the next steps of this shape.
  RETURN_IF_ERROR(Queue(ctx, st, bi, cache, out));
  ASSIGN_OR_RETURN(out, logits_dev.Grow(device, int64_t{bucket} * config.vocab_size));
  *logits = out;
  const int64_t moves = g_scratch_moves, generation = DeviceScratchGeneration();
  Result<DeviceGraph> graph = DeviceGraph::Capture(ctx, [&] { return Queue(ctx, st, bi, cache, out); });
  if (!graph.ok()) {
    TIDE_LOG_WARN("CUDA graph capture failed; decode steps run eagerly from now on: %s",
                  graph.status().ToString().c_str());
    decode_graphs = false;
    graphs.clear();
    return OkStatus();
  }
  if (moves != g_scratch_moves || generation != DeviceScratchGeneration()) return OkStatus();  // stale already
  g.graph = std::move(*graph);
  g.scratch_moves = moves;
  g.op_scratch_generation = generation;
  g.cache_k0 = cache.k(0);
  g.cache_blocks = cache.shape().num_blocks;
  g.cache_block_size = cache.shape().block_size;
  return OkStatus();
}

Status Model::ForwardKeepLogits(const ExecContext& ctx, const ForwardBatch& b, KvCache& cache, const float** logits,
                                const int32_t* prev_tokens) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const KvCacheShape& cs = cache.shape();
  if (cs.num_layers != c.num_layers || cs.n_kv_heads != c.num_kv_heads || cs.head_dim != c.head_dim)
    return InvalidArgument("KV cache shape does not match the model");
  if (ctx.device != m.device || cache.device() != m.device)
    return FailedPrecondition(std::string("the model's weights, the KV cache and the step must be on one device (") +
                              (m.device == DeviceKind::kCpu ? "weights on cpu" : "weights on cuda") +
                              (cache.device() == DeviceKind::kCpu ? ", cache on cpu" : ", cache on cuda") +
                              (ctx.device == DeviceKind::kCpu ? ", step on cpu)" : ", step on cuda)"));
  RETURN_IF_ERROR(b.Validate(cs.num_blocks, cs.block_size, c.vocab_size));

  bool graphed = false;
  if (b.has_prev_samples() && prev_tokens == nullptr)
    return InvalidArgument("the batch reads tokens of the previous step's samples, but none were given");
  RETURN_IF_ERROR(m.RunDecodeGraph(ctx, b, cache, &graphed, logits, prev_tokens));
  if (graphed) return OkStatus();
  const int64_t r = static_cast<int64_t>(b.logit_rows.size());
  float* out = nullptr;
  if (m.device == DeviceKind::kCpu) {
    ASSIGN_OR_RETURN(out, m.logits_host.Grow(m.device, std::max<int64_t>(r, 1) * c.vocab_size));
  } else {
    ASSIGN_OR_RETURN(out, m.logits_dev.Grow(m.device, std::max<int64_t>(r, 1) * c.vocab_size));
  }
  ASSIGN_OR_RETURN(const BatchIndex bi, m.UploadBatch(ctx, b, prev_tokens));
  const StepShape st{b.num_tokens(), b.num_seqs(), b.max_blocks_per_seq, &b.logit_rows};
  RETURN_IF_ERROR(m.Queue(ctx, st, bi, cache, out));
  *logits = out;
  return OkStatus();
}

Status Model::Forward(const ExecContext& ctx, const ForwardBatch& b, KvCache& cache, std::vector<float>* logits) {
  const float* out = nullptr;
  RETURN_IF_ERROR(ForwardKeepLogits(ctx, b, cache, &out));
  const int64_t n = static_cast<int64_t>(b.logit_rows.size()) * impl_->config.vocab_size;
  logits->resize(static_cast<size_t>(n));
  if (n == 0) return Synchronize(ctx);
  return CopyToHost(ctx, logits->data(), out, n * 4);
}

void Model::SetDecodeGraphs(bool on) { impl_->decode_graphs = on; }

void Model::DropDecodeGraphs() { impl_->graphs.clear(); }

}  // namespace tide
