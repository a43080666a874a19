// `tide bench serve`: one call runs the whole benchmark (workload, every load point of a
// sweep, tables on stdout, --json, --plot). The flags are registered in serve_cli.cc;
// tests call RunServeBench directly.
#pragma once

#include <atomic>
#include <cstdio>
#include <string>

#include "base/status.h"

namespace tide::bench {

// Flag values as typed (parsed and validated by RunServeBench). Names follow vLLM's
// `vllm bench serve` where it has the flag.
struct ServeBenchOptions {
  // Target.
  std::string base_url = "http://127.0.0.1:8000";  // a path in the URL overrides endpoint
  std::string endpoint = "/v1/completions";        // or /v1/chat/completions
  std::string model;              // HF folder or .gguf: its tokenizer counts tokens
  std::string tokenizer;          // a different tokenizer path ("" = model's)
  std::string served_model_name;  // "model" in the request body ("" = --model as given)
  // Workload.
  std::string dataset_name = "random";
  std::string dataset_path;
  int num_prompts = 100;
  std::string random_input_len = "1024";  // N or LO:HI
  std::string random_output_len = "128";
  double random_range_ratio = 0;
  int random_prefix_len = 0;
  int shared_prefix_len = 512;
  int shared_prefix_groups = 4;
  int multi_turn_turns = 4;
  uint64_t seed = 0;
  // Load: one point per (rate, concurrency) pair.
  std::string request_rate = "inf";  // comma list: "1,2,4,inf"
  double burstiness = 1.0;
  std::string max_concurrency = "0";  // comma list; 0 = unlimited
  bool ignore_eos = false;
  double temperature = 0.0;
  double request_timeout_s = 600;
  // Reports.
  std::string slo;   // "ttft=500,tpot=50"
  std::string json_path;
  std::string plot_path;
  bool progress = false;
};

// Runs the benchmark, printing to `out` (tables) and stderr (progress, notes).
// `interrupt` (may be null) is polled: when it becomes true the current point stops,
// its partial results are reported, the sweep ends and outputs are still written.
// Errors: kInvalidArgument for bad flags, the tokenizer's and files' errors, kUnavailable
// when the host cannot be resolved. Server failures are not errors: they are reported.
Status RunServeBench(const ServeBenchOptions& opts, const std::atomic<bool>* interrupt, std::FILE* out);

}  // namespace tide::bench
