#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "kv/block_pool.h"
#include "kv/kv_cache.h"

namespace tide {

const char* FinishReasonName(FinishReason r) { return r == FinishReason::kStop ? "stop" : "length"; }

namespace {

struct SeqState {
  const GenerateRequest* req = nullptr;
  std::vector<int32_t> tokens;  // prompt then generated
  std::vector<int32_t> blocks;
  int64_t num_computed = 0;     // tokens whose K/V are in the cache
  bool done = false;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Result<std::vector<GenerateOutput>> Generate(Model& model, const ExecContext& ctx,
                                             const std::vector<GenerateRequest>& requests,
                                             const GeneratorOptions& opt, const TokenCallback& on_token,
                                             GenerateStats* stats) {
  const ModelConfig& c = model.config();
  if (requests.empty()) return InvalidArgument("no requests");
  if (opt.block_size <= 0 || opt.max_batched_tokens <= 0) return InvalidArgument("block size and token budget must be > 0");
  int64_t total_blocks = 0;
  int max_blocks = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerateRequest& r = requests[i];
    const std::string who = "request " + std::to_string(i) + ": ";
    if (r.prompt.empty()) return InvalidArgument(who + "empty prompt");
    if (r.max_tokens <= 0) return InvalidArgument(who + "max_tokens must be > 0");
    RETURN_IF_ERROR(r.sampling.Validate().WithContext(who.substr(0, who.size() - 2)));
    for (int32_t t : r.prompt)
      if (t < 0 || t >= c.vocab_size)
        return InvalidArgument(who + "token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                               std::to_string(c.vocab_size) + ")");
    const int64_t need = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
    if (need > c.max_position_embeddings)
      return InvalidArgument(who + "prompt (" + std::to_string(r.prompt.size()) + " tokens) + max_tokens (" +
                             std::to_string(r.max_tokens) + ") = " + std::to_string(need) +
                             " exceeds the model's context length " + std::to_string(c.max_position_embeddings));
    const int64_t blocks = (need + opt.block_size - 1) / opt.block_size;
    total_blocks += blocks;
    max_blocks = std::max(max_blocks, static_cast<int>(blocks));
  }
  ASSIGN_OR_RETURN(KvCache cache, KvCache::Create({c.num_layers, total_blocks, opt.block_size, c.num_kv_heads, c.head_dim}));
  BlockPool pool(total_blocks);

  std::vector<SeqState> seqs(requests.size());
  std::vector<GenerateOutput> outs(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    seqs[i].req = &requests[i];
    seqs[i].tokens = requests[i].prompt;
    const int64_t need = static_cast<int64_t>(requests[i].prompt.size()) + requests[i].max_tokens;
    seqs[i].blocks = pool.allocate((need + opt.block_size - 1) / opt.block_size);
  }
  GenerateStats st;
  for (const auto& r : requests) st.prompt_tokens += static_cast<int64_t>(r.prompt.size());

  ForwardBatch b;
  std::vector<float> logits;
  std::vector<size_t> sampling_seqs;
  for (;;) {
    b.tokens.clear();
    b.positions.clear();
    b.q_start.assign(1, 0);
    b.kv_len.clear();
    b.block_table.clear();
    b.slots.clear();
    b.logit_rows.clear();
    b.max_blocks_per_seq = max_blocks;
    sampling_seqs.clear();
    int64_t budget = opt.max_batched_tokens;
    bool has_prefill = false;
    for (size_t i = 0; i < seqs.size(); ++i) {
      SeqState& s = seqs[i];
      if (s.done) continue;
      const int64_t prompt_len = static_cast<int64_t>(s.req->prompt.size());
      int64_t n;
      if (s.num_computed < prompt_len) {
        n = std::min(prompt_len - s.num_computed, budget);
        if (n <= 0) continue;
        budget -= n;
        has_prefill = true;
      } else {
        n = 1;  // decode: the last sampled token
      }
      for (int64_t j = 0; j < n; ++j) {
        const int64_t pos = s.num_computed + j;
        b.tokens.push_back(s.tokens[static_cast<size_t>(pos)]);
        b.positions.push_back(static_cast<int32_t>(pos));
        b.slots.push_back(int64_t{s.blocks[static_cast<size_t>(pos / opt.block_size)]} * opt.block_size +
                          pos % opt.block_size);
      }
      s.num_computed += n;
      b.q_start.push_back(static_cast<int32_t>(b.tokens.size()));
      b.kv_len.push_back(static_cast<int32_t>(s.num_computed));
      for (int j = 0; j < max_blocks; ++j)
        b.block_table.push_back(j < static_cast<int>(s.blocks.size()) ? s.blocks[static_cast<size_t>(j)] : -1);
      if (s.num_computed == static_cast<int64_t>(s.tokens.size())) {  // caught up: sample next
        b.logit_rows.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
        sampling_seqs.push_back(i);
      }
    }
    if (b.tokens.empty()) break;
    const double t0 = Now();
    RETURN_IF_ERROR(model.Forward(ctx, b, cache, &logits));
    for (size_t r = 0; r < sampling_seqs.size(); ++r) {
      const size_t i = sampling_seqs[r];
      SeqState& s = seqs[i];
      GenerateOutput& out = outs[i];
      SampleResult sr = Sample(logits.data() + static_cast<int64_t>(r) * c.vocab_size, c.vocab_size, s.req->sampling,
                               static_cast<uint64_t>(out.tokens.size()));
      out.tokens.push_back(sr.token);
      s.tokens.push_back(sr.token);
      if (on_token) on_token(static_cast<int>(i), sr);
      out.samples.push_back(std::move(sr));
      const int32_t tok = out.tokens.back();
      const bool is_eos = std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), tok) != c.eos_token_ids.end();
      const bool is_stop = std::find(s.req->stop_token_ids.begin(), s.req->stop_token_ids.end(), tok) !=
                           s.req->stop_token_ids.end();
      if ((is_eos && !s.req->ignore_eos) || is_stop) {
        out.finish = FinishReason::kStop;
        s.done = true;
      } else if (static_cast<int>(out.tokens.size()) >= s.req->max_tokens) {
        out.finish = FinishReason::kLength;
        s.done = true;
      }
      if (s.done) pool.release(s.blocks);
    }
    const double dt = Now() - t0;
    if (has_prefill) {
      st.prefill_seconds += dt;
    } else {
      st.decode_seconds += dt;
      ++st.decode_steps;
    }
  }
  for (const auto& o : outs) st.generated_tokens += static_cast<int64_t>(o.tokens.size());
  if (stats) *stats = st;
  return outs;
}

}  // namespace tide
