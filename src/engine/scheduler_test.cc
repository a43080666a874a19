// Scheduler policy, table by table: budgets, chunked prefill, decodes never starved,
// FCFS and priority, head-of-line admission, preemption by recompute, prefix hits,
// finishing in every state.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>

namespace tide {
namespace {

constexpr int kBs = 4;

struct Harness {
  explicit Harness(int64_t blocks, SchedulerOptions o = {4, 16, true}, bool caching = true)
      : pool(BlockPoolOptions{blocks, kBs, caching, nullptr}), sched(o, pool) {}
  // Distinct token ranges per sequence unless first_token says otherwise: no accidental
  // prefix hits.
  Sequence* Add(int prompt_len, int priority = 0, int32_t first_token = -1) {
    if (first_token < 0) first_token = 1000 * static_cast<int32_t>(seqs.size() + 1);
    auto s = std::make_unique<Sequence>();
    s->seq_id = static_cast<int64_t>(seqs.size());
    s->priority = priority;
    for (int i = 0; i < prompt_len; ++i) s->tokens.push_back(first_token + i);
    s->num_prompt_tokens = prompt_len;
    sched.Add(s.get());
    seqs.push_back(std::move(s));
    return seqs.back().get();
  }
  // One step: plan, "compute", append a token to every sequence that samples.
  SchedulerOutput Step() {
    SchedulerOutput out = sched.Schedule();
    sched.OnStepComputed(out);
    for (const auto& ss : out.scheduled)
      if (ss.samples) ss.seq->tokens.push_back(7);
    return out;
  }
  int64_t NewTokens(const SchedulerOutput& out, const Sequence* s) {
    for (const auto& ss : out.scheduled)
      if (ss.seq == s) return ss.num_new_tokens;
    return 0;
  }
  BlockPool pool;
  Scheduler sched;
  std::vector<std::unique_ptr<Sequence>> seqs;
};

TEST(SchedulerTest, ChunkedPrefillSplitsALongPromptAndSamplesOnlyAtTheEnd) {
  Harness h(64);
  Sequence* s = h.Add(40);
  const std::vector<int64_t> want = {16, 16, 8, 1, 1};
  for (size_t i = 0; i < want.size(); ++i) {
    SchedulerOutput out = h.Step();
    ASSERT_EQ(out.scheduled.size(), 1u) << i;
    EXPECT_EQ(out.scheduled[0].num_new_tokens, want[i]) << "step " << i;
    EXPECT_EQ(out.scheduled[0].samples, i >= 2) << "step " << i;
  }
  EXPECT_EQ(s->num_output_tokens(), 3);
  EXPECT_EQ(s->num_blocks(), h.pool.BlocksFor(s->num_computed_tokens + 1));
}

TEST(SchedulerTest, WithoutChunkingAPromptRunsWhole) {
  Harness h(64, {4, 16, false});
  h.Add(12);
  Sequence* b = h.Add(10);
  SchedulerOutput out = h.Step();
  EXPECT_EQ(out.scheduled.size(), 1u);  // 12 + 10 > 16: b waits whole
  EXPECT_EQ(h.NewTokens(out, b), 0);
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, b), 10);
}

TEST(SchedulerTest, DecodesAreNeverStarvedByALongPrompt) {
  Harness h(128);
  std::vector<Sequence*> decoders = {h.Add(3), h.Add(3), h.Add(3)};
  h.Step();  // all three prefill (9 tokens) and sample
  Sequence* big = h.Add(100);
  for (int step = 0; step < 7; ++step) {  // 7 x 13 of the 100 prompt tokens
    SchedulerOutput out = h.Step();
    for (Sequence* d : decoders) EXPECT_EQ(h.NewTokens(out, d), 1) << "step " << step;
    EXPECT_EQ(h.NewTokens(out, big), 13) << "step " << step;  // 16 - 3 decodes
    EXPECT_EQ(out.num_batched_tokens, 16);
  }
}

TEST(SchedulerTest, MaxNumSeqsCapsRunningSequences) {
  Harness h(128, {2, 16, true});
  Sequence* a = h.Add(2);
  Sequence* b = h.Add(2);
  Sequence* c = h.Add(2);
  SchedulerOutput out = h.Step();
  EXPECT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(c->status, SequenceStatus::kWaiting);
  h.sched.Finish(a, SequenceStatus::kFinishedLength);
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, b), 1);
  EXPECT_EQ(h.NewTokens(out, c), 2);
}

TEST(SchedulerTest, PriorityThenArrivalOrdersAdmission) {
  Harness h(128, {1, 16, true});
  Sequence* late_low = h.Add(2, /*priority=*/5);
  Sequence* high = h.Add(2, /*priority=*/-1);
  Sequence* late_default = h.Add(2, 0);
  std::vector<Sequence*> order;
  for (int i = 0; i < 3; ++i) {
    SchedulerOutput out = h.Step();
    ASSERT_EQ(out.scheduled.size(), 1u);
    order.push_back(out.scheduled[0].seq);
    h.sched.Finish(out.scheduled[0].seq, SequenceStatus::kFinishedStopped);
  }
  EXPECT_EQ(order, (std::vector<Sequence*>{high, late_default, late_low}));
}

TEST(SchedulerTest, HeadOfLineRequestIsNotOvertakenBySmallerOnes) {
  Harness h(8);  // 32 tokens of KV
  Sequence* a = h.Add(20);  // 5 blocks
  h.Step();
  h.Step();
  Sequence* big = h.Add(16);  // needs 4 blocks + 1: only 3 free
  Sequence* small = h.Add(2);
  SchedulerOutput out = h.Step();
  EXPECT_EQ(h.NewTokens(out, a), 1);
  EXPECT_EQ(h.NewTokens(out, big), 0);
  EXPECT_EQ(h.NewTokens(out, small), 0) << "a smaller request overtook the head of the queue";
  h.sched.Finish(a, SequenceStatus::kFinishedStopped);
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, big), 16);
}

TEST(SchedulerTest, PreemptionByRecomputeTakesTheLastSequenceAndResumesIt) {
  Harness h(6);  // 24 tokens
  Sequence* a = h.Add(8);   // 2 blocks
  Sequence* b = h.Add(8);   // 2 blocks
  h.Step();                 // both prefill, sample: 9 tokens each
  h.Step();                 // decode: both need a 3rd block: 6 used
  EXPECT_EQ(h.pool.num_free(), 0);
  // Next decodes fit in the 3rd blocks until position 12.
  for (int i = 0; i < 3; ++i) h.Step();
  // a and b now hold 12 computed + 1 new token: both need a 4th block; only b can lose.
  SchedulerOutput out = h.Step();
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], b);
  EXPECT_EQ(b->status, SequenceStatus::kWaiting);
  EXPECT_TRUE(b->block_table.empty());
  EXPECT_EQ(b->num_computed_tokens, 0);
  EXPECT_EQ(b->num_output_tokens(), 5);  // outputs kept: recomputed, not resampled
  EXPECT_EQ(h.NewTokens(out, a), 1);
  EXPECT_EQ(h.sched.num_preemptions(), 1);
  h.sched.Finish(a, SequenceStatus::kFinishedLength);
  out = h.Step();  // b is readmitted and recomputes what the cache lost
  EXPECT_EQ(b->status, SequenceStatus::kRunning);
  // b released its 3 full blocks deepest first; a's new block evicted the deepest, so
  // the prompt's 2 blocks hit and 13 - 8 tokens are recomputed.
  EXPECT_EQ(h.NewTokens(out, b), 5);
}

TEST(SchedulerTest, ASequenceWithNobodyBehindItPreemptsItself) {
  Harness h(4, {2, 16, true}, /*caching=*/false);
  Sequence* a = h.Add(8, /*priority=*/0);
  Sequence* b = h.Add(7, /*priority=*/1);
  h.Step();  // a: 2 blocks, b: 2 blocks; both sample
  // a needs a 3rd block at position 8 -> preempts b (after it). b is gone: a proceeds.
  SchedulerOutput out = h.Step();
  EXPECT_EQ(h.NewTokens(out, a), 1);
  EXPECT_EQ(out.preempted, (std::vector<Sequence*>{b}));
}

TEST(SchedulerTest, PrefixHitSkipsCachedTokensButAlwaysComputesOne) {
  Harness h(64);
  Sequence* a = h.Add(12, 0, 1);
  h.Step();
  Sequence* b = h.Add(12, 0, 1);  // same tokens: 3 full blocks cached, but one must be computed
  SchedulerOutput out = h.Step();
  EXPECT_EQ(h.NewTokens(out, b), 4);
  EXPECT_EQ(b->num_cached_tokens, 8);
  EXPECT_EQ(b->block_table[0], a->block_table[0]);
  EXPECT_EQ(b->block_table[1], a->block_table[1]);
  Sequence* c = h.Add(14, 0, 1);  // 12 shared + 2 new
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, c), 2);
  EXPECT_EQ(c->num_cached_tokens, 12);
}

TEST(SchedulerTest, FinishInEveryStateFreesEverything) {
  struct Case {
    std::string name;
    int steps_before;  // steps run before finishing
    int prompt;
  };
  for (const Case& c : std::vector<Case>{{"waiting", 0, 6}, {"prefilling (chunked)", 1, 40}, {"decoding", 3, 6}}) {
    Harness h(64);
    Sequence* s = h.Add(c.prompt);
    for (int i = 0; i < c.steps_before; ++i) h.Step();
    h.sched.Finish(s, SequenceStatus::kFinishedAborted);
    EXPECT_EQ(h.pool.num_free(), 64) << c.name;
    EXPECT_TRUE(h.sched.empty()) << c.name;
    EXPECT_TRUE(h.Step().empty()) << c.name;
    h.sched.Finish(s, SequenceStatus::kFinishedAborted);  // idempotent
  }
  // Preempted, then finished while waiting.
  Harness h(6);
  h.Add(8);
  Sequence* b = h.Add(8);
  for (int i = 0; i < 6; ++i) h.Step();
  ASSERT_EQ(b->status, SequenceStatus::kWaiting);
  h.sched.Finish(b, SequenceStatus::kFinishedAborted);
  EXPECT_EQ(h.sched.num_waiting(), 0);
}

TEST(SchedulerTest, SiblingsWaitForTheLeadersPrompt) {
  Harness h(64);
  Sequence* leader = h.Add(10);
  Sequence* sib = h.Add(10);
  sib->leader = leader;
  leader->tokens.resize(40, 3);
  leader->num_prompt_tokens = 40;
  sib->tokens = leader->tokens;
  sib->num_prompt_tokens = 40;
  SchedulerOutput out = h.Step();
  EXPECT_EQ(h.NewTokens(out, sib), 0);
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, sib), 0);
  out = h.Step();  // the leader's last 8 prompt tokens
  EXPECT_EQ(h.NewTokens(out, sib), 0);
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, sib), 4);  // 9 blocks cached, the last 4 tokens computed
}

TEST(SchedulerTest, WithoutPrefixCachingSiblingsReferenceTheLeadersPromptBlocks) {
  Harness h(64, {4, 16, true}, /*caching=*/false);
  Sequence* leader = h.Add(10);
  Sequence* sib = h.Add(10, 0, 1000);  // the same prompt
  sib->leader = leader;
  SchedulerOutput out = h.Step();
  EXPECT_EQ(h.NewTokens(out, leader), 10);
  EXPECT_EQ(h.NewTokens(out, sib), 0);
  out = h.Step();
  EXPECT_EQ(h.NewTokens(out, sib), 2);  // 2 full blocks shared, the partial one's 2 tokens computed
  EXPECT_EQ(out.num_prefill_tokens, 2);
  EXPECT_EQ(sib->num_cached_tokens, 8);
  ASSERT_GE(sib->num_blocks(), 3);
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(sib->block_table[static_cast<size_t>(j)], leader->block_table[static_cast<size_t>(j)]);
    EXPECT_EQ(h.pool.ref_count(sib->block_table[static_cast<size_t>(j)]), 2);
  }
  EXPECT_NE(sib->block_table[2], leader->block_table[2]);
  EXPECT_EQ(h.pool.prefix_caching(), false);
}

TEST(SchedulerTest, FinishingOneSiblingInEveryStateFreesExactlyItsOwnBlocks) {
  // Budget 2 tokens a step: the leader's 10-token prompt takes 5 steps, then the sibling
  // is admitted with 1 of its 2 uncached tokens (prefilling), then decodes.
  struct Case {
    std::string name;
    int steps_before;
    SequenceStatus sib_status;
    int64_t sib_computed;  // expected, to pin the state down
  };
  for (const Case& c : std::vector<Case>{{"waiting for the leader", 3, SequenceStatus::kWaiting, 0},
                                         {"prefilling", 6, SequenceStatus::kRunning, 9},
                                         {"decoding", 9, SequenceStatus::kRunning, 12}}) {
    Harness h(64, {2, 2, true}, /*caching=*/false);
    Sequence* leader = h.Add(10);
    Sequence* sib = h.Add(10, 0, 1000);
    sib->leader = leader;
    for (int i = 0; i < c.steps_before; ++i) h.Step();
    ASSERT_EQ(sib->status, c.sib_status) << c.name;
    ASSERT_EQ(sib->num_computed_tokens, c.sib_computed) << c.name;
    int64_t own = 0;
    for (int32_t b : sib->block_table)
      own += std::find(leader->block_table.begin(), leader->block_table.end(), b) == leader->block_table.end();
    if (c.sib_status == SequenceStatus::kRunning) {
      EXPECT_GT(own, 0) << c.name;
    }
    const int64_t used = h.pool.num_used();
    h.sched.Finish(sib, SequenceStatus::kFinishedAborted);
    EXPECT_EQ(h.pool.num_used(), used - own) << c.name;
    for (int32_t b : leader->block_table) EXPECT_EQ(h.pool.ref_count(b), 1) << c.name;
    const std::vector<int32_t> before = leader->block_table;
    h.Step();  // the leader goes on with its blocks intact
    EXPECT_EQ(std::vector<int32_t>(leader->block_table.begin(), leader->block_table.begin() + 2),
              std::vector<int32_t>(before.begin(), before.begin() + 2)) << c.name;
    h.sched.Finish(leader, SequenceStatus::kFinishedLength);
    EXPECT_EQ(h.pool.num_free(), 64) << c.name;
  }
}

TEST(SchedulerTest, BetterPriorityPreemptsTheWorstRunningAtMaxNumSeqs) {
  Harness h(64, {2, 16, true});
  Sequence* a = h.Add(4, /*priority=*/1);
  Sequence* b = h.Add(4, /*priority=*/1);
  h.Step();
  Sequence* c = h.Add(4, /*priority=*/0);
  SchedulerOutput out = h.Step();
  EXPECT_EQ(out.preempted, (std::vector<Sequence*>{b}));  // worst priority, latest arrival
  EXPECT_EQ(h.NewTokens(out, c), 4);
  EXPECT_EQ(h.NewTokens(out, a), 1);
  EXPECT_EQ(h.NewTokens(out, b), 0);  // taken out of the plan it was already in
  EXPECT_EQ(out.num_batched_tokens, 5);
  EXPECT_EQ(out.num_prefill_tokens, 4);
  EXPECT_EQ(b->status, SequenceStatus::kWaiting);
  EXPECT_TRUE(b->block_table.empty());
  EXPECT_EQ(b->num_output_tokens(), 1);
}

TEST(SchedulerTest, BetterPriorityPreemptsWhenBlocksRunOutButEqualPriorityWaits) {
  for (int c_priority : {0, 1}) {
    Harness h(5, {4, 16, true}, /*caching=*/false);
    Sequence* a = h.Add(7, 1);
    Sequence* b = h.Add(7, 1);
    h.Step();  // 2 blocks each, 1 free
    Sequence* c = h.Add(6, c_priority);  // needs 2 blocks
    SchedulerOutput out = h.Step();
    EXPECT_EQ(h.NewTokens(out, a), 1) << c_priority;
    if (c_priority == 0) {
      EXPECT_EQ(out.preempted, (std::vector<Sequence*>{b}));
      EXPECT_EQ(h.NewTokens(out, c), 6);
    } else {  // FCFS: c waits its turn, nobody is preempted
      EXPECT_TRUE(out.preempted.empty());
      EXPECT_EQ(h.NewTokens(out, b), 1);
      EXPECT_EQ(h.NewTokens(out, c), 0);
      EXPECT_EQ(c->status, SequenceStatus::kWaiting);
    }
  }
}

}  // namespace
}  // namespace tide
