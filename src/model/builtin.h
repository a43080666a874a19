// The built-in default model: a small Llama-shaped model with random weights that tide
// generates itself (deterministically, seed 0) and a byte-level tokenizer, so every
// command works on a fresh machine with no download. Its output is fluent in nothing:
// it exists to exercise the whole path, not to write stories.
#pragma once

#include <string>

#include "base/status.h"

namespace tide {

// Returns the folder of the built-in model, writing it first if absent
// ($TIDE_CACHE_DIR, else $XDG_CACHE_HOME/tide, else ~/.cache/tide).
Result<std::string> EnsureBuiltinModel();

}  // namespace tide
