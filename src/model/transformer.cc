// The decoder-only transformer shared by every supported architecture:
//   x = embed(tokens)
//   for each layer:  x += attn(norm(x));  x += mlp_or_moe(norm(x))
//   logits = lm_head(norm(x))      (only for the rows that sample)
// Architectures differ by switches in ModelConfig (qkv bias, q/k norm, MoE layers,
// shared expert, tied embeddings, rope scaling), never by copies of this file.
#include <algorithm>
#include <cmath>
#include <cstring>

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

struct Model::Impl {
  ModelConfig config;
  std::unique_ptr<WeightStore> store;
  TransformerWeights w;
  std::vector<float> inv_freq;                 // [rotary_dim / 2]
  std::vector<std::vector<uint8_t>> realigned;  // copies of tensors the file left misaligned

  // Scratch, grown on demand and reused every step (no allocation in steady state).
  std::vector<float> resid, h, delta, q, k, v, attn, gate_up, gate, up, act;
  std::vector<float> router_logits, moe_x, moe_y, shared_y, shared_gate, logit_h;
  std::vector<int32_t> expert_ids;
  std::vector<float> expert_weights;

  Status LoadWeights();
  Result<const TensorInfo*> Find(const WeightDecl& d) const;
  void Mlp(const ExecContext& ctx, const MlpWeights& m, int64_t inter, const float* x, int64_t n, float* y);
  void Moe(const ExecContext& ctx, const LayerWeights& lw, int64_t n_tokens);
};

namespace {

template <typename T>
T* Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

int Alignment(DType t) { return t == DType::kF32 || t == DType::kI32 ? 4 : 2; }

void Linear(const ExecContext& ctx, const LinearWeights& lw, const float* x, int64_t m, float* y) {
  MatmulParams p;
  p.x = x;
  p.w = lw.w;
  p.bias = lw.bias.empty() ? nullptr : lw.bias.data();
  p.y = y;
  p.m = m;
  p.n = lw.w.shape[0];
  p.k = lw.w.shape[1];
  Matmul(ctx, p);
}

}  // namespace

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

void Model::Impl::Mlp(const ExecContext& ctx, const MlpWeights& m, int64_t inter, const float* x, int64_t n, float* y) {
  float* gu = Grow(gate_up, n * 2 * inter);
  if (n == 1) {
    // One row: [gate | up] is already the layout silu_mul wants.
    Linear(ctx, m.gate, x, 1, gu);
    Linear(ctx, m.up, x, 1, gu + inter);
  } else {
    float* g = Grow(gate, n * inter);
    float* u = Grow(up, n * inter);
    Linear(ctx, m.gate, x, n, g);
    Linear(ctx, m.up, x, n, u);
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(gu + r * 2 * inter, g + r * inter, static_cast<size_t>(inter) * 4);
      std::memcpy(gu + r * 2 * inter + inter, u + r * inter, static_cast<size_t>(inter) * 4);
    }
  }
  float* a = Grow(act, n * inter);
  SiluMul(ctx, SiluMulParams{gu, a, n, inter});
  Linear(ctx, m.down, a, n, y);
}

void Model::Impl::Moe(const ExecContext& ctx, const LayerWeights& lw, int64_t t) {
  const int64_t hd = config.hidden_size;
  const int n_exp = config.num_experts, top_k = config.num_experts_per_tok;
  float* logits = Grow(router_logits, t * n_exp);
  MatmulParams rp;
  rp.x = h.data();
  rp.w = lw.router;
  rp.y = logits;
  rp.m = t;
  rp.n = n_exp;
  rp.k = hd;
  Matmul(ctx, rp);
  int32_t* ids = Grow(expert_ids, t * top_k);
  float* wts = Grow(expert_weights, t * top_k);
  MoeRoute(ctx, MoeRouteParams{logits, ids, wts, t, n_exp, top_k, config.norm_topk_prob});

  float* out = delta.data();
  std::fill(out, out + t * hd, 0.f);
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
    float* xe = Grow(moe_x, n * hd);
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(xe + r * hd, h.data() + rows[static_cast<size_t>(r)] * hd, static_cast<size_t>(hd) * 4);
    float* ye = Grow(moe_y, n * hd);
    Mlp(ctx, lw.experts[static_cast<size_t>(e)], config.moe_intermediate_size, xe, n, ye);
    for (int64_t r = 0; r < n; ++r)
      Add(ctx, AddParams{ye + r * hd, out + rows[static_cast<size_t>(r)] * hd, hd, row_w[static_cast<size_t>(r)]});
  }
  if (config.shared_expert_intermediate_size > 0) {
    float* ys = Grow(shared_y, t * hd);
    Mlp(ctx, lw.shared_expert, config.shared_expert_intermediate_size, h.data(), t, ys);
    float* g = Grow(shared_gate, t);
    MatmulParams gp;
    gp.x = h.data();
    gp.w = lw.shared_expert_gate;
    gp.y = g;
    gp.m = t;
    gp.n = 1;
    gp.k = hd;
    Matmul(ctx, gp);
    for (int64_t i = 0; i < t; ++i) {
      const float s = 1.f / (1.f + std::exp(-g[i]));
      Add(ctx, AddParams{ys + i * hd, out + i * hd, hd, s});
    }
  }
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

Status Model::Forward(const ExecContext& ctx, const ForwardBatch& b, KvCache& cache, std::vector<float>* logits) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const KvCacheShape& cs = cache.shape();
  if (cs.num_layers != c.num_layers || cs.n_kv_heads != c.num_kv_heads || cs.head_dim != c.head_dim)
    return InvalidArgument("KV cache shape does not match the model");
  RETURN_IF_ERROR(b.Validate(cs.num_blocks, cs.block_size, c.vocab_size));

  const int64_t t = b.num_tokens(), hd = c.hidden_size;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  float* resid = Grow(m.resid, t * hd);
  float* h = Grow(m.h, t * hd);
  float* delta = Grow(m.delta, t * hd);
  float* q = Grow(m.q, t * q_dim);
  float* k = Grow(m.k, t * kv_dim);
  float* v = Grow(m.v, t * kv_dim);
  float* attn = Grow(m.attn, t * q_dim);

  Embedding(ctx, EmbeddingParams{b.tokens.data(), m.w.embed, resid, t});
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = m.w.layers[static_cast<size_t>(l)];
    // Pre-norm; from the second layer on, the previous block's output joins the residual here.
    RmsNorm(ctx, RmsNormParams{l == 0 ? resid : delta, l == 0 ? nullptr : resid, lw.attn_norm.data(), h, t, hd,
                               static_cast<float>(c.rms_norm_eps)});

    // 1. Projections [t, heads * head_dim]  2. q/k norm per head  3. RoPE  4. K/V into
    // the paged cache  5. attention over the cache  6. output projection.
    Linear(ctx, lw.q, h, t, q);
    Linear(ctx, lw.k, h, t, k);
    Linear(ctx, lw.v, h, t, v);
    if (c.qk_norm) {
      const float eps = static_cast<float>(c.rms_norm_eps);
      RmsNorm(ctx, RmsNormParams{q, nullptr, lw.q_norm.data(), q, t * c.num_heads, c.head_dim, eps});
      RmsNorm(ctx, RmsNormParams{k, nullptr, lw.k_norm.data(), k, t * c.num_kv_heads, c.head_dim, eps});
    }
    RopeParams rp;
    rp.q = q;
    rp.k = k;
    rp.positions = b.positions.data();
    rp.inv_freq = m.inv_freq.data();
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
    cw.slots = b.slots.data();
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
    ap.q_start = b.q_start.data();
    ap.kv_len = b.kv_len.data();
    ap.block_table = b.block_table.data();
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
    Linear(ctx, lw.o, attn, t, delta);

    RmsNorm(ctx, RmsNormParams{delta, resid, lw.ffn_norm.data(), h, t, hd, static_cast<float>(c.rms_norm_eps)});
    if (lw.moe) {
      m.Moe(ctx, lw, t);
    } else {
      m.Mlp(ctx, lw.mlp, c.intermediate_size, h, t, delta);
    }
  }
  RmsNorm(ctx, RmsNormParams{delta, resid, m.w.final_norm.data(), h, t, hd, static_cast<float>(c.rms_norm_eps)});

  const int64_t r = static_cast<int64_t>(b.logit_rows.size());
  logits->resize(static_cast<size_t>(r * c.vocab_size));
  if (r == 0) return OkStatus();
  float* lh = Grow(m.logit_h, r * hd);
  for (int64_t i = 0; i < r; ++i)
    std::memcpy(lh + i * hd, h + int64_t{b.logit_rows[static_cast<size_t>(i)]} * hd, static_cast<size_t>(hd) * 4);
  MatmulParams lp;
  lp.x = lh;
  lp.w = m.w.lm_head;
  lp.y = logits->data();
  lp.m = r;
  lp.n = c.vocab_size;
  lp.k = hd;
  Matmul(ctx, lp);
  return OkStatus();
}

}  // namespace tide
