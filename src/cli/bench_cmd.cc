// tide bench forward: engine-level prefill and decode speed, each as a fraction of the
// machine limit measured in the same run (memory read bandwidth for decode, FMA peak
// for prefill; with --device cuda, the GPU's read bandwidth and bf16 GEMM rate);
// --trace-overhead then traces a few more decode steps per batch with CUPTI (GPU busy
// time vs step wall time: bench/decode_overhead.h).
// tide bench offline: the engine under a batch of requests submitted at once
// (continuous batching across --max-num-seqs values; prefix cache off/on).
// tide bench serve: an HTTP load generator for any OpenAI-compatible server (src/bench/).
#include <cmath>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <sstream>

#include "backend/cpu/thread_pool.h"
#include "backend/cuda/limits.h"
#include "backend/device_memory.h"
#include "base/file.h"
#include "base/rng.h"
#include "bench/decode_overhead.h"
#include "bench/machine_limits.h"
#include "bench/serve_cli.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "engine/model_runner.h"
#include "engine/offline.h"
#include "model/builtin.h"
#include "model/synth.h"

namespace tide::cli {
namespace {

// Qwen2.5-0.5B's shape: the default benchmark model (synthesised, bf16).
constexpr const char* kQwen25_05B = R"({
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
  "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
  "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
  "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
  "tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151645
}
)";

struct BenchArgs {
  std::string model;
  std::string synth_config;
  std::string dtype = "bf16";
  std::string batches = "1,8,32";
  int prompt_len = 128;
  int decode_steps = 32;
  int threads = 0;
  std::string device = "cpu";
  int prefill_chunk = 0;  // tokens per engine step; 0 = 512 on CPU, 8192 on CUDA
  bool trace_overhead = false;
  float temperature = 0.f;  // 0: greedy; otherwise every row is sampled (on the GPU on CUDA)
  int top_k = 0;
  float top_p = 1.f;
};

// The runner under test, timing its decode forwards (a step with one token per
// sequence): on CUDA the engine step also holds host sampling, so the GPU step is
// reported beside it.
class TimedRunner final : public ModelRunner {
 public:
  explicit TimedRunner(std::unique_ptr<ModelRunner> inner) : inner_(std::move(inner)) {}
  const ModelConfig& config() const override { return inner_->config(); }
  int64_t kv_bytes_per_token() const override { return inner_->kv_bytes_per_token(); }
  Status AllocateKvCache(int64_t num_blocks, int block_size) override {
    return inner_->AllocateKvCache(num_blocks, block_size);
  }
  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override {
    const double t0 = EngineClock();
    Status s = inner_->Forward(batch, logits);
    if (batch.num_tokens() == batch.num_seqs()) {
      decode_seconds += EngineClock() - t0;
      ++decode_steps;
    }
    return s;
  }
  // The engine samples greedy rows on the device through this when it can: time it the
  // same way, or the bench would measure the logits-copy path the engine no longer takes.
  Status ForwardGreedy(const ForwardBatch& batch, int top_logprobs, std::vector<SampleResult>* out) override {
    const double t0 = EngineClock();
    Status s = inner_->ForwardGreedy(batch, top_logprobs, out);
    if (batch.num_tokens() == batch.num_seqs()) {
      decode_seconds += EngineClock() - t0;
      ++decode_steps;
    }
    return s;
  }
  // The engine's usual path (async scheduling, rows sampled by the runner). A decode
  // step launched with nothing else in flight is timed from Launch to its Collect; under
  // async scheduling a step is queued behind the running one, so none is. The decode
  // step period is the time between the results of two consecutive decode steps: with
  // a step queued behind the running one, a step's own launch-to-results time spans
  // about two periods.
  Status Launch(const ForwardBatch& batch, std::span<const RowSampling> rows) override {
    const double t0 = EngineClock();
    Status s = inner_->Launch(batch, rows);
    if (s.ok()) launched_.push_back({batch.num_tokens() == batch.num_seqs(), launched_.empty(), t0});
    return s;
  }
  bool LaunchIsAsync() const override { return inner_->LaunchIsAsync(); }
  Status Collect(std::vector<SampleResult>* out) override {
    Status s = inner_->Collect(out);
    const double now = EngineClock();
    if (!launched_.empty()) {
      const InFlight f = launched_.front();
      launched_.pop_front();
      if (f.decode && f.alone) {
        decode_seconds += now - f.launched_at;
        ++decode_steps;
      }
      if (f.decode && last_was_decode_) {
        decode_period_seconds += now - last_collect_;
        ++decode_periods;
      }
      last_was_decode_ = f.decode;
      last_collect_ = now;
    }
    return s;
  }
  double decode_seconds = 0;
  int64_t decode_steps = 0;
  double decode_period_seconds = 0;
  int64_t decode_periods = 0;

 private:
  struct InFlight {
    bool decode = false;
    bool alone = false;  // nothing else was in flight at launch
    double launched_at = 0;
  };
  std::unique_ptr<ModelRunner> inner_;
  std::deque<InFlight> launched_;
  bool last_was_decode_ = false;
  double last_collect_ = 0;
};

Result<std::string> BenchModelPath(const BenchArgs& a) {
  if (!a.model.empty()) return a.model;
  std::string text = kQwen25_05B;
  if (!a.synth_config.empty()) {
    ASSIGN_OR_RETURN(text, ReadFileToString(a.synth_config, 16u << 20));
  }
  ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(text, a.synth_config.empty() ? "qwen2.5-0.5b shape" : a.synth_config));
  SynthOptions o;
  if (!ParseDType(a.dtype, &o.dtype)) return InvalidArgument("--dtype: unknown dtype '" + a.dtype + "'");
  // Cache by content so a second run skips the write.
  const uint64_t key = Mix64(std::hash<std::string>{}(text) ^ static_cast<uint64_t>(o.dtype));
  ASSIGN_OR_RETURN(std::string builtin, EnsureBuiltinModel());
  const std::string dir = builtin.substr(0, builtin.rfind('/')) + "/bench-" + std::to_string(key);
  if (FileExists(dir + "/.complete")) return dir;
  o.pool = &ThreadPool::Global();
  std::fprintf(stderr, "[tide] synthesising the benchmark model (%.0f M parameters, %s) into %s\n",
               static_cast<double>(config.NumParameters()) / 1e6, a.dtype.c_str(), dir.c_str());
  RETURN_IF_ERROR(SynthesizeModel(config, text, o, dir));
  RETURN_IF_ERROR(WriteStringToFile(dir + "/.complete", "ok\n"));
  return dir;
}

Status Run(const BenchArgs& a) {
  ThreadPool::SetGlobalThreads(a.threads);
  ThreadPool& pool = ThreadPool::Global();
  std::vector<int> batches;
  {
    std::stringstream in(a.batches);
    std::string item;
    while (std::getline(in, item, ',')) {
      int b = 0;
      try {
        b = std::stoi(item);
      } catch (const std::exception&) {
        return InvalidArgument("--batch: '" + item + "' is not an integer");
      }
      if (b <= 0 || b > 1024) return InvalidArgument("--batch: sizes must be in [1, 1024]");
      batches.push_back(b);
    }
  }
  if (a.device != "cpu" && a.device != "cuda") return InvalidArgument("--device must be cpu or cuda, got " + a.device);
  const bool gpu = a.device == "cuda";
  std::unique_ptr<cuda::KernelTracer> tracer;
  if (a.trace_overhead) {
    // Before anything slow: a build or machine without CUPTI fails here.
    Result<std::unique_ptr<cuda::KernelTracer>> t = cuda::KernelTracer::Create();
    if (!t.ok()) return t.status().WithContext("--trace-overhead");
    if (!gpu) return InvalidArgument("--trace-overhead needs --device cuda");
    tracer = std::move(*t);
    std::fprintf(stderr, "[tide] --trace-overhead: %s\n", tracer->library().c_str());
  }
  if (gpu) {
    std::string why;
    if (!CudaAvailable(&why)) return Unimplemented("--device cuda: " + why);
  }
  ASSIGN_OR_RETURN(std::string path, BenchModelPath(a));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  const ModelConfig& c = model->config();
  ExecContext ctx;
  ctx.pool = &pool;
  MachineLimits lim;
  if (gpu) {
    ctx.device = DeviceKind::kCuda;
    std::fprintf(stderr, "[tide] measuring %s: read bandwidth, copy, bf16 GEMM...\n", CudaDeviceName().c_str());
    ASSIGN_OR_RETURN(cuda::GpuLimits g, cuda::MeasureGpuLimits());
    std::fprintf(stderr, "[tide] moving the weights to the GPU...\n");
    RETURN_IF_ERROR(model->PlaceOn(ctx));
    lim.mem_read_bytes_per_s = g.read_bytes_per_s;
    lim.fma_f32_flops_per_s = g.bf16_gemm_flops_per_s;
    std::printf("gpu: %s, read %.0f GB/s, d2d copy %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n",
                CudaDeviceName().c_str(), g.read_bytes_per_s / 1e9, g.copy_bytes_per_s / 1e9,
                g.bf16_gemm_flops_per_s / 1e12);
  } else {
    std::fprintf(stderr, "[tide] measuring machine limits (%d threads)...\n", pool.num_threads());
    ASSIGN_OR_RETURN(lim, MeasureMachineLimits(pool));
  }

  // Bytes every decode step must read: every weight matrix once (the embedding table is
  // only gathered, unless it doubles as the LM head).
  // Routed experts are read only when some token of the step picks them: their bytes are
  // counted at the expected share of experts a batch of b tokens touches under uniform
  // routing, 1 - (1 - top_k/E)^b (random weights route about uniformly); their FLOPs at
  // top_k/E per token.
  uint64_t weight_bytes = 0, expert_bytes = 0;
  int64_t expert_params = 0;
  for (const auto& [name, t] : model->weights().tensors()) {
    const bool is_embed = name == "model.embed_tokens.weight" || name == "token_embd.weight";
    const bool is_expert = c.num_experts > 0 && (name.find(".experts.") != std::string::npos ||
                                                 name.find("_exps.") != std::string::npos);
    if (is_expert) {
      expert_bytes += t.nbytes;
      expert_params += t.shape.numel();
    } else if (!is_embed || c.tie_word_embeddings) {
      weight_bytes += t.nbytes;
    }
  }
  const double expert_share = c.num_experts > 0 ? static_cast<double>(c.num_experts_per_tok) / c.num_experts : 1.0;
  auto step_weight_bytes = [&](double tokens) {
    return static_cast<double>(weight_bytes) + static_cast<double>(expert_bytes) * (1.0 - std::pow(1.0 - expert_share, tokens));
  };
  // Matmul FLOPs per prompt token, excluding the LM head (computed for one row per sequence).
  const double per_token_params =
      static_cast<double>(c.NumParameters() - c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2)) -
      static_cast<double>(expert_params) * (1.0 - expert_share);
  const double kv_per_token = static_cast<double>(c.KvBytesPerToken(4));

  std::printf("model: %s (%s, %.1f M params, weights %s)\n", path.c_str(), c.architecture.c_str(),
              static_cast<double>(c.NumParameters()) / 1e6, FormatBytes(static_cast<double>(weight_bytes + expert_bytes)).c_str());

  std::printf("%-6s %-7s | %12s %10s | %12s %10s %5s", "batch", "prompt", "prefill tok/s", "of peak", "decode tok/s",
              "of floor", "bound");
  if (gpu) std::printf(" | %12s %10s %9s", "forward tok/s", "of floor", "ms/step");
  std::printf("\n");
  // bsz random prompts, each decoding `new_tokens` tokens.
  auto make_requests = [&](int bsz, int new_tokens) {
    std::vector<Request> reqs(static_cast<size_t>(bsz));
    Rng rng(static_cast<uint64_t>(bsz));
    for (size_t k = 0; k < reqs.size(); ++k) {
      Request& r = reqs[k];
      r.id = std::to_string(k);
      for (int i = 0; i < a.prompt_len; ++i) r.prompt.push_back(static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(c.vocab_size)));
      r.sampling.max_tokens = new_tokens;
      r.sampling.ignore_eos = true;
      r.sampling.temperature = a.temperature;
      r.sampling.top_k = a.top_k;
      r.sampling.top_p = a.top_p;
      r.sampling.seed = k;
    }
    return reqs;
  };
  // Every request at once through the engine: prefill in chunks of the step budget,
  // then all decode together (prefix caching off: the prompts are random anyway). The
  // CUDA default is vLLM's offline step budget (8192): a GPU prefills a 4k prompt in one
  // step, and 512-row GEMMs would leave its tensor cores a third idle.
  auto engine_options = [&](int bsz, int new_tokens) {
    const int chunk = a.prefill_chunk > 0 ? a.prefill_chunk : a.device == "cuda" ? 8192 : 512;
    EngineOptions eo;
    eo.enable_prefix_caching = false;
    eo.max_num_seqs = bsz;
    eo.max_num_batched_tokens = std::max(chunk, bsz);
    eo.max_model_len = a.prompt_len + new_tokens;
    eo.num_kv_blocks = int64_t{bsz} * ((eo.max_model_len + eo.block_size - 1) / eo.block_size);
    return eo;
  };
  std::map<int, double> untraced_step_ms;  // batch -> engine decode step of the timed run
  for (int bsz : batches) {
    const std::vector<Request> reqs = make_requests(bsz, a.decode_steps + 1);
    const EngineOptions eo = engine_options(bsz, a.decode_steps + 1);
    auto runner = std::make_unique<TimedRunner>(MakeModelRunner(*model, ctx));
    ASSIGN_OR_RETURN(std::unique_ptr<EngineCore> core, EngineCore::Create(*runner, nullptr, eo));
    std::vector<Request> engine_reqs;
    for (size_t i = 0; i < reqs.size(); ++i) {
      Request r;
      r.id = std::to_string(i);
      r.prompt = reqs[i].prompt;
      r.sampling = reqs[i].sampling;
      engine_reqs.push_back(std::move(r));
    }
    ASSIGN_OR_RETURN(auto outs, RunToCompletion(*core, std::move(engine_reqs)));
    (void)outs;
    if (!gpu) {
      // Probe again right after the row and keep the better figure of each limit: on a
      // shared machine the probe taken at start may have run while others were busy,
      // which would inflate every fraction.
      MachineLimitsOptions quick;
      quick.bandwidth_runs = 3;
      quick.fma_runs = 3;
      ASSIGN_OR_RETURN(MachineLimits again, MeasureMachineLimits(pool, quick));
      lim.mem_read_bytes_per_s = std::max(lim.mem_read_bytes_per_s, again.mem_read_bytes_per_s);
      lim.fma_f32_flops_per_s = std::max(lim.fma_f32_flops_per_s, again.fma_f32_flops_per_s);
    }
    const EngineStats st = core->stats();
    const double p = a.prompt_len;
    const double prefill_flops =
        bsz * (2.0 * per_token_params * p + 2.0 * c.num_heads * c.head_dim * c.num_layers * p * (p + 1) +
               2.0 * static_cast<double>(c.vocab_size * c.hidden_size));
    const double prefill_tps = static_cast<double>(st.num_prompt_tokens_computed) / st.prefill_step_seconds;
    const double prefill_frac = prefill_flops / st.prefill_step_seconds / lim.fma_f32_flops_per_s;
    const double avg_ctx = p + 1 + a.decode_steps / 2.0;
    const double step_bytes = step_weight_bytes(bsz) + bsz * avg_ctx * kv_per_token;
    // The engine's own decode-step time spans a step from launch to results, about two
    // step periods under async scheduling: time the period here instead.
    const double step_s = runner->decode_periods > 0
                              ? runner->decode_period_seconds / static_cast<double>(runner->decode_periods)
                              : st.decode_step_seconds / static_cast<double>(std::max<int64_t>(st.num_decode_steps, 1));
    const double decode_tps = bsz / step_s;
    // A decode step cannot beat the slower of its two roofs: reading every weight and the
    // KV once (bandwidth), or its arithmetic (FMA/GEMM peak) — at batch 32 on a CPU the
    // second binds, and a bandwidth-only fraction would understate the kernels.
    const double step_flops = bsz * (2.0 * per_token_params + 2.0 * static_cast<double>(c.vocab_size * c.hidden_size) +
                                     4.0 * c.num_heads * c.head_dim * c.num_layers * avg_ctx);
    const double mem_s = step_bytes / lim.mem_read_bytes_per_s;
    const double fma_s = step_flops / lim.fma_f32_flops_per_s;
    const double decode_frac = std::max(mem_s, fma_s) / step_s;
    std::printf("%-6d %-7d | %12.1f %9.1f%% | %12.1f %9.1f%% %5s", bsz, a.prompt_len, prefill_tps, 100 * prefill_frac,
                decode_tps, 100 * decode_frac, mem_s >= fma_s ? "mem" : "fma");
    if (gpu) {
      const double fwd_s = runner->decode_seconds / static_cast<double>(std::max<int64_t>(runner->decode_steps, 1));
      if (runner->decode_steps > 0)
        std::printf(" | %12.1f %9.1f%% %9.3f", bsz / fwd_s, 100 * step_bytes / fwd_s / lim.mem_read_bytes_per_s, 1e3 * fwd_s);
      else
        std::printf(" | %12s %10s %9s", "-", "-", "-");
      untraced_step_ms[bsz] = 1e3 * step_s;
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  if (!gpu)
    std::printf("machine: %d threads, memory read %.2f GB/s, f32 FMA peak %.1f GFLOP/s (best of the probes taken "
                "before and after each row)\n",
                lim.num_threads, lim.mem_read_bytes_per_s / 1e9, lim.fma_f32_flops_per_s / 1e9);
  if (gpu) {
    std::printf("decode floor = the slower of (weight bytes + KV bytes read) per step / measured read bandwidth "
                "(bound: mem) and the step's FLOPs / measured bf16 GEMM rate (bound: fma); prefill peak = "
                "measured bf16 GEMM rate (cuBLASLt); decode = engine step, timed between the results of consecutive "
                "decode steps (GPU forward + sampling), forward = "
                "the model step alone, launch to samples on the host (\"-\" under async scheduling, where every "
                "step is queued behind the running one)\n");
  } else {
    std::printf("decode floor = the slower of (weight bytes + KV bytes read) per step / measured bandwidth "
                "(bound: mem) and the step's FLOPs / measured f32 FMA rate (bound: fma); "
                "prefill peak = measured f32 FMA rate\n");
  }
  if (tracer) {
    // After every timed row, so CUPTI never runs under the timed figures; on for the
    // whole pass (see kernel_trace.h on enable/disable cycles).
    const bench::DecodeOverheadOptions to;
    RETURN_IF_ERROR(tracer->Start());
    std::printf("decode step overhead (GPU activity from CUPTI; %d decode steps per batch after %d warm-up ones, "
                "traced after the timed runs; host = before the first + after the last activity; model step with "
                "async scheduling off, engine step both ways):\n",
                to.traced_steps, to.warmup_steps);
    for (int bsz : batches) {
      // Enough tokens that no sequence finishes before the traced steps end, though the
      // first ones decode while the last prefill (mixed steps).
      const int chunk = a.prefill_chunk > 0 ? a.prefill_chunk : 8192;
      const int prefill_steps = static_cast<int>((int64_t{bsz} * a.prompt_len + chunk - 1) / chunk) + 1;
      const int new_tokens = prefill_steps + to.warmup_steps + to.traced_steps + 3;
      bench::DecodeOverhead mode[2];
      for (const bool async : {false, true}) {
        EngineOptions eo = engine_options(bsz, new_tokens);
        eo.async_scheduling = async;
        std::unique_ptr<ModelRunner> runner = MakeModelRunner(*model, ctx);
        ASSIGN_OR_RETURN(mode[async], bench::TraceDecodeOverhead(*runner, eo, make_requests(bsz, new_tokens), *tracer, to));
      }
      std::printf("batch %-4d model step (sync):   %s\n", bsz, bench::FormatStepOverhead(mode[0].model_step).c_str());
      std::printf("%-10s engine step (sync):  %s\n", "", bench::FormatStepOverhead(mode[0].engine_step).c_str());
      std::printf("%-10s engine step (async): %s; untraced %.3f ms\n", "",
                  bench::FormatStepOverhead(mode[1].engine_step).c_str(), untraced_step_ms[bsz]);
      std::fflush(stdout);
    }
    RETURN_IF_ERROR(tracer->Stop());
  }
  return OkStatus();
}

// ---- tide bench offline ----------------------------------------------------------------

struct OfflineArgs {
  BenchArgs model;  // model, synth, dtype, threads
  int num_requests = 32;
  std::string input_len = "64:256";
  std::string output_len = "16:64";
  std::string concurrency = "1,4,16";
  int shared_prefix = 0;
  // --max-num-seqs comes from --concurrency, prefix caching from --shared-prefix.
  EngineFlags engine = [] {
    EngineFlags f;
    f.kv_cache_memory = "2G";
    f.max_num_batched_tokens = 512;
    return f;
  }();
  uint64_t seed = 1;
};

Result<std::pair<int, int>> ParseRange(const std::string& flag, const std::string& s) {
  const size_t colon = s.find(':');
  try {
    const int lo = std::stoi(s.substr(0, colon));
    const int hi = colon == std::string::npos ? lo : std::stoi(s.substr(colon + 1));
    if (lo <= 0 || hi < lo) return InvalidArgument(flag + ": want MIN:MAX with 0 < MIN <= MAX, got '" + s + "'");
    return std::make_pair(lo, hi);
  } catch (const std::exception&) {
    return InvalidArgument(flag + ": want MIN:MAX, got '" + s + "'");
  }
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

Status RunOffline(const OfflineArgs& a) {
  ThreadPool::SetGlobalThreads(a.model.threads);
  ASSIGN_OR_RETURN(auto in_range, ParseRange("--input-len", a.input_len));
  ASSIGN_OR_RETURN(auto out_range, ParseRange("--output-len", a.output_len));
  std::vector<int> conc;
  {
    std::stringstream in(a.concurrency);
    std::string item;
    while (std::getline(in, item, ',')) {
      ASSIGN_OR_RETURN(auto r, ParseRange("--concurrency", item));
      conc.push_back(r.first);
    }
  }
  EngineOptions flags;
  RETURN_IF_ERROR(ApplyEngineFlags(a.engine, &flags));
  ASSIGN_OR_RETURN(std::string path, BenchModelPath(a.model));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  const ModelConfig& c = model->config();

  // The workload: the same requests for every configuration.
  Rng rng(a.seed);
  auto draw = [&](std::pair<int, int> r) {
    return r.first + static_cast<int>(rng.NextU64() % static_cast<uint64_t>(r.second - r.first + 1));
  };
  std::vector<int32_t> prefix;
  for (int i = 0; i < a.shared_prefix; ++i) prefix.push_back(static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(c.vocab_size)));
  std::vector<Request> reqs;
  int64_t max_len = 0;
  for (int i = 0; i < a.num_requests; ++i) {
    Request r;
    r.id = std::to_string(i);
    r.prompt = prefix;
    for (int k = draw(in_range); k > 0; --k) r.prompt.push_back(static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(c.vocab_size)));
    r.sampling.max_tokens = draw(out_range);
    r.sampling.ignore_eos = true;
    r.sampling.temperature = 0.f;
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(r.prompt.size()) + r.sampling.max_tokens);
    reqs.push_back(std::move(r));
  }
  std::printf("model: %s (%s, %.1f M params), %d threads\n", path.c_str(), c.architecture.c_str(),
              static_cast<double>(c.NumParameters()) / 1e6, ThreadPool::Global().num_threads());
  std::printf("workload: %d requests, input %s (+%d shared prefix), output %s tokens, all submitted at once\n",
              a.num_requests, a.input_len.c_str(), a.shared_prefix, a.output_len.c_str());
  std::printf("%-5s %-6s | %7s %9s | %21s | %21s | %6s %5s\n", "seqs", "cache", "req/s", "out tok/s",
              "TTFT p50/p90/p99 ms", "TPOT p50/p90/p99 ms", "hit %", "preempt");
  ExecContext ctx;
  ctx.pool = &ThreadPool::Global();
  std::vector<bool> cache_modes = a.shared_prefix > 0 ? std::vector<bool>{false, true} : std::vector<bool>{true};
  for (int seqs : conc) {
    for (bool cache : cache_modes) {
      EngineOptions eo = flags;
      eo.max_num_seqs = seqs;
      eo.max_num_batched_tokens = std::max<int64_t>(a.engine.max_num_batched_tokens, seqs);
      eo.max_model_len = max_len;
      eo.enable_prefix_caching = cache;
      std::unique_ptr<ModelRunner> runner = MakeModelRunner(*model, ctx);
      ASSIGN_OR_RETURN(std::unique_ptr<EngineCore> core, EngineCore::Create(*runner, nullptr, eo));
      if (seqs == conc.front() && cache == cache_modes.front())
        std::fprintf(stderr, "[tide] KV cache: %s\n", core->KvSummary().c_str());
      const double t0 = EngineClock();
      ASSIGN_OR_RETURN(std::vector<Completion> done, RunToCompletion(*core, reqs));
      double t_end = t0;
      int64_t out_tokens = 0;
      std::vector<double> ttft, tpot;
      for (const Completion& d : done) {
        RETURN_IF_ERROR(d.status);
        t_end = std::max(t_end, d.times.finished);
        out_tokens += d.usage.completion_tokens;
        ttft.push_back(1e3 * (d.times.first_token - d.times.arrival));
        if (d.usage.completion_tokens > 1)
          tpot.push_back(1e3 * (d.times.finished - d.times.first_token) / static_cast<double>(d.usage.completion_tokens - 1));
      }
      const double wall = t_end - t0;
      const EngineStats st = core->stats();
      const double hit = st.prefix_cache.query_tokens
                             ? 100.0 * static_cast<double>(st.prefix_cache.hit_tokens) / static_cast<double>(st.prefix_cache.query_tokens)
                             : 0.0;
      std::printf("%-5d %-6s | %7.2f %9.1f | %6.0f %6.0f %7.0f | %6.1f %6.1f %7.1f | %6.1f %5lld\n", seqs,
                  cache ? "on" : "off", a.num_requests / wall, static_cast<double>(out_tokens) / wall,
                  Percentile(ttft, 0.5), Percentile(ttft, 0.9), Percentile(ttft, 0.99), Percentile(tpot, 0.5),
                  Percentile(tpot, 0.9), Percentile(tpot, 0.99), hit, static_cast<long long>(st.num_preemptions));
      std::fflush(stdout);
    }
  }
  return OkStatus();
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (figures with their fraction of the machine's limits)");
  bench->require_subcommand(1);
  auto a = std::make_shared<BenchArgs>();
  CLI::App* fwd = bench->add_subcommand("forward", "Engine prefill/decode speed vs measured bandwidth and FMA peak");
  fwd->add_option("--model,-m", a->model, "HF folder or .gguf (default: synthesise a Qwen2.5-0.5B-shaped model)");
  fwd->add_option("--synth", a->synth_config, "Synthesise the model from this config.json instead");
  fwd->add_option("--dtype", a->dtype, "Weight dtype of a synthesised model")->capture_default_str();
  fwd->add_option("--batch", a->batches, "Comma-separated batch sizes")->capture_default_str();
  fwd->add_option("--prompt-len", a->prompt_len, "Prompt tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  fwd->add_option("--decode-steps", a->decode_steps, "Decode steps timed")->capture_default_str()->check(CLI::PositiveNumber);
  fwd->add_option("--threads", a->threads, "CPU threads; 0 = all cores")->capture_default_str();
  fwd->add_option("--device", a->device, "Where the model runs: cpu or cuda")->capture_default_str();
  fwd->add_option("--max-num-batched-tokens", a->prefill_chunk,
                  "Tokens per engine step while prefilling; 0 = 512 on cpu, 8192 on cuda")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  fwd->add_option("--temperature", a->temperature, "Sampling temperature of every sequence; 0 = greedy")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  fwd->add_option("--top-k", a->top_k, "Top-k of every sequence; 0 = off")->capture_default_str()->check(CLI::NonNegativeNumber);
  fwd->add_option("--top-p", a->top_p, "Top-p of every sequence in (0, 1]")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  fwd->add_flag("--trace-overhead", a->trace_overhead,
                "CUDA: then trace more decode steps with CUPTI and print GPU busy vs step wall time (target: overhead <= 5%)");
  fwd->callback([a] {
    Status s = Run(*a);
    if (!s.ok()) {
      std::fprintf(stderr, "tide bench forward: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });

  auto o = std::make_shared<OfflineArgs>();
  CLI::App* off = bench->add_subcommand(
      "offline", "Engine throughput: N requests submitted at once, per max-num-seqs; requests/s, tok/s, TTFT, TPOT");
  off->add_option("--model,-m", o->model.model, "HF folder or .gguf (default: synthesise a Qwen2.5-0.5B-shaped model)");
  off->add_option("--synth", o->model.synth_config, "Synthesise the model from this config.json instead");
  off->add_option("--dtype", o->model.dtype, "Weight dtype of a synthesised model")->capture_default_str();
  off->add_option("--threads", o->model.threads, "CPU threads; 0 = all cores")->capture_default_str();
  off->add_option("--num-requests,-n", o->num_requests, "Requests")->capture_default_str()->check(CLI::PositiveNumber);
  off->add_option("--input-len", o->input_len, "Prompt tokens, MIN:MAX (uniform)")->capture_default_str();
  off->add_option("--output-len", o->output_len, "Generated tokens, MIN:MAX (uniform)")->capture_default_str();
  off->add_option("--concurrency", o->concurrency, "Comma-separated --max-num-seqs values")->capture_default_str();
  off->add_option("--shared-prefix", o->shared_prefix,
                  "Tokens of a prefix shared by every prompt; > 0 runs each point with the prefix cache off and on")
      ->capture_default_str();
  AddEngineFlags(off, &o->engine, "2G", kKvCacheMemoryFlag | kBlockSizeFlag | kMaxNumBatchedTokensFlag);
  off->add_option("--seed", o->seed, "Workload seed")->capture_default_str();
  off->callback([o] {
    Status s = RunOffline(*o);
    if (!s.ok()) {
      std::fprintf(stderr, "tide bench offline: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });

  bench::AddServeBenchCommand(*bench);
}

}  // namespace tide::cli
