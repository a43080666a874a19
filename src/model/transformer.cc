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
// Scratch<T>, copies go through backend/device_memory.h, and only the MoE routing and
// the final logits come back to the host.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "backend/device_memory.h"
#include "base/file.h"
#include "base/log.h"
#include "model/model.h"
#include "model/weights.h"
#include "ops/add/add.h"
#include "ops/attention/attention.h"
#include "ops/cache_write/cache_write.h"
#include "ops/embedding/embedding.h"
#include "ops/matmul/matmul.h"
#include "ops/moe_route/moe_route.h"
#include "ops/rms_norm/rms_norm.h"
#include "ops/rope/rope.h"
#include "ops/silu_mul/silu_mul.h"

namespace tide {

namespace {

// A scratch array on the model's device, grown on demand and reused every step (no
// allocation in steady state). On the CPU it is a std::vector as it always was.
template <typename T>
class Scratch {
 public:
  Result<T*> Grow(DeviceKind device, int64_t n) {
    if (device == DeviceKind::kCpu) {
      if (static_cast<int64_t>(host_.size()) < n) host_.resize(static_cast<size_t>(n));
      return host_.data();
    }
    if (dev_.size() < n * static_cast<int64_t>(sizeof(T))) {
      dev_ = DeviceBuffer();  // free first: the old and new buffers need not fit together
      ASSIGN_OR_RETURN(dev_, DeviceBuffer::Allocate(device, std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(T))));
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
  Scratch<float> resid, h, delta, q, k, v, attn, gate_up, gate, up, act;
  Scratch<float> router_logits, moe_x, moe_y, shared_y, shared_gate, logit_h, logits_dev;
  Scratch<int32_t> expert_ids;
  Scratch<float> expert_weights;
  Scratch<uint8_t> batch_dev;  // the batch's index arrays, back to back (kCuda)
  std::vector<uint8_t> batch_host;
  std::vector<int32_t> ids_host;
  std::vector<float> wts_host, gate_host;

  Status LoadWeights();
  Result<const TensorInfo*> Find(const WeightDecl& d) const;
  // A norm weight or bias on the model's device (null for an empty vector).
  const float* Vec(const std::vector<float>& v) const {
    if (v.empty()) return nullptr;
    if (device == DeviceKind::kCpu) return v.data();
    return dev_vectors.at(v.data());
  }
  void Linear(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y) const;
  Result<BatchIndex> UploadBatch(const ExecContext& ctx, const ForwardBatch& b);
  Status Mlp(const ExecContext& ctx, const MlpWeights& m, int64_t inter, const float* x, int64_t n, float* y);
  Status Moe(const ExecContext& ctx, const LayerWeights& lw, int64_t n_tokens, const float* x, float* out);
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
    for (LinearWeights* lin : {&l.q, &l.k, &l.v, &l.o}) fn(lin->bias);
    mlp(l.mlp);
    for (MlpWeights& e : l.experts) mlp(e);
    mlp(l.shared_expert);
  }
}

}  // namespace

void Model::Impl::Linear(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y) const {
  MatmulParams p;
  p.x = x;
  p.w = lw.w;
  p.bias = Vec(lw.bias);
  p.y = y;
  p.m = m;
  p.n = lw.w.shape[0];
  p.k = lw.w.shape[1];
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
  if (n == 1) {
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
  // The grouping of tokens by expert is host policy: on a GPU the routing comes back.
  if (device != DeviceKind::kCpu) {
    ids_host.resize(static_cast<size_t>(t * top_k));
    wts_host.resize(static_cast<size_t>(t * top_k));
    RETURN_IF_ERROR(CopyToHost(ctx, ids_host.data(), ids, t * top_k * 4));
    RETURN_IF_ERROR(CopyToHost(ctx, wts_host.data(), wts, t * top_k * 4));
    ids = ids_host.data();
    wts = wts_host.data();
  }

  RETURN_IF_ERROR(FillZero(ctx, out, t * hd * 4));
  // Experts in id order, as the reference sums them; each token's sum order therefore
  // depends only on its own routing, never on the rest of the batch.
  std::vector<int64_t> rows;
  std::vector<float> row_w;
  for (int e = 0; e < n_exp; ++e) {
    rows.clear();
    row_w.clear();
    for (int64_t i = 0; i < t; ++i)
      for (int j = 0; j < top_k; ++j)
        if (ids[i * top_k + j] == e) {
          rows.push_back(i);
          row_w.push_back(wts[i * top_k + j]);
        }
    if (rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(rows.size());
    ASSIGN_OR_RETURN(float* xe, moe_x.Grow(device, n * hd));
    for (int64_t r = 0; r < n; ++r)
      RETURN_IF_ERROR(CopyOnDevice(ctx, xe + r * hd, x + rows[static_cast<size_t>(r)] * hd, hd * 4));
    ASSIGN_OR_RETURN(float* ye, moe_y.Grow(device, n * hd));
    RETURN_IF_ERROR(Mlp(ctx, lw.experts[static_cast<size_t>(e)], config.moe_intermediate_size, xe, n, ye));
    for (int64_t r = 0; r < n; ++r)
      Add(ctx, AddParams{ye + r * hd, out + rows[static_cast<size_t>(r)] * hd, hd, row_w[static_cast<size_t>(r)]});
  }
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
    if (device != DeviceKind::kCpu) {
      gate_host.resize(static_cast<size_t>(t));
      RETURN_IF_ERROR(CopyToHost(ctx, gate_host.data(), g, t * 4));
      g = gate_host.data();
    }
    for (int64_t i = 0; i < t; ++i) {
      const float s = 1.f / (1.f + std::exp(-g[i]));
      Add(ctx, AddParams{ys + i * hd, out + i * hd, hd, s});
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

Result<BatchIndex> Model::Impl::UploadBatch(const ExecContext& ctx, const ForwardBatch& b) {
  if (device == DeviceKind::kCpu)
    return BatchIndex{b.tokens.data(), b.positions.data(), b.q_start.data(), b.kv_len.data(), b.block_table.data(),
                      b.slots.data()};
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
  auto at = [&](int i) { return reinterpret_cast<const int32_t*>(d + offsets[i]); };
  return BatchIndex{at(0), at(1), at(2), at(3), at(4), reinterpret_cast<const int64_t*>(d)};
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
  int64_t done = 0;
  std::vector<float> widened;
  for (auto& [host, t] : todo) {
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

Status Model::Forward(const ExecContext& ctx, const ForwardBatch& b, KvCache& cache, std::vector<float>* logits) {
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

  const DeviceKind dev = m.device;
  const int64_t t = b.num_tokens(), hd = c.hidden_size;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  ASSIGN_OR_RETURN(float* resid, m.resid.Grow(dev, t * hd));
  ASSIGN_OR_RETURN(float* h, m.h.Grow(dev, t * hd));
  ASSIGN_OR_RETURN(float* delta, m.delta.Grow(dev, t * hd));
  ASSIGN_OR_RETURN(float* q, m.q.Grow(dev, t * q_dim));
  ASSIGN_OR_RETURN(float* k, m.k.Grow(dev, t * kv_dim));
  ASSIGN_OR_RETURN(float* v, m.v.Grow(dev, t * kv_dim));
  ASSIGN_OR_RETURN(float* attn, m.attn.Grow(dev, t * q_dim));
  ASSIGN_OR_RETURN(const BatchIndex bi, m.UploadBatch(ctx, b));
  const float eps = static_cast<float>(c.rms_norm_eps);

  Embedding(ctx, EmbeddingParams{bi.tokens, m.w.embed, resid, t});
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = m.w.layers[static_cast<size_t>(l)];
    // Pre-norm; from the second layer on, the previous block's output joins the residual here.
    RmsNorm(ctx, RmsNormParams{l == 0 ? resid : delta, l == 0 ? nullptr : resid, m.Vec(lw.attn_norm), h, t, hd, eps});

    // 1. Projections [t, heads * head_dim]  2. q/k norm per head  3. RoPE  4. K/V into
    // the paged cache  5. attention over the cache  6. output projection.
    m.Linear(ctx, lw.q, h, t, q);
    m.Linear(ctx, lw.k, h, t, k);
    m.Linear(ctx, lw.v, h, t, v);
    if (c.qk_norm) {
      RmsNorm(ctx, RmsNormParams{q, nullptr, m.Vec(lw.q_norm), q, t * c.num_heads, c.head_dim, eps});
      RmsNorm(ctx, RmsNormParams{k, nullptr, m.Vec(lw.k_norm), k, t * c.num_kv_heads, c.head_dim, eps});
    }
    RopeParams rp;
    rp.q = q;
    rp.k = k;
    rp.positions = bi.positions;
    rp.inv_freq = dev == DeviceKind::kCpu ? m.inv_freq.data() : m.dev_inv_freq;
    rp.n_tokens = t;
    rp.n_heads = c.num_heads;
    rp.n_kv_heads = c.num_kv_heads;
    rp.head_dim = c.head_dim;
    rp.rotary_dim = c.rotary_dim;
    rp.style = c.rope_style;
    Rope(ctx, rp);
    CacheWriteParams cw;
    cw.k = k;
    cw.v = v;
    cw.k_cache = cache.k(l);
    cw.v_cache = cache.v(l);
    cw.slots = bi.slots;
    cw.n_tokens = t;
    cw.num_blocks = cs.num_blocks;
    cw.block_size = cs.block_size;
    cw.n_kv_heads = c.num_kv_heads;
    cw.head_dim = c.head_dim;
    CacheWrite(ctx, cw);
    AttentionParams ap;
    ap.q = q;
    ap.k_cache = cache.k(l);
    ap.v_cache = cache.v(l);
    ap.out = attn;
    ap.q_start = bi.q_start;
    ap.kv_len = bi.kv_len;
    ap.block_table = bi.block_table;
    ap.n_seqs = b.num_seqs();
    ap.max_blocks_per_seq = b.max_blocks_per_seq;
    ap.n_tokens = t;
    ap.num_blocks = cs.num_blocks;
    ap.n_heads = c.num_heads;
    ap.n_kv_heads = c.num_kv_heads;
    ap.head_dim = c.head_dim;
    ap.block_size = cs.block_size;
    ap.scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
    Attention(ctx, ap);
    m.Linear(ctx, lw.o, attn, t, delta);

    RmsNorm(ctx, RmsNormParams{delta, resid, m.Vec(lw.ffn_norm), h, t, hd, eps});
    if (lw.moe) {
      RETURN_IF_ERROR(m.Moe(ctx, lw, t, h, delta));
    } else {
      RETURN_IF_ERROR(m.Mlp(ctx, lw.mlp, c.intermediate_size, h, t, delta));
    }
  }
  RmsNorm(ctx, RmsNormParams{delta, resid, m.Vec(m.w.final_norm), h, t, hd, eps});

  const int64_t r = static_cast<int64_t>(b.logit_rows.size());
  logits->resize(static_cast<size_t>(r * c.vocab_size));
  if (r == 0) return Synchronize(ctx);
  ASSIGN_OR_RETURN(float* lh, m.logit_h.Grow(dev, r * hd));
  for (int64_t i = 0; i < r; ++i)
    RETURN_IF_ERROR(CopyOnDevice(ctx, lh + i * hd, h + int64_t{b.logit_rows[static_cast<size_t>(i)]} * hd, hd * 4));
  float* out = logits->data();
  if (dev != DeviceKind::kCpu) {
    ASSIGN_OR_RETURN(out, m.logits_dev.Grow(dev, r * c.vocab_size));
  }
  MatmulParams lp;
  lp.x = lh;
  lp.w = m.w.lm_head;
  lp.y = out;
  lp.m = r;
  lp.n = c.vocab_size;
  lp.k = hd;
  Matmul(ctx, lp);
  if (dev != DeviceKind::kCpu) RETURN_IF_ERROR(CopyToHost(ctx, logits->data(), out, r * c.vocab_size * 4));
  return OkStatus();
}

}  // namespace tide
