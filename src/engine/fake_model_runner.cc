#include "engine/fake_model_runner.h"

#include <chrono>
#include <thread>

#include "base/rng.h"

namespace tide {

FakeModelRunner::FakeModelRunner(const FakeModelOptions& o)
    : kv_bytes_per_token_(o.kv_bytes_per_token), peak_(o.peak), step_delay_us_(o.step_delay_us),
      async_launch_(o.async_launch) {
  config_.architecture = "fake";
  config_.vocab_size = o.vocab_size;
  config_.max_position_embeddings = o.max_position_embeddings;
  config_.eos_token_ids = o.eos_token_ids;
  config_.num_layers = 1;
  config_.num_heads = 1;
  config_.num_kv_heads = 1;
  config_.head_dim = 1;
  config_.hidden_size = 1;
}

Status FakeModelRunner::AllocateKvCache(int64_t num_blocks, int block_size) {
  num_blocks_ = num_blocks;
  block_size_ = block_size;
  slots_.assign(static_cast<size_t>(num_blocks * block_size), -1);
  return OkStatus();
}

void FakeModelRunner::TEST_Logits(const std::vector<int32_t>& context, float* out) const {
  uint64_t h = 0x1234;
  for (size_t p = 0; p < context.size(); ++p) h = Mix64(h ^ (static_cast<uint64_t>(context[p]) << 20) ^ p);
  const int64_t v = config_.vocab_size;
  for (int64_t i = 0; i < v; ++i) out[i] = static_cast<float>(UniformAt(h, static_cast<uint64_t>(i))) * 2.f - 1.f;
  out[h % static_cast<uint64_t>(v)] += peak_;
}

Status FakeModelRunner::Forward(const ForwardBatch& b, std::vector<float>* logits) {
  if (fail_next_) {
    fail_next_ = false;
    return Internal("injected forward failure");
  }
  RETURN_IF_ERROR(b.Validate(num_blocks_, block_size_, config_.vocab_size));
  if (step_delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(step_delay_us_));
  StepRecord rec;
  rec.num_seqs = b.num_seqs();
  rec.num_tokens = b.num_tokens();
  for (int s = 0; s < b.num_seqs(); ++s)
    rec.q_lens.push_back(b.q_start[static_cast<size_t>(s) + 1] - b.q_start[static_cast<size_t>(s)]);
  steps_.push_back(std::move(rec));
  for (int64_t t = 0; t < b.num_tokens(); ++t) slots_[static_cast<size_t>(b.slots[static_cast<size_t>(t)])] = b.tokens[static_cast<size_t>(t)];

  const int64_t v = config_.vocab_size;
  logits->resize(b.logit_rows.size() * static_cast<size_t>(v));
  std::vector<int32_t> ctx;
  for (size_t r = 0; r < b.logit_rows.size(); ++r) {
    const int32_t row = b.logit_rows[r];
    int s = 0;
    while (b.q_start[static_cast<size_t>(s) + 1] <= row) ++s;
    // The row's context: positions [0, position of row], read through the block table.
    const int32_t last = b.positions[static_cast<size_t>(row)];
    ctx.clear();
    for (int32_t p = 0; p <= last; ++p) {
      const int32_t blk = b.block_table[static_cast<size_t>(s) * static_cast<size_t>(b.max_blocks_per_seq) +
                                        static_cast<size_t>(p / block_size_)];
      const int32_t tok = slots_[static_cast<size_t>(int64_t{blk} * block_size_ + p % block_size_)];
      if (tok < 0) return Internal("fake model: position " + std::to_string(p) + " was never written");
      ctx.push_back(tok);
    }
    TEST_Logits(ctx, logits->data() + r * static_cast<size_t>(v));
  }
  return OkStatus();
}

}  // namespace tide
