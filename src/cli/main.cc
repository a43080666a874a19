// tide: one binary, subcommands.
#include <CLI/CLI.hpp>

#include <cstring>

#include "cli/commands.h"
#ifdef TIDE_HAS_TOKENIZE_CMD
#include "cli/tokenize_cmd.h"
#endif

int main(int argc, char** argv) {
  // tokenize parses its own flags (it reads JSON lines on stdin).
#ifdef TIDE_HAS_TOKENIZE_CMD
  if (argc >= 2 && std::strcmp(argv[1], "tokenize") == 0) return tide::RunTokenize(argc - 1, argv + 1);
#endif

  CLI::App app{"tide: LLM inference serving (engine, server, router)"};
  app.require_subcommand(1);
  tide::cli::AddGenerateCommand(app);
  tide::cli::AddInspectCommand(app);
  tide::cli::AddSynthCommand(app);
  tide::cli::AddBenchCommand(app);
  tide::cli::AddServeCommand(app);
  app.add_subcommand("tokenize", "Tokenize JSON lines from stdin (see `tide tokenize --help`)");
  CLI11_PARSE(app, argc, argv);
  return 0;
}
