// The requests `tide bench serve` sends: prompts of known length and the number of tokens
// each one asks for, built from a seed so every engine sees the same workload.
//
// Token counts come from the model's own tokenizer when one is given; otherwise from an
// estimate (UTF-8 bytes / 4, the usual English ratio of BPE vocabularies), which the
// report labels as such. Thread-safety: value types; TokenCounter is immutable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tide {

class Tokenizer;

namespace bench {

// Counts tokens of text: with the tokenizer when there is one, else the estimate.
class TokenCounter {
 public:
  // REQUIRES: `tok` (may be null) outlives the counter.
  explicit TokenCounter(const Tokenizer* tok) : tok_(tok) {}
  [[nodiscard]] int64_t Count(std::string_view text) const;
  [[nodiscard]] bool exact() const noexcept { return tok_ != nullptr; }
  [[nodiscard]] const Tokenizer* tokenizer() const noexcept { return tok_; }

 private:
  const Tokenizer* tok_;
};

// Lengths drawn uniformly from [lo, hi] (inclusive).
struct LengthRange {
  int lo = 0;
  int hi = 0;
};

// Parses "N" (N scaled by range_ratio: [N*(1-r), N*(1+r)], as vLLM's
// --random-range-ratio) or "LO:HI". Errors: kInvalidArgument naming `flag`.
Result<LengthRange> ParseLengthRange(const std::string& flag, const std::string& text, double range_ratio);

enum class DatasetKind { kRandom, kSharedPrefix, kMultiTurn, kFile };

// Accepts random, shared-prefix (alias prefix_repetition), multi-turn, file (alias
// custom). Errors: kInvalidArgument listing the names.
Result<DatasetKind> ParseDatasetKind(const std::string& name);

struct WorkloadOptions {
  DatasetKind kind = DatasetKind::kRandom;
  int num_prompts = 100;  // requests in all (multi-turn: turns of all conversations)
  LengthRange input_len{1024, 1024};   // prompt tokens (per turn for multi-turn)
  LengthRange output_len{128, 128};    // max_tokens of each request
  int random_prefix_len = 0;           // random: a prefix of this many tokens on every prompt
  int shared_prefix_len = 512;         // shared-prefix: tokens of each group's prefix
  int shared_prefix_groups = 4;        // shared-prefix: distinct prefixes, round-robin
  int multi_turn_turns = 4;            // multi-turn: turns per conversation
  std::string dataset_path;            // file: JSONL, one {"prompt"|"messages", "output_len"}
  uint64_t seed = 0;
};

// One request of the workload.
struct WorkloadItem {
  // The prompt text (completions) / the user message of this turn (chat). For a later
  // turn of a conversation the client prepends the history it has seen.
  std::string prompt;
  int64_t prompt_tokens = 0;  // of `prompt` alone
  int max_tokens = 0;
  int conversation = -1;  // multi-turn only
  int turn = 0;
  int depends_on = -1;  // index of the previous turn, sent only after it finished
};

// Builds the workload. Items are in arrival order; an item's depends_on is always an
// earlier index. Errors: kInvalidArgument for bad options; file errors for kFile
// (kNotFound, kInvalidArgument with the line number).
Result<std::vector<WorkloadItem>> BuildWorkload(const WorkloadOptions& opts, const TokenCounter& counter);

}  // namespace bench
}  // namespace tide
