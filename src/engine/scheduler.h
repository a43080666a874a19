// Scheduler: pure CPU policy. Each step it decides which sequences run and how many
// tokens each computes, within the step's budgets, and returns that decision as a
// value. It mutates only Sequences (status, block table, computed tokens) and the
// BlockPool; it knows nothing of devices, logits or outputs.
//
// Policy (docs/engine_contract.md has the full contract):
//   order       running and waiting sequences are ordered by (priority, seq_id): lower
//               priority value first, then first come first served.
//   decodes     every running sequence that needs one token gets it first, so a long
//               prompt never starves decodes.
//   prefills    then running sequences still prefilling, then waiting ones, in order,
//               each taking min(remaining, token budget) tokens (chunked prefill). A
//               waiting sequence that does not fit in the blocks stops admission
//               (head-of-line: no overtaking by smaller requests).
//   admission   a waiting sequence reuses its longest cached prefix (none while it still
//               needs prompt logprobs); it is admitted only while running < max_num_seqs
//               and no preemption happened this step (except by priority, below).
//   preemption  by recompute: when a running sequence needs a block and none is free,
//               the last running sequence in order that is not scheduled this step
//               releases all its blocks and goes back to waiting (keeping its tokens);
//               with no such victim, the sequence preempts itself.
//   priority    a waiting sequence that does not fit (blocks or max_num_seqs) while a
//               running one has a strictly worse priority preempts the last running
//               sequence in order (worst priority, latest arrival) — even one already
//               planned for this step — until it fits or nobody worse runs.
//   n > 1       siblings wait for the leader's prompt, then reference its full prompt
//               blocks (prefix index hit, or the leader's blocks directly).
//   pending     (async scheduling) a running sequence whose outputs, pending included,
//               reached max_tokens is not scheduled; a waiting (preempted) sequence with
//               a pending token is not admitted until that token is known.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "engine/sequence.h"
#include "kv/block_pool.h"

namespace tide {

struct SchedulerOptions {
  int max_num_seqs = 256;               // running sequences at once
  int64_t max_num_batched_tokens = 2048;  // tokens per step; >= max_num_seqs
  bool enable_chunked_prefill = true;   // off: a prompt must fit the budget whole
};

struct ScheduledSequence {
  Sequence* seq = nullptr;
  int64_t num_new_tokens = 0;  // computed this step: tokens [num_computed, +num_new)
  bool samples = false;        // this step reaches the end of the sequence's tokens
};

struct SchedulerOutput {
  std::vector<ScheduledSequence> scheduled;
  std::vector<Sequence*> preempted;  // sent back to waiting during this step's planning
  int64_t num_batched_tokens = 0;
  int64_t num_prefill_tokens = 0;    // of those, tokens of sequences not yet decoding
  [[nodiscard]] bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  // REQUIRES: options.max_num_batched_tokens >= options.max_num_seqs > 0 (checked by
  // the engine at start). `pool` must outlive the scheduler.
  Scheduler(const SchedulerOptions& options, BlockPool& pool);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a new sequence (status kWaiting, no blocks).
  void Add(Sequence* seq);
  // Plans one step (see the policy above). Never fails: an empty output means nothing
  // can run (no sequences, or only n>1 siblings waiting for their leader).
  SchedulerOutput Schedule();
  // After the step is run (or launched: later work on the device is ordered after it):
  // advances num_computed_tokens and registers the sequences' newly full blocks in the
  // prefix cache (RegisterComputedBlocks).
  void OnStepComputed(const SchedulerOutput& out);
  // Registers seq's full computed blocks whose tokens are all known (none pending) and
  // not yet registered; nothing for a sequence without blocks. The engine calls it again
  // once a pending token is known.
  void RegisterComputedBlocks(Sequence* seq);
  // Ends a sequence in any state: sets `status` (a finished one), releases its blocks
  // and removes it from the queues. The caller keeps ownership. Idempotent.
  void Finish(Sequence* seq, SequenceStatus status);

  [[nodiscard]] int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  [[nodiscard]] int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  [[nodiscard]] int64_t num_preemptions() const { return num_preemptions_; }
  [[nodiscard]] bool empty() const { return waiting_.empty() && running_.empty(); }

 private:
  // Ensures seq holds blocks for `num_tokens` tokens, preempting others if needed.
  // False when seq itself had to be preempted (or, for a prefill, could not grow).
  bool Reserve(Sequence* seq, int64_t num_tokens, const std::vector<Sequence*>& scheduled, SchedulerOutput* out);
  void Preempt(Sequence* seq, SchedulerOutput* out);
  // Preempts a running sequence so that a waiting one of better priority fits, taking
  // it out of this step's plan first if it is there.
  void PreemptForPriority(Sequence* victim, std::vector<Sequence*>* scheduled, int64_t* budget, SchedulerOutput* out);
  // Leading blocks an n>1 sibling may share with its running leader (0 if none).
  [[nodiscard]] int64_t SharableLeaderBlocks(const Sequence* s) const;
  void InsertWaiting(Sequence* seq);
  void InsertRunning(Sequence* seq);

  SchedulerOptions opt_;
  BlockPool& pool_;
  std::deque<Sequence*> waiting_;   // ordered by (priority, seq_id)
  std::vector<Sequence*> running_;  // ordered by (priority, seq_id)
  int64_t num_preemptions_ = 0;
};

}  // namespace tide
