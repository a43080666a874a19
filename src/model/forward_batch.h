// ForwardBatch: everything one forward pass needs, flat so a GPU kernel can use it as is.
// One batch may mix prefill chunks and single decode tokens of several sequences.
//
//   tokens[T], positions[T]    the step's tokens, sequences concatenated
//   q_start[S+1]               sequence s owns token rows [q_start[s], q_start[s+1])
//   kv_len[S]                  context length of s after this step (cached + new)
//   block_table[S * max_blocks_per_seq]  block ids of s, in order; unused entries -1
//   slots[T]                   where each token's K/V goes: block * block_size + offset
//   logit_rows[R]              token rows whose logits are wanted (last row of each
//                              sequence that samples this step), in output order
//   prev_sample_row[T]         optional (empty = all -1): r >= 0 means token i is the one
//                              the previous step samples for its logit row r, not yet
//                              known on the host (tokens[i] holds 0 then); the runner
//                              resolves it (ModelRunner::Launch, engine/model_runner.h)
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"

namespace tide {

struct ForwardBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> q_start;
  std::vector<int32_t> kv_len;
  std::vector<int32_t> block_table;
  int max_blocks_per_seq = 0;
  std::vector<int64_t> slots;
  std::vector<int32_t> logit_rows;
  std::vector<int32_t> prev_sample_row;

  [[nodiscard]] bool has_prev_samples() const { return !prev_sample_row.empty(); }

  [[nodiscard]] int num_seqs() const { return static_cast<int>(kv_len.size()); }
  [[nodiscard]] int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }

  // Checks every invariant above against a cache of num_blocks x block_size slots and a
  // vocabulary of vocab_size (prev_sample_row: its size and r >= -1; the rows' range
  // only the runner knows). kInvalidArgument naming the first violation.
  [[nodiscard]] Status Validate(int64_t num_blocks, int block_size, int64_t vocab_size) const;
};

}  // namespace tide
