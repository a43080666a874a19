// Each subcommand registers itself on the CLI11 app; main() only dispatches.
#pragma once

namespace CLI {
class App;
}

namespace tide::cli {

void AddGenerateCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddSynthCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);
void AddServeCommand(CLI::App& app);

}  // namespace tide::cli
