// Shared pieces of the subcommands: resolving --model, loading model and tokenizer.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tide::cli {

// "" -> the built-in default model (written on first use); otherwise the path as given.
Result<std::string> ResolveModelPath(const std::string& model);

// The tokenizer that belongs to a loaded model: the folder's tokenizer files or the
// GGUF's embedded vocabulary.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& path, const Model& model);

// Human-readable byte count ("1.23 GiB").
std::string FormatBytes(double bytes);

}  // namespace tide::cli
