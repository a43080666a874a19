// tide bench forward: engine-level prefill and decode speed, each as a fraction of the
// machine limit measured in the same run (memory read bandwidth for decode, FMA peak
// for prefill).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "base/rng.h"
#include "bench/machine_limits.h"
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
  ASSIGN_OR_RETURN(std::string path, BenchModelPath(a));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path));
  const ModelConfig& c = model->config();
  std::fprintf(stderr, "[tide] measuring machine limits (%d threads)...\n", pool.num_threads());
  ASSIGN_OR_RETURN(MachineLimits lim, MeasureMachineLimits(pool));

  // Bytes every decode step must read: every weight matrix once (the embedding table is
  // only gathered, unless it doubles as the LM head).
  uint64_t weight_bytes = 0;
  for (const auto& [name, t] : model->weights().tensors()) {
    const bool is_embed = name == "model.embed_tokens.weight" || name == "token_embd.weight";
    if (!is_embed || c.tie_word_embeddings) weight_bytes += t.nbytes;
  }
  // Matmul FLOPs per prompt token, excluding the LM head (computed for one row per sequence).
  const double per_token_params =
      static_cast<double>(c.NumParameters() - c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2));
  const double kv_per_token = static_cast<double>(c.KvBytesPerToken(4));

  std::printf("model: %s (%s, %.1f M params, weights %s)\n", path.c_str(), c.architecture.c_str(),
              static_cast<double>(c.NumParameters()) / 1e6, FormatBytes(static_cast<double>(weight_bytes)).c_str());
  std::printf("machine: %d threads, memory read %.2f GB/s, f32 FMA peak %.1f GFLOP/s\n", lim.num_threads,
              lim.mem_read_bytes_per_s / 1e9, lim.fma_f32_flops_per_s / 1e9);
  std::printf("%-6s %-7s | %12s %10s | %12s %10s\n", "batch", "prompt", "prefill tok/s", "of peak", "decode tok/s",
              "of floor");
  ExecContext ctx;
  ctx.pool = &pool;
  for (int bsz : batches) {
    std::vector<Request> reqs(static_cast<size_t>(bsz));
    Rng rng(static_cast<uint64_t>(bsz));
    for (auto& r : reqs) {
      for (int i = 0; i < a.prompt_len; ++i) r.prompt.push_back(static_cast<int32_t>(rng.NextU64() % static_cast<uint64_t>(c.vocab_size)));
      r.sampling.max_tokens = a.decode_steps + 1;
      r.sampling.ignore_eos = true;
      r.sampling.temperature = 0.f;
    }
    // Every request at once through the engine: prefill in 512-token steps, then all
    // decode together (prefix caching off: the prompts are random anyway).
    EngineOptions eo;
    eo.enable_prefix_caching = false;
    eo.max_num_seqs = bsz;
    eo.max_num_batched_tokens = std::max(512, bsz);
    eo.max_model_len = a.prompt_len + a.decode_steps + 1;
    eo.num_kv_blocks = int64_t{bsz} * ((eo.max_model_len + eo.block_size - 1) / eo.block_size);
    std::unique_ptr<ModelRunner> runner = MakeModelRunner(*model, ctx);
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
    const EngineStats st = core->stats();
    const double p = a.prompt_len;
    const double prefill_flops =
        bsz * (2.0 * per_token_params * p + 2.0 * c.num_heads * c.head_dim * c.num_layers * p * (p + 1) +
               2.0 * static_cast<double>(c.vocab_size * c.hidden_size));
    const double prefill_tps = static_cast<double>(st.num_prompt_tokens_computed) / st.prefill_step_seconds;
    const double prefill_frac = prefill_flops / st.prefill_step_seconds / lim.fma_f32_flops_per_s;
    const double avg_ctx = p + 1 + a.decode_steps / 2.0;
    const double step_bytes = static_cast<double>(weight_bytes) + bsz * avg_ctx * kv_per_token;
    const double step_s = st.decode_step_seconds / static_cast<double>(std::max<int64_t>(st.num_decode_steps, 1));
    const double decode_tps = bsz / step_s;
    const double decode_frac = step_bytes / step_s / lim.mem_read_bytes_per_s;
    std::printf("%-6d %-7d | %12.1f %9.1f%% | %12.1f %9.1f%%\n", bsz, a.prompt_len, prefill_tps, 100 * prefill_frac,
                decode_tps, 100 * decode_frac);
    std::fflush(stdout);
  }
  std::printf("decode floor = (weight bytes + KV bytes read) per step / measured bandwidth; "
              "prefill peak = measured f32 FMA rate\n");
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
  fwd->callback([a] {
    Status s = Run(*a);
    if (!s.ok()) {
      std::fprintf(stderr, "tide bench forward: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tide::cli
