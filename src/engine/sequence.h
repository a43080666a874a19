// Sequence: the engine's state record for one completion of one request. Everything
// else is derived through accessors. Owned by EngineCore; mutated only on the engine
// thread by the Scheduler (status, blocks, computed tokens) and EngineCore (tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"

namespace tide {

class IncrementalDetokenizer;
class StopStringMatcher;

// Enum order follows a sequence's life and is relied on: every value >= kFinishedStopped
// is final (IsFinished). The only backward move is preemption, kRunning -> kWaiting.
enum class SequenceStatus : uint8_t {
  kWaiting,          // queued: no KV blocks (new, or preempted and waiting to recompute)
  kRunning,          // holds KV blocks; prefilling (possibly in chunks) or decoding
  kFinishedStopped,  // EOS, a stop token or a stop string
  kFinishedLength,   // max_tokens or max_model_len
  kFinishedAborted,  // cancelled, or ended by an engine error
};
inline bool IsFinished(SequenceStatus s) { return s >= SequenceStatus::kFinishedStopped; }

struct Sequence {
  int64_t seq_id = 0;            // unique, increasing: also the FCFS arrival order
  std::string request_id;
  int index = 0;                 // completion index within the request (0..n-1)
  int priority = 0;
  uint64_t cache_salt = 0;
  const SamplingParams* sampling = nullptr;  // the request's (outlives the sequence)
  SamplingParams sampler;        // the sampling fields only, seed = request seed + index
  int64_t max_tokens = 0;        // effective: min(sampling.max_tokens, max_model_len - prompt)

  std::vector<int32_t> tokens;   // prompt, then outputs (the last num_pending_tokens pending)
  // Async scheduling (docs/architecture.md, engine): outputs sampled by a launched step
  // whose result is not collected yet sit at the end of `tokens` as kPendingToken (at
  // most 2). pending_row is the logit row of the last launched step that samples the
  // last of them: the next step reads its input token from there on the device.
  int num_pending_tokens = 0;
  int32_t pending_row = -1;
  int64_t num_prompt_tokens = 0;
  int64_t num_computed_tokens = 0;  // leading tokens whose K/V are in the cache
  int64_t num_cached_tokens = 0;    // prompt tokens the prefix cache served at first admission
  std::vector<int32_t> block_table;
  std::vector<uint64_t> block_hashes;  // chained hashes of the registered full blocks
  SequenceStatus status = SequenceStatus::kWaiting;
  bool prompt_computed = false;     // sticky: the whole prompt has been computed once
  bool ever_scheduled = false;
  int num_preemptions = 0;
  // n > 1: siblings wait until the leader's prompt is computed, then reference its full
  // prompt blocks (prefix index, or its block table directly). Null for the leader. The engine keeps a request's
  // sequences alive together, so the pointer stays valid.
  const Sequence* leader = nullptr;

  // Prompt logprobs (completion 0 of a request asking for them): top-k, or -1 for none;
  // entries for prompt tokens 1.. are collected as the prompt is computed and handed
  // out with the first output.
  int prompt_logprobs_k = -1;
  std::vector<SampleResult> prompt_logprobs;
  bool prompt_logprobs_sent = false;
  // Whether prompt positions still need logit rows: while true the sequence takes no
  // prefix-cache hit or shared blocks (a hit would skip the rows).
  [[nodiscard]] bool needs_prompt_logprobs() const {
    return prompt_logprobs_k >= 0 && !prompt_logprobs_sent &&
           static_cast<int64_t>(prompt_logprobs.size()) < num_prompt_tokens - 1;
  }

  // Per-completion output state (EngineCore).
  std::vector<SampleResult> pending_logprobs;
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::unique_ptr<StopStringMatcher> stop_matcher;
  RequestTimes times;

  [[nodiscard]] int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  [[nodiscard]] int64_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  // Outputs whose value is known on the host (what has been emitted).
  [[nodiscard]] int64_t num_known_output_tokens() const { return num_output_tokens() - num_pending_tokens; }
  [[nodiscard]] int64_t num_blocks() const { return static_cast<int64_t>(block_table.size()); }
  // Tokens still to compute before the next sample (1 when decoding).
  [[nodiscard]] int64_t num_uncomputed() const { return num_tokens() - num_computed_tokens; }
  [[nodiscard]] bool is_finished() const { return IsFinished(status); }

  Sequence();
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;
};

}  // namespace tide
