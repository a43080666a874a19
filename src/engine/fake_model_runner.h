// FakeModelRunner: a ModelRunner for engine tests, with no weights and no arithmetic
// worth the name, but with a real paged "KV cache": each slot stores the token id
// written there. The logits of a row are a pure function of the context read back
// through the block table (every token and its position), so a wrong block table, a
// stale prefix-cache block or a lost write changes the output — and reading a slot that
// was never written is an error. Batch-invariant by construction.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model_runner.h"

namespace tide {

struct FakeModelOptions {
  int64_t vocab_size = 64;
  int64_t max_position_embeddings = 4096;
  std::vector<int32_t> eos_token_ids = {0};
  int64_t kv_bytes_per_token = 1024;
  float peak = 4.f;  // added to the preferred token's logit (a peaked distribution)
  int step_delay_us = 0;  // sleep per Forward: lets threaded tests act mid-request
  // LaunchIsAsync: the engine pipelines its steps as it does on a GPU (the default Launch
  // still runs each step at once), so engine tests exercise async scheduling.
  bool async_launch = true;
};

class FakeModelRunner final : public ModelRunner {
 public:
  explicit FakeModelRunner(const FakeModelOptions& options = {});

  const ModelConfig& config() const override { return config_; }
  int64_t kv_bytes_per_token() const override { return kv_bytes_per_token_; }
  Status AllocateKvCache(int64_t num_blocks, int block_size) override;
  Status Forward(const ForwardBatch& batch, std::vector<float>* logits) override;
  bool LaunchIsAsync() const override { return async_launch_; }

  // ---- test hooks
  struct StepRecord {
    int num_seqs = 0;
    int64_t num_tokens = 0;
    std::vector<int32_t> q_lens;  // tokens per sequence, in batch order
  };
  [[nodiscard]] const std::vector<StepRecord>& TEST_steps() const { return steps_; }
  void TEST_FailNextForward() { fail_next_ = true; }
  // The logits the fake produces for a context (what Forward computes per row).
  void TEST_Logits(const std::vector<int32_t>& context, float* out) const;

 private:
  ModelConfig config_;
  int64_t kv_bytes_per_token_;
  float peak_;
  int step_delay_us_;
  bool async_launch_;
  int block_size_ = 0;
  int64_t num_blocks_ = 0;
  std::vector<int32_t> slots_;  // token id per cache slot, -1 = never written
  std::vector<StepRecord> steps_;
  bool fail_next_ = false;
};

}  // namespace tide
