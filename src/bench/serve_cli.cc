#include "bench/serve_cli.h"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>

#include "bench/serve_bench.h"

namespace tide::bench {
namespace {

std::atomic<bool> g_interrupted{false};

// First Ctrl-C: stop and report; a second one kills the process as usual.
extern "C" void OnSigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

void AddServeBenchCommand(CLI::App& bench) {
  auto o = std::make_shared<ServeBenchOptions>();
  auto no_progress = std::make_shared<bool>(false);
  CLI::App* c = bench.add_subcommand(
      "serve", "Load-test an OpenAI-compatible server over HTTP (streaming): TTFT, TPOT, ITL, E2E, throughput, goodput");
  c->add_option("--base-url,--url", o->base_url, "Server URL (http only); a path in it overrides --endpoint")
      ->capture_default_str();
  c->add_option("--endpoint", o->endpoint, "/v1/completions or /v1/chat/completions")->capture_default_str();
  c->add_option("--model,-m", o->model,
                "Model folder or .gguf whose tokenizer counts tokens (else an estimate, labelled); also the request's "
                "\"model\" unless --served-model-name");
  c->add_option("--tokenizer", o->tokenizer, "Tokenizer path when it differs from --model");
  c->add_option("--served-model-name", o->served_model_name, "\"model\" field of each request");
  c->add_option("--dataset-name", o->dataset_name, "random, shared-prefix, multi-turn or file")->capture_default_str();
  c->add_option("--dataset-path", o->dataset_path, "file: JSONL, one {\"prompt\": ..., \"output_len\": N} a line");
  c->add_option("--num-prompts,-n", o->num_prompts, "Requests per load point")->capture_default_str();
  c->add_option("--random-input-len", o->random_input_len, "Prompt tokens: N or LO:HI (per turn for multi-turn)")
      ->capture_default_str();
  c->add_option("--random-output-len", o->random_output_len, "max_tokens: N or LO:HI")->capture_default_str();
  c->add_option("--random-range-ratio", o->random_range_ratio, "N becomes uniform in [N(1-r), N(1+r)]")
      ->capture_default_str();
  c->add_option("--random-prefix-len", o->random_prefix_len, "random: tokens of a prefix shared by every prompt")
      ->capture_default_str();
  c->add_option("--shared-prefix-len,--prefix-repetition-prefix-len", o->shared_prefix_len,
                "shared-prefix: tokens of each group's prefix")
      ->capture_default_str();
  c->add_option("--shared-prefix-groups,--prefix-repetition-num-prefixes", o->shared_prefix_groups,
                "shared-prefix: number of distinct prefixes")
      ->capture_default_str();
  c->add_option("--multi-turn-turns", o->multi_turn_turns, "multi-turn: turns per conversation")->capture_default_str();
  c->add_option("--seed", o->seed, "Workload and arrival seed")->capture_default_str();
  c->add_option("--request-rate", o->request_rate, "Requests/s, comma list for a sweep (\"1,2,4,inf\"); inf = all at once")
      ->capture_default_str();
  c->add_option("--burstiness", o->burstiness, "Gamma shape of arrival gaps: 1 = Poisson, < 1 burstier")
      ->capture_default_str();
  c->add_option("--max-concurrency", o->max_concurrency, "Requests in flight at most, comma list; 0 = unlimited")
      ->capture_default_str();
  c->add_flag("--ignore-eos", o->ignore_eos, "Ask the server to generate exactly max_tokens");
  c->add_option("--temperature", o->temperature, "Sampling temperature")->capture_default_str();
  c->add_option("--request-timeout", o->request_timeout_s, "Seconds one request may take before it counts as failed")
      ->capture_default_str();
  c->add_option("--slo,--goodput", o->slo, "Goodput objectives in ms: ttft=500,tpot=50 (also itl, e2e)");
  c->add_option("--json,--result-filename", o->json_path, "Write the results (every sample) as JSON");
  c->add_option("--plot", o->plot_path, "Write latency-vs-throughput curves and TTFT/ITL CDFs as SVG");
  c->add_flag("--disable-tqdm,--no-progress", *no_progress, "No progress bar");
  c->callback([o, no_progress] {
    o->progress = !*no_progress && isatty(STDERR_FILENO);
    g_interrupted.store(false);
    auto previous = std::signal(SIGINT, OnSigint);
    Status s = RunServeBench(*o, &g_interrupted, stdout);
    std::signal(SIGINT, previous);
    if (!s.ok()) {
      std::fprintf(stderr, "tide bench serve: %s\n", s.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
    if (g_interrupted.load()) throw CLI::RuntimeError(130);
  });
}

}  // namespace tide::bench
