// The built-in default model: a 4.9M-parameter Llama trained on the Python standard
// library's source with its own byte-level BPE tokenizer (models/builtin, made by
// scripts/train_default/train.py), linked into the binary so every command works on a
// fresh machine with no download. It completes Python code, roughly.
#pragma once

#include <string>

#include "base/status.h"

namespace tide {

// Returns the folder of the built-in model, writing it first if absent
// ($TIDE_CACHE_DIR, else $XDG_CACHE_HOME/tide, else ~/.cache/tide).
Result<std::string> EnsureBuiltinModel();

}  // namespace tide
