#include "engine/engine_core.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "base/check.h"
#include "engine/logits_processor.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

namespace tide {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kNone: break;
  }
  return "";
}

double EngineClock() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Sequence::Sequence() = default;
Sequence::~Sequence() = default;

Result<int64_t> ParseByteSize(std::string_view text) {
  std::string_view t = text;
  auto bad = [&] { return InvalidArgument("bad size '" + std::string(text) + "' (want e.g. 512M, 4G, 1048576)"); };
  if (t.ends_with("iB")) t.remove_suffix(2);
  else if (t.ends_with("B") || t.ends_with("b")) t.remove_suffix(1);
  int shift = 0;
  if (!t.empty()) {
    switch (t.back()) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      default: break;
    }
    if (shift) t.remove_suffix(1);
  }
  if (t.empty() || t.size() > 18) return bad();
  int64_t v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return bad();
    v = v * 10 + (c - '0');
  }
  if (v == 0 || v > (INT64_MAX >> shift)) return bad();
  return v << shift;
}

// One request: its n completions and the params they point at.
struct EngineCore::RequestState {
  Request request;
  std::vector<std::unique_ptr<Sequence>> seqs;
  int num_unfinished = 0;
};

Result<std::unique_ptr<EngineCore>> EngineCore::Create(ModelRunner& runner, const Tokenizer* tokenizer,
                                                       const EngineOptions& o) {
  const ModelConfig& c = runner.config();
  if (o.block_size <= 0 || o.block_size > 1024) return InvalidArgument("--block-size must be in [1, 1024]");
  if (o.max_num_seqs <= 0) return InvalidArgument("--max-num-seqs must be > 0");
  if (o.max_num_batched_tokens < o.max_num_seqs)
    return InvalidArgument("--max-num-batched-tokens (" + std::to_string(o.max_num_batched_tokens) +
                           ") must be >= --max-num-seqs (" + std::to_string(o.max_num_seqs) +
                           ") so that every running sequence can decode each step");
  const int64_t max_len = o.max_model_len > 0 ? o.max_model_len : c.max_position_embeddings;
  if (max_len <= 1 || max_len > c.max_position_embeddings)
    return InvalidArgument("--max-model-len " + std::to_string(max_len) + " must be in [2, " +
                           std::to_string(c.max_position_embeddings) + "] (the model's context length)");
  if (!o.enable_chunked_prefill && o.max_num_batched_tokens < max_len)
    return InvalidArgument("without chunked prefill, --max-num-batched-tokens must be >= --max-model-len");
  const int64_t block_bytes = runner.kv_bytes_per_token() * o.block_size;
  const int64_t num_blocks = o.num_kv_blocks > 0 ? o.num_kv_blocks : o.kv_cache_bytes / std::max<int64_t>(block_bytes, 1);
  const int64_t need = (max_len + o.block_size - 1) / o.block_size;
  if (num_blocks < need)
    return InvalidArgument("KV cache of " + std::to_string(num_blocks) + " blocks = " +
                           std::to_string(num_blocks * o.block_size) + " tokens cannot hold one request of " +
                           "--max-model-len " + std::to_string(max_len) + " (" + std::to_string(need) +
                           " blocks = " + std::to_string((need * block_bytes + 1023) >> 10) +
                           " KiB): raise --kv-cache-memory or lower --max-model-len");
  if (num_blocks > INT32_MAX) return InvalidArgument("KV cache of " + std::to_string(num_blocks) + " blocks is too many");
  RETURN_IF_ERROR(runner.AllocateKvCache(num_blocks, o.block_size));
  return std::unique_ptr<EngineCore>(new EngineCore(runner, tokenizer, o, max_len, num_blocks));
}

EngineCore::EngineCore(ModelRunner& runner, const Tokenizer* tokenizer, const EngineOptions& o, int64_t max_model_len,
                       int64_t num_blocks)
    : runner_(runner),
      tokenizer_(tokenizer),
      opt_(o),
      async_(o.async_scheduling && runner.LaunchIsAsync()),
      max_model_len_(max_model_len),
      vocab_(runner.config().vocab_size),
      eos_ids_(runner.config().eos_token_ids),
      pool_(std::make_unique<BlockPool>(
          BlockPoolOptions{num_blocks, o.block_size, o.enable_prefix_caching, o.block_hasher})),
      scheduler_(SchedulerOptions{o.max_num_seqs, o.max_num_batched_tokens, o.enable_chunked_prefill}, *pool_) {
  // The tokenizer's end ids (eot/eom tokens, generation_config) end generation too.
  if (tokenizer_)
    for (int32_t id : tokenizer_->eos_ids())
      if (std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) eos_ids_.push_back(id);
}

EngineCore::~EngineCore() {
  // The runner outlives the core: leave no step of ours in it for whoever uses it next.
  std::vector<SampleResult> discard;
  while (!flights_.empty()) {
    (void)runner_.Collect(&discard);
    flights_.pop_front();
  }
}

std::string EngineCore::KvSummary() const {
  char buf[160];
  const double mib = static_cast<double>(runner_.kv_bytes_per_token() * pool_->block_size() * pool_->num_blocks()) / (1 << 20);
  std::snprintf(buf, sizeof buf, "%lld blocks = %lld tokens (%.1f MiB, block size %d, max_model_len %lld)",
                static_cast<long long>(pool_->num_blocks()),
                static_cast<long long>(pool_->num_blocks() * pool_->block_size()), mib, pool_->block_size(),
                static_cast<long long>(max_model_len_));
  return buf;
}

Status EngineCore::ValidateRequest(const Request& r) const {
  if (r.id.empty()) return InvalidArgument("request id must not be empty");
  RETURN_IF_ERROR(r.sampling.Validate());
  if (r.prompt.empty()) return InvalidArgument("empty prompt");
  auto in_vocab = [&](int32_t t) { return t >= 0 && t < vocab_; };
  const std::string range = " is outside the vocabulary [0, " + std::to_string(vocab_) + ")";
  for (int32_t t : r.prompt)
    if (!in_vocab(t)) return InvalidArgument("token id " + std::to_string(t) + range);
  for (int32_t t : r.sampling.stop_token_ids)
    if (!in_vocab(t)) return InvalidArgument("stop_token_ids: token id " + std::to_string(t) + range);
  for (const auto& [t, b] : r.sampling.logit_bias)
    if (!in_vocab(t)) return InvalidArgument("logit_bias: token id " + std::to_string(t) + range);
  if (!r.sampling.stop.empty() && !tokenizer_) return InvalidArgument("stop strings need a tokenizer");
  const int64_t need = static_cast<int64_t>(r.prompt.size()) + r.sampling.max_tokens;
  if (need > max_model_len_)
    return InvalidArgument("prompt (" + std::to_string(r.prompt.size()) + " tokens) + max_tokens (" +
                           std::to_string(r.sampling.max_tokens) + ") = " + std::to_string(need) +
                           " exceeds the model's context length " + std::to_string(max_model_len_) +
                           " (max_model_len)");
  return OkStatus();
}

Status EngineCore::AddRequest(Request request, double arrival_time) {
  RETURN_IF_ERROR(ValidateRequest(request));
  if (requests_.count(request.id)) return AlreadyExists("request id '" + request.id + "' is already live");
  auto st = std::make_unique<RequestState>();
  st->request = std::move(request);
  const Request& r = st->request;
  for (int i = 0; i < r.sampling.n; ++i) {
    auto s = std::make_unique<Sequence>();
    s->seq_id = next_seq_id_++;
    s->request_id = r.id;
    s->index = i;
    s->priority = r.priority;
    s->cache_salt = r.cache_salt;
    s->sampling = &r.sampling;
    s->sampler.temperature = r.sampling.temperature;
    s->sampler.top_k = r.sampling.top_k;
    s->sampler.top_p = r.sampling.top_p;
    s->sampler.min_p = r.sampling.min_p;
    s->sampler.logprobs = r.sampling.logprobs;
    s->sampler.top_logprobs = r.sampling.top_logprobs;
    s->sampler.seed = r.sampling.seed + static_cast<uint64_t>(i);
    s->max_tokens = r.sampling.max_tokens;
    if (i == 0) s->prompt_logprobs_k = r.sampling.prompt_logprobs;
    s->tokens = r.prompt;
    s->num_prompt_tokens = static_cast<int64_t>(r.prompt.size());
    s->times.arrival = arrival_time;
    if (i > 0) s->leader = st->seqs[0].get();
    if (tokenizer_) s->detok = std::make_unique<IncrementalDetokenizer>(*tokenizer_, /*skip_special_tokens=*/true);
    if (!r.sampling.stop.empty()) s->stop_matcher = std::make_unique<StopStringMatcher>(r.sampling.stop);
    st->seqs.push_back(std::move(s));
  }
  st->num_unfinished = r.sampling.n;
  for (auto& s : st->seqs) scheduler_.Add(s.get());
  requests_.emplace(r.id, std::move(st));
  return OkStatus();
}

EngineCore::RequestState* EngineCore::StateOf(const Sequence* seq) {
  auto it = requests_.find(seq->request_id);
  TIDE_CHECK(it != requests_.end());
  return it->second.get();
}

void EngineCore::FinishSequence(Sequence* seq, FinishReason reason, RequestOutput* out) {
  // A sample still in flight past the end is discarded when its step is collected.
  seq->tokens.resize(seq->tokens.size() - static_cast<size_t>(seq->num_pending_tokens));
  seq->num_pending_tokens = 0;
  seq->pending_row = -1;
  const SequenceStatus status = reason == FinishReason::kStop     ? SequenceStatus::kFinishedStopped
                                : reason == FinishReason::kLength ? SequenceStatus::kFinishedLength
                                                                  : SequenceStatus::kFinishedAborted;
  scheduler_.Finish(seq, status);
  seq->times.finished = EngineClock();
  out->finish_reason = reason;
  out->usage = {seq->num_prompt_tokens, seq->num_output_tokens(), seq->num_cached_tokens};
  out->times = seq->times;
  ++counters_.num_finished;
  --StateOf(seq)->num_unfinished;
}

bool EngineCore::Abort(const std::string& id, std::vector<RequestOutput>* outs) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return false;
  for (auto& s : it->second->seqs) {
    if (s->is_finished()) continue;
    RequestOutput o;
    o.request_id = id;
    o.index = s->index;
    FinishSequence(s.get(), FinishReason::kAbort, &o);
    outs->push_back(std::move(o));
  }
  Retire(id);
  // Nothing left that a queued step could be speculating for.
  if (requests_.empty()) DrainFlights(outs);
  return true;
}

void EngineCore::Retire(const std::string& id) {
  auto it = requests_.find(id);
  TIDE_CHECK(it != requests_.end());
  if (!flights_.empty()) {
    flights_.back().keep_alive.push_back(std::move(it->second));
  } else {
    retired_.push_back(std::move(it->second));  // a plan of this Step may still point at it
  }
  requests_.erase(it);
}

void EngineCore::Step(std::vector<RequestOutput>* outs) {
  retired_.clear();
  StepOnce(outs);
  retired_.clear();
}

void EngineCore::StepOnce(std::vector<RequestOutput>* outs) {
  SchedulerOutput plan = scheduler_.Schedule();
  if (plan.empty()) return DrainFlights(outs);  // nothing new: finish what is in flight
  const bool on_host = NeedsHostLogits(plan);
  if (on_host || !async_ || NeedsPendingHistory(plan)) {
    // This step must see every token: collect the one in flight first. Sequences it
    // finishes leave the plan (their blocks are free again, and nothing was allocated
    // since, so the rest of the plan still holds).
    DrainFlights(outs);
    DropFinished(&plan);
    if (plan.empty()) return;
  }
  Flight f;
  f.start = EngineClock();
  f.on_host = on_host;
  f.plan = std::move(plan);
  BuildBatch(f.plan);
  const Status st = on_host ? RunOnHost(&f) : runner_.Launch(batch_, rows_);
  if (!st.ok()) {
    FailStep(f.plan, st, outs);
  } else {
    OnLaunched(f);
    flights_.push_back(std::move(f));
  }
  // Async: keep one step queued behind the running one and collect the older one, so a
  // Step emits one step's outputs (a step run on the host waits its turn too).
  const size_t keep = async_ ? 1 : 0;
  while (flights_.size() > keep) CollectOldest(outs);
  if (requests_.empty()) DrainFlights(outs);
}

bool EngineCore::NeedsHostLogits(const SchedulerOutput& plan) const {
  for (const ScheduledSequence& ss : plan.scheduled)
    if (ss.seq->needs_prompt_logprobs()) return true;
  return false;
}

bool EngineCore::NeedsPendingHistory(const SchedulerOutput& plan) const {
  // A launched step's samples reach the runner's penalties on the device; one run on the
  // host left them only in its results.
  if (flights_.empty() || !flights_.back().on_host) return false;
  for (const ScheduledSequence& ss : plan.scheduled)
    if (ss.samples && ss.seq->num_pending_tokens > 0 && NeedsTokenHistory(*ss.seq->sampling)) return true;
  return false;
}

void EngineCore::DropFinished(SchedulerOutput* plan) {
  std::erase_if(plan->scheduled, [&](const ScheduledSequence& ss) {
    if (!ss.seq->is_finished()) return false;
    plan->num_batched_tokens -= ss.num_new_tokens;
    return true;
  });
  plan->num_prefill_tokens = std::min(plan->num_prefill_tokens, plan->num_batched_tokens);
}

void EngineCore::BuildBatch(const SchedulerOutput& plan) {
  const int bs = pool_->block_size();
  ForwardBatch& b = batch_;
  b.tokens.clear();
  b.positions.clear();
  b.q_start.assign(1, 0);
  b.kv_len.clear();
  b.block_table.clear();
  b.slots.clear();
  b.logit_rows.clear();
  b.prev_sample_row.clear();
  prompt_rows_.clear();
  rows_.clear();
  bool any_pending = false;
  b.max_blocks_per_seq = 1;
  for (const ScheduledSequence& ss : plan.scheduled)
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, static_cast<int>(ss.seq->num_blocks()));
  const double now = EngineClock();
  for (const ScheduledSequence& ss : plan.scheduled) {
    Sequence* s = ss.seq;
    if (s->times.first_scheduled == 0) s->times.first_scheduled = now;
    const int32_t row0 = static_cast<int32_t>(b.tokens.size());
    const int64_t end = s->num_computed_tokens + ss.num_new_tokens;
    for (int64_t pos = s->num_computed_tokens; pos < end; ++pos) {
      const int32_t tok = s->tokens[static_cast<size_t>(pos)];
      if (tok == kPendingToken) {
        // The sample of the step in flight: the runner reads it where that step left it
        // (a step run on the host has its results here already).
        TIDE_CHECK(!flights_.empty() && s->pending_row >= 0);
        const Flight& last = flights_.back();
        if (last.on_host) {
          b.tokens.push_back(last.results[static_cast<size_t>(s->pending_row)].token);
          if (any_pending) b.prev_sample_row.push_back(-1);
        } else {
          if (!any_pending) b.prev_sample_row.assign(b.tokens.size(), -1);
          any_pending = true;
          b.tokens.push_back(0);
          b.prev_sample_row.push_back(s->pending_row);
        }
      } else {
        b.tokens.push_back(tok);
        if (any_pending) b.prev_sample_row.push_back(-1);
      }
      b.positions.push_back(static_cast<int32_t>(pos));
      b.slots.push_back(int64_t{s->block_table[static_cast<size_t>(pos / bs)]} * bs + pos % bs);
    }
    // Prompt logprobs: the row of position p gives the logprob of prompt token p + 1. A
    // recompute after preemption skips positions already collected.
    PromptRows pr;
    if (s->needs_prompt_logprobs()) {
      pr.first_pos = std::max(s->num_computed_tokens, static_cast<int64_t>(s->prompt_logprobs.size()));
      pr.count = std::max<int64_t>(0, std::min(end, s->num_prompt_tokens - 1) - pr.first_pos);
      for (int64_t j = 0; j < pr.count; ++j)
        b.logit_rows.push_back(row0 + static_cast<int32_t>(pr.first_pos + j - s->num_computed_tokens));
    }
    prompt_rows_.push_back(pr);
    b.q_start.push_back(static_cast<int32_t>(b.tokens.size()));
    b.kv_len.push_back(static_cast<int32_t>(s->num_computed_tokens + ss.num_new_tokens));
    for (int j = 0; j < b.max_blocks_per_seq; ++j)
      b.block_table.push_back(j < s->num_blocks() ? s->block_table[static_cast<size_t>(j)] : -1);
    if (ss.samples) {
      b.logit_rows.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
      const SamplingParams& p = *s->sampling;
      const std::span<const int32_t> all(s->tokens);
      RowSampling row;
      row.sampler = &s->sampler;
      row.position = static_cast<uint64_t>(s->num_output_tokens());
      row.process = NeedsLogitsProcessing(p, s->num_output_tokens());
      row.request = &p;
      row.prompt = all.first(static_cast<size_t>(s->num_prompt_tokens));
      row.output = all.subspan(static_cast<size_t>(s->num_prompt_tokens));
      row.eos_ids = eos_ids_;
      rows_.push_back(row);
    }
  }
}

Status EngineCore::RunOnHost(Flight* f) {
  RETURN_IF_ERROR(runner_.Forward(batch_, &logits_));
  size_t row = 0;
  for (size_t k = 0; k < f->plan.scheduled.size(); ++k) {
    const ScheduledSequence& ss = f->plan.scheduled[k];
    Sequence* s = ss.seq;
    for (int64_t j = 0; j < prompt_rows_[k].count; ++j) {
      SampleResult pl;
      pl.token = s->tokens[static_cast<size_t>(prompt_rows_[k].first_pos + j + 1)];
      FillLogprobs(logits_.data() + static_cast<int64_t>(row++) * vocab_, vocab_, s->prompt_logprobs_k, &pl);
      s->prompt_logprobs.push_back(std::move(pl));
    }
    if (!ss.samples) continue;
    // Logprobs report the model's raw row; the token is chosen from the processed one.
    f->results.push_back(SampleRow(logits_.data() + static_cast<int64_t>(row++) * vocab_, vocab_,
                                   rows_[f->results.size()], &scratch_));
  }
  return OkStatus();
}

void EngineCore::OnLaunched(const Flight& f) {
  scheduler_.OnStepComputed(f.plan);
  int32_t row = 0;
  for (const ScheduledSequence& ss : f.plan.scheduled) {
    if (!ss.samples) continue;
    Sequence* s = ss.seq;
    s->tokens.push_back(kPendingToken);
    ++s->num_pending_tokens;
    s->pending_row = row++;
  }
}

void EngineCore::CollectOldest(std::vector<RequestOutput>* outs) {
  Flight f = std::move(flights_.front());
  flights_.pop_front();
  if (!f.on_host) {
    if (Status st = runner_.Collect(&f.results); !st.ok()) return FailStep(f.plan, st, outs);
  }
  Postprocess(f.plan, f.results, outs);
  // With a step queued behind the running one, launch-to-collect spans about two steps;
  // a step's own time starts when the previous one's results were in (or at its launch,
  // whichever is later), so the per-step times add up to the engine's busy time.
  const double now = EngineClock();
  const double dt = now - std::max(f.start, last_collect_time_);
  last_collect_time_ = now;
  ++counters_.num_steps;
  counters_.num_prompt_tokens_computed += f.plan.num_prefill_tokens;
  if (f.plan.num_prefill_tokens > 0) {
    counters_.prefill_step_seconds += dt;
  } else {
    counters_.decode_step_seconds += dt;
    ++counters_.num_decode_steps;
  }
  // f.keep_alive ends here: no step in flight is older than the next one.
}

void EngineCore::DrainFlights(std::vector<RequestOutput>* outs) {
  while (!flights_.empty()) CollectOldest(outs);
}

void EngineCore::Postprocess(const SchedulerOutput& plan, const std::vector<SampleResult>& results,
                             std::vector<RequestOutput>* outs) {
  size_t row = 0;
  std::vector<std::string> done;  // requests whose last completion finished this step
  for (const ScheduledSequence& ss : plan.scheduled) {
    if (!ss.samples) continue;
    const SampleResult& res = results[row++];
    Sequence* s = ss.seq;
    // Ended (stop, abort, failure) after this step was launched: a speculative sample.
    if (s->is_finished()) continue;
    // The oldest pending token is this step's: it sits right after the known outputs.
    TIDE_CHECK_GT(s->num_pending_tokens, 0);
    const size_t at = static_cast<size_t>(s->num_tokens() - s->num_pending_tokens);
    TIDE_CHECK_EQ(s->tokens[at], kPendingToken);
    const int32_t tok = res.token;
    s->tokens[at] = tok;
    if (--s->num_pending_tokens == 0) s->pending_row = -1;
    scheduler_.RegisterComputedBlocks(s);

    const SamplingParams& p = *s->sampling;
    const double now = EngineClock();
    ++counters_.num_generated_tokens;
    if (s->times.first_token == 0) s->times.first_token = now;
    const int64_t num_out = s->num_known_output_tokens();

    RequestOutput o;
    o.request_id = s->request_id;
    o.index = s->index;
    o.token_ids.push_back(tok);
    o.token_times.push_back(now);
    if (p.logprobs || p.top_logprobs > 0) {
      SampleResult lp = res;
      if (lp.top.size() > static_cast<size_t>(p.top_logprobs)) lp.top.resize(static_cast<size_t>(p.top_logprobs));
      o.logprobs.push_back(std::move(lp));
    }
    if (s->prompt_logprobs_k >= 0 && !s->prompt_logprobs_sent) {
      o.prompt_logprobs = std::move(s->prompt_logprobs);
      s->prompt_logprobs.clear();
      s->prompt_logprobs_sent = true;
    }

    FinishReason fin = FinishReason::kNone;
    const bool is_eos = !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), tok) != eos_ids_.end();
    const bool is_stop_id = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), tok) != p.stop_token_ids.end();
    if (is_eos || is_stop_id) fin = FinishReason::kStop;
    bool stopped_by_string = false;
    if (s->detok) {
      std::string piece = s->detok->Push(tok);
      if (fin != FinishReason::kNone || num_out >= s->max_tokens) piece += s->detok->Flush();
      if (s->stop_matcher) {
        StopStringMatcher::Output m = s->stop_matcher->Push(piece);
        o.text = std::move(m.emit);
        stopped_by_string = m.stopped;
        if (m.stopped && p.include_stop_str_in_output) o.text += p.stop[static_cast<size_t>(m.matched)];
      } else {
        o.text = std::move(piece);
      }
    }
    if (stopped_by_string) fin = FinishReason::kStop;
    if (fin == FinishReason::kNone && num_out >= s->max_tokens) fin = FinishReason::kLength;
    if (fin != FinishReason::kNone) {
      if (s->stop_matcher && !stopped_by_string) o.text += s->stop_matcher->Flush();
      FinishSequence(s, fin, &o);
      if (StateOf(s)->num_unfinished == 0) done.push_back(s->request_id);
    }
    outs->push_back(std::move(o));
  }
  for (const std::string& id : done) Retire(id);
}

void EngineCore::FailStep(const SchedulerOutput& plan, const Status& status, std::vector<RequestOutput>* outs) {
  std::vector<std::string> ids;
  for (const ScheduledSequence& ss : plan.scheduled)
    if (!ss.seq->is_finished()) ids.push_back(ss.seq->request_id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (const std::string& id : ids) {
    const size_t first = outs->size();
    Abort(id, outs);
    for (size_t i = first; i < outs->size(); ++i)
      if (outs->at(i).request_id == id) (*outs)[i].status = status;
  }
}

EngineStats EngineCore::stats() const {
  EngineStats s = counters_;
  s.num_blocks = pool_->num_blocks();
  s.block_size = pool_->block_size();
  s.num_free_blocks = pool_->num_free();
  s.num_cached_free_blocks = pool_->num_cached_free();
  s.num_waiting = scheduler_.num_waiting();
  s.num_running = scheduler_.num_running();
  s.num_requests = static_cast<int64_t>(requests_.size());
  s.num_preemptions = scheduler_.num_preemptions();
  s.prefix_cache = pool_->stats();
  return s;
}

}  // namespace tide
