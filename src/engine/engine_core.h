// EngineCore: the single-threaded heart of the engine. One Step() runs
//   schedule -> build ForwardBatch -> ModelRunner::Launch -> collect -> postprocess
// and returns the outputs it produced. With async scheduling (EngineOptions) a step is
// collected one Step() later: step n+1 is scheduled and launched while step n still
// runs, then step n is collected and postprocessed (docs/architecture.md, engine).
// Engine (engine.h) wraps it in a loop thread with a request queue; tests, `tide
// generate` and benchmarks may also drive it directly.
//
// Thread-safety: not thread-safe, except ValidateRequest (const, reads only what Create
// fixed). One thread — the engine thread — calls everything else.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/engine_options.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "kv/block_pool.h"

namespace tide {

class Tokenizer;

struct EngineStats {
  int64_t num_blocks = 0;
  int block_size = 0;
  int64_t num_free_blocks = 0;         // includes evictable cached blocks
  int64_t num_cached_free_blocks = 0;
  int64_t num_waiting = 0;             // sequences
  int64_t num_running = 0;
  int64_t num_requests = 0;            // live requests
  int64_t num_preemptions = 0;
  int64_t num_steps = 0;
  int64_t num_prompt_tokens_computed = 0;  // prefill work done (recompute included)
  int64_t num_generated_tokens = 0;
  int64_t num_finished = 0;            // completions finished (any reason)
  PrefixCacheStats prefix_cache;
  double prefill_step_seconds = 0;     // steps that computed any prompt token
  double decode_step_seconds = 0;      // the other steps
  int64_t num_decode_steps = 0;
};

class EngineCore {
 public:
  // Sizes the KV cache (options.num_kv_blocks, else kv_cache_bytes / bytes per block)
  // and allocates it through the runner. `tokenizer` may be null (no text, no stop
  // strings). Errors, all before any work: kInvalidArgument for inconsistent options
  // (max_model_len above the model's context, max_num_batched_tokens < max_num_seqs, a
  // budget too small for one request of max_model_len — the message says "N blocks =
  // M tokens" and what to raise); kResourceExhausted when the cache cannot be allocated.
  // REQUIRES: runner (and tokenizer) outlive the core; the runner serves this core only
  // while it lives (a step may be in flight in it between Step calls).
  static Result<std::unique_ptr<EngineCore>> Create(ModelRunner& runner, const Tokenizer* tokenizer,
                                                    const EngineOptions& options);
  ~EngineCore();
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;

  // kInvalidArgument naming the problem: empty id or prompt, a token id outside the
  // vocabulary, prompt + max_tokens over max_model_len, bad sampling params, stop strings
  // without a tokenizer. Thread-safe.
  [[nodiscard]] Status ValidateRequest(const Request& request) const;
  // ValidateRequest, then queues the request (n sequences). kAlreadyExists when the id
  // is live. On error nothing is queued.
  [[nodiscard]] Status AddRequest(Request request, double arrival_time);
  // Finishes every unfinished completion of `id` with FinishReason::kAbort and frees its
  // blocks now; the final outputs are appended to *outs. False for an unknown id.
  bool Abort(const std::string& id, std::vector<RequestOutput>* outs);
  // Runs one step and appends the outputs of the step it collects (one delta per
  // sampled completion; final deltas carry usage and times): with async scheduling the
  // step launched by the previous call, else this one. Does nothing when no sequence can
  // run and no step is in flight. A launch or collect failure ends that step's requests
  // with the status (FinishReason::kAbort) and frees their blocks; the engine stays
  // usable.
  void Step(std::vector<RequestOutput>* outs);

  // Live requests remain, or a step is still in flight (Step collects it).
  [[nodiscard]] bool HasUnfinished() const { return !requests_.empty() || !flights_.empty(); }
  [[nodiscard]] EngineStats stats() const;
  [[nodiscard]] int64_t max_model_len() const { return max_model_len_; }
  [[nodiscard]] const BlockPool& block_pool() const { return *pool_; }
  // "N blocks = M tokens (B MiB, block size S)".
  [[nodiscard]] std::string KvSummary() const;

 private:
  struct RequestState;
  EngineCore(ModelRunner& runner, const Tokenizer* tokenizer, const EngineOptions& options, int64_t max_model_len,
             int64_t num_blocks);
  // One launched step whose samples are not collected yet.
  struct Flight {
    SchedulerOutput plan;
    double start = 0;
    bool on_host = false;                  // ran through Forward; `results` are filled
    std::vector<SampleResult> results;     // per sampled row
    // Requests that ended while this step was queued: kept alive until it is collected.
    std::vector<std::unique_ptr<RequestState>> keep_alive;
  };

  // The step needs its logits on the host: prompt logprobs.
  bool NeedsHostLogits(const SchedulerOutput& plan) const;
  // A sampled row's processing reads the tokens (penalties), its last one is pending and
  // the step in flight ran on the host (the runner cannot substitute it): that step must
  // be collected before this one is launched.
  bool NeedsPendingHistory(const SchedulerOutput& plan) const;
  // Removes sequences that finished since `plan` was made (after a drain).
  static void DropFinished(SchedulerOutput* plan);
  void BuildBatch(const SchedulerOutput& plan);
  // Forward + host sampling of `f` (prompt logprobs go straight to the sequences).
  Status RunOnHost(Flight* f);
  // Appends a pending token per sampled row and advances the scheduler's state.
  void OnLaunched(const Flight& f);
  void CollectOldest(std::vector<RequestOutput>* outs);
  void DrainFlights(std::vector<RequestOutput>* outs);
  void Postprocess(const SchedulerOutput& plan, const std::vector<SampleResult>& results,
                   std::vector<RequestOutput>* outs);
  void FailStep(const SchedulerOutput& plan, const Status& status, std::vector<RequestOutput>* outs);
  // Ends one completion: drops its pending tokens, frees blocks, fills usage/times.
  void FinishSequence(Sequence* seq, FinishReason reason, RequestOutput* out);
  // Forgets a finished request; a step in flight (or the plan of the current Step) may
  // still point at its sequences.
  void Retire(const std::string& id);
  void StepOnce(std::vector<RequestOutput>* outs);
  RequestState* StateOf(const Sequence* seq);

  ModelRunner& runner_;
  const Tokenizer* tokenizer_;
  EngineOptions opt_;
  bool async_;  // opt_.async_scheduling on a runner whose Launch is asynchronous
  int64_t max_model_len_;
  int64_t vocab_;
  std::vector<int32_t> eos_ids_;
  std::unique_ptr<BlockPool> pool_;
  Scheduler scheduler_;
  std::map<std::string, std::unique_ptr<RequestState>> requests_;
  int64_t next_seq_id_ = 0;
  EngineStats counters_;               // the cumulative fields of stats()
  ForwardBatch batch_;                 // reused every step
  // Per scheduled sequence of this step: its prompt-logprob rows (positions first_pos..,
  // before its sampling row in logit_rows).
  struct PromptRows {
    int64_t first_pos = 0;
    int64_t count = 0;
  };
  std::vector<PromptRows> prompt_rows_;
  std::vector<RowSampling> rows_;      // per sampled row of batch_
  std::vector<float> logits_, scratch_;
  std::deque<Flight> flights_;         // launched, oldest first; at most 1 between Steps
  double last_collect_time_ = 0;  // when the latest collected step's results were in (step timing)
  // Requests retired with no step in flight: alive until the Step that retired them ends.
  std::vector<std::unique_ptr<RequestState>> retired_;
};

}  // namespace tide
