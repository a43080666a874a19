// Registers `tide bench serve` on the `bench` subcommand (flags named as vLLM's
// `vllm bench serve`; see docs/bench.md).
#pragma once

namespace CLI {
class App;
}

namespace tide::bench {

void AddServeBenchCommand(CLI::App& bench);

}  // namespace tide::bench
