// tide synth: a random-weight model folder of any supported architecture.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>

#include "backend/cpu/thread_pool.h"
#include "base/file.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "model/synth.h"

namespace tide::cli {
namespace {

struct SynthArgs {
  std::string config;
  std::string dtype = "bf16";
  std::string out;
  uint64_t seed = 0;
  float init_std = 0.02f;
};

Status Run(const SynthArgs& a) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(a.config, 16u << 20));
  ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(text, a.config));
  SynthOptions o;
  if (!ParseDType(a.dtype, &o.dtype)) return InvalidArgument("--dtype: unknown dtype '" + a.dtype + "'");
  o.seed = a.seed;
  o.init_std = a.init_std;
  o.pool = &ThreadPool::Global();
  const auto start = std::chrono::steady_clock::now();
  int last_pct = -1;
  o.progress = [&](uint64_t done, uint64_t total) {
    const int pct = total ? static_cast<int>(100 * done / total) : 100;
    if (pct == last_pct) return;
    last_pct = pct;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\r[tide] synth: %3d%% of %s (%.0f MB/s)", pct, FormatBytes(static_cast<double>(total)).c_str(),
                 s > 0 ? static_cast<double>(done) / s / 1e6 : 0.0);
  };
  RETURN_IF_ERROR(SynthesizeModel(config, text, o, a.out));
  std::fprintf(stderr, "\n[tide] wrote %s (%s, %.1f M parameters)\n", a.out.c_str(), a.dtype.c_str(),
               static_cast<double>(config.NumParameters()) / 1e6);
  return OkStatus();
}

}  // namespace

void AddSynthCommand(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* sub = app.add_subcommand("synth", "Write a random-weight model folder from a config.json");
  sub->add_option("--config,-c", a->config, "HF config.json of any supported architecture")->required();
  sub->add_option("--out,-o", a->out, "Output folder (created)")->required();
  sub->add_option("--dtype", a->dtype, "Weight dtype: f32, f16 or bf16")->capture_default_str();
  sub->add_option("--seed", a->seed, "Random seed (same seed, same weights)")->capture_default_str();
  sub->add_option("--init-std", a->init_std, "Standard deviation of matrix entries")->capture_default_str();
  sub->callback([a] {
    Status s = Run(*a);
    if (!s.ok()) {
      std::fprintf(stderr, "tide synth: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tide::cli
