#include "engine/scheduler.h"

#include <algorithm>

#include "base/check.h"

namespace tide {
namespace {

// The one order of the scheduler: lower priority value first, then arrival.
bool Before(const Sequence* a, const Sequence* b) {
  return a->priority != b->priority ? a->priority < b->priority : a->seq_id < b->seq_id;
}

bool Contains(const std::vector<Sequence*>& v, const Sequence* s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

Scheduler::Scheduler(const SchedulerOptions& options, BlockPool& pool) : opt_(options), pool_(pool) {
  TIDE_CHECK_GT(opt_.max_num_seqs, 0);
  TIDE_CHECK_GE(opt_.max_num_batched_tokens, int64_t{opt_.max_num_seqs});
}

void Scheduler::InsertWaiting(Sequence* seq) {
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), seq, Before), seq);
}

void Scheduler::InsertRunning(Sequence* seq) {
  running_.insert(std::upper_bound(running_.begin(), running_.end(), seq, Before), seq);
}

void Scheduler::Add(Sequence* seq) {
  TIDE_CHECK(seq->block_table.empty());
  seq->status = SequenceStatus::kWaiting;
  InsertWaiting(seq);
}

void Scheduler::Preempt(Sequence* seq, SchedulerOutput* out) {
  pool_.release(seq->block_table);
  seq->block_table.clear();
  seq->block_hashes.clear();
  seq->num_computed_tokens = 0;
  seq->status = SequenceStatus::kWaiting;
  ++seq->num_preemptions;
  ++num_preemptions_;
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  InsertWaiting(seq);
  out->preempted.push_back(seq);
}

bool Scheduler::Reserve(Sequence* seq, int64_t num_tokens, const std::vector<Sequence*>& scheduled,
                        SchedulerOutput* out) {
  const int64_t need = pool_.BlocksFor(num_tokens) - seq->num_blocks();
  while (need > 0 && !pool_.can_allocate(need)) {
    // Victim: the last running sequence in order, if it comes after `seq` and is not
    // already part of this step's batch.
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
      if (*it == seq || !Before(seq, *it)) break;
      if (!Contains(scheduled, *it)) {
        victim = *it;
        break;
      }
    }
    if (victim) {
      Preempt(victim, out);
      continue;
    }
    // Nobody after us to take blocks from. A decode gives its own blocks back (it will
    // recompute later); a prefill keeps what it has and waits for a later step.
    if (seq->num_uncomputed() == 1) Preempt(seq, out);
    return false;
  }
  if (need > 0) pool_.allocate(need, &seq->block_table);
  return true;
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  int64_t budget = opt_.max_num_batched_tokens;
  std::vector<Sequence*> scheduled;
  bool starved = false;
  auto schedule = [&](Sequence* s, int64_t n) {
    const bool prefill = !s->prompt_computed || s->num_uncomputed() > 1;
    out.scheduled.push_back({s, n, s->num_computed_tokens + n == s->num_tokens()});
    out.num_batched_tokens += n;
    if (prefill) out.num_prefill_tokens += n;
    budget -= n;
    scheduled.push_back(s);
    s->ever_scheduled = true;
  };

  // 1. Decodes first: one token each. budget >= max_num_seqs, so they always fit.
  const std::vector<Sequence*> running = running_;  // Reserve may preempt from running_
  for (Sequence* s : running) {
    if (s->status != SequenceStatus::kRunning || s->num_uncomputed() != 1) continue;
    // Its last output is pending: computing past it would sample beyond max_tokens.
    if (s->num_pending_tokens > 0 && s->num_output_tokens() >= s->max_tokens) continue;
    if (Reserve(s, s->num_tokens(), scheduled, &out)) schedule(s, 1);
  }
  // 2. Running prefills, chunked to the remaining budget.
  for (Sequence* s : running) {
    if (budget <= 0) break;
    if (s->status != SequenceStatus::kRunning || s->num_uncomputed() <= 1) continue;
    int64_t n = s->num_uncomputed();
    if (n > budget) {
      if (!opt_.enable_chunked_prefill) continue;
      n = budget;
    }
    if (Reserve(s, s->num_computed_tokens + n, scheduled, &out)) {
      schedule(s, n);
    } else {
      starved = true;
    }
  }
  // 3. Admissions, in order, while they fit. When a running sequence was preempted or
  // could not grow, memory is short and newcomers must not overtake it: only a waiting
  // sequence of strictly better priority than some running one may still come in (by
  // preempting, below).
  const bool short_of_memory = starved || !out.preempted.empty();
  const int bs = pool_.block_size();
  for (size_t i = 0; i < waiting_.size() && budget > 0;) {
    Sequence* s = waiting_[i];
    if (s->leader && !s->leader->prompt_computed && !s->leader->is_finished()) {
      ++i;  // an n>1 sibling: wait for the leader's prompt blocks, without blocking others
      continue;
    }
    if (s->num_pending_tokens > 0) {
      ++i;  // preempted with a sample in flight: its tokens are not all known yet
      continue;
    }
    Sequence* worst = running_.empty() ? nullptr : running_.back();
    const bool outranks = worst && s->priority < worst->priority;
    if (short_of_memory && !outranks) break;
    if (num_running() >= opt_.max_num_seqs) {
      if (!outranks) break;
      PreemptForPriority(worst, &scheduled, &budget, &out);
      continue;
    }
    // A sequence that wants prompt logprobs computes its whole prompt: a hit would skip
    // the logit rows of the cached positions.
    PrefixMatch m;
    if (!s->needs_prompt_logprobs()) m = pool_.FindCachedPrefix(s->tokens, s->cache_salt);
    // At least one token must be computed: it produces the logits to sample from.
    while (m.num_blocks() * bs >= s->num_tokens()) {
      m.blocks.pop_back();
      m.hashes.pop_back();
    }
    // n > 1: the leader's computed full prompt blocks are shared by reference when the
    // prefix index offers fewer (always, with prefix caching off).
    const int64_t from_leader = s->needs_prompt_logprobs() ? 0 : SharableLeaderBlocks(s);
    const bool share = from_leader > m.num_blocks();
    const int64_t reused = share ? from_leader : m.num_blocks();
    const int64_t cached = reused * bs;
    int64_t n = s->num_tokens() - cached;
    if (n > budget) {
      if (!opt_.enable_chunked_prefill) break;
      n = budget;
    }
    const int64_t need = pool_.BlocksFor(cached + n) - reused;
    if (!(share ? pool_.can_allocate(need) : pool_.can_allocate(m, need))) {
      // Head of line: nobody overtakes, but a better priority takes blocks from the worst.
      if (!outranks) break;
      PreemptForPriority(worst, &scheduled, &budget, &out);
      continue;
    }
    if (share) {
      const Sequence* l = s->leader;
      s->block_table.assign(l->block_table.begin(), l->block_table.begin() + from_leader);
      pool_.share(s->block_table);
      pool_.allocate(need, &s->block_table);
      const size_t h = std::min(static_cast<size_t>(from_leader), l->block_hashes.size());
      s->block_hashes.assign(l->block_hashes.begin(), l->block_hashes.begin() + static_cast<std::ptrdiff_t>(h));
    } else {
      s->block_table = pool_.allocate(m, need);
      s->block_hashes = m.hashes;
    }
    s->num_computed_tokens = cached;
    if (!s->ever_scheduled) s->num_cached_tokens = std::min(cached, s->num_prompt_tokens);
    s->status = SequenceStatus::kRunning;
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    InsertRunning(s);
    schedule(s, n);
  }
  return out;
}

int64_t Scheduler::SharableLeaderBlocks(const Sequence* s) const {
  const Sequence* l = s->leader;
  if (!l || l->status != SequenceStatus::kRunning) return 0;
  // Only full blocks of the prompt: the leader writes its outputs after them. At least
  // one of s's own tokens stays to compute.
  const int64_t full = std::min(l->num_computed_tokens, l->num_prompt_tokens) / pool_.block_size();
  return std::min(full, (s->num_tokens() - 1) / pool_.block_size());
}

void Scheduler::PreemptForPriority(Sequence* victim, std::vector<Sequence*>* scheduled, int64_t* budget,
                                   SchedulerOutput* out) {
  // The victim may already be in this step's plan: take it out and give back its tokens.
  if (auto it = std::find(scheduled->begin(), scheduled->end(), victim); it != scheduled->end()) {
    scheduled->erase(it);
    auto ss = std::find_if(out->scheduled.begin(), out->scheduled.end(),
                           [&](const ScheduledSequence& x) { return x.seq == victim; });
    out->num_batched_tokens -= ss->num_new_tokens;
    if (!victim->prompt_computed || victim->num_uncomputed() > 1) out->num_prefill_tokens -= ss->num_new_tokens;
    *budget += ss->num_new_tokens;
    out->scheduled.erase(ss);
  }
  Preempt(victim, out);
}

void Scheduler::OnStepComputed(const SchedulerOutput& out) {
  for (const ScheduledSequence& ss : out.scheduled) {
    Sequence* s = ss.seq;
    s->num_computed_tokens += ss.num_new_tokens;
    TIDE_CHECK_LE(s->num_computed_tokens, s->num_tokens());
    if (s->num_computed_tokens >= s->num_prompt_tokens) s->prompt_computed = true;
    RegisterComputedBlocks(s);
  }
}

void Scheduler::RegisterComputedBlocks(Sequence* s) {
  if (s->block_table.empty()) return;
  const int64_t known = std::min(s->num_computed_tokens, s->num_tokens() - s->num_pending_tokens);
  pool_.RegisterFullBlocks(s->block_table, s->tokens, known / pool_.block_size(), s->cache_salt, &s->block_hashes);
}

void Scheduler::Finish(Sequence* seq, SequenceStatus status) {
  TIDE_CHECK(IsFinished(status));
  if (seq->is_finished()) return;
  if (seq->status == SequenceStatus::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else if (auto it = std::find(waiting_.begin(), waiting_.end(), seq); it != waiting_.end()) {
    waiting_.erase(it);
  }
  if (!seq->block_table.empty()) pool_.release(seq->block_table);
  seq->block_table.clear();
  seq->status = status;
}

}  // namespace tide
