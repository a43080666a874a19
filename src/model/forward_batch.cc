#include "model/forward_batch.h"

#include <string>

namespace tide {

Status ForwardBatch::Validate(int64_t num_blocks, int block_size, int64_t vocab_size) const {
  const int64_t t = num_tokens();
  const int s = num_seqs();
  if (t == 0 || s == 0) return InvalidArgument("empty forward batch");
  if (static_cast<int64_t>(positions.size()) != t || static_cast<int64_t>(slots.size()) != t)
    return InvalidArgument("positions/slots must have one entry per token");
  if (static_cast<int>(q_start.size()) != s + 1 || q_start[0] != 0 || q_start[static_cast<size_t>(s)] != t)
    return InvalidArgument("q_start must be [0 .. num_tokens] with num_seqs + 1 entries");
  if (max_blocks_per_seq <= 0 || static_cast<int64_t>(block_table.size()) != int64_t{s} * max_blocks_per_seq)
    return InvalidArgument("block_table must hold num_seqs * max_blocks_per_seq entries");
  for (int i = 0; i < s; ++i) {
    const int32_t q_len = q_start[static_cast<size_t>(i) + 1] - q_start[static_cast<size_t>(i)];
    const int32_t kv = kv_len[static_cast<size_t>(i)];
    if (q_len <= 0) return InvalidArgument("sequence " + std::to_string(i) + " has no tokens");
    if (kv < q_len) return InvalidArgument("sequence " + std::to_string(i) + ": kv_len < number of new tokens");
    if ((kv + block_size - 1) / block_size > max_blocks_per_seq)
      return InvalidArgument("sequence " + std::to_string(i) + ": kv_len exceeds its block table");
    for (int32_t j = 0; j < q_len; ++j) {
      const size_t row = static_cast<size_t>(q_start[static_cast<size_t>(i)] + j);
      if (positions[row] != kv - q_len + j)
        return InvalidArgument("sequence " + std::to_string(i) + ": positions must be the last q_len of the context");
      const int64_t slot = slots[row];
      const int32_t blk = block_table[static_cast<size_t>(i) * static_cast<size_t>(max_blocks_per_seq) +
                                      static_cast<size_t>(positions[row] / block_size)];
      if (blk < 0 || blk >= num_blocks) return InvalidArgument("block id out of range in block_table");
      if (slot != int64_t{blk} * block_size + positions[row] % block_size)
        return InvalidArgument("slot of token " + std::to_string(row) + " disagrees with its block table");
    }
  }
  for (int32_t tok : tokens)
    if (tok < 0 || tok >= vocab_size) return InvalidArgument("token id " + std::to_string(tok) + " out of vocabulary");
  for (int32_t r : logit_rows)
    if (r < 0 || r >= t) return InvalidArgument("logit row out of range");
  if (has_prev_samples()) {
    if (static_cast<int64_t>(prev_sample_row.size()) != t)
      return InvalidArgument("prev_sample_row must be empty or have one entry per token");
    for (int32_t r : prev_sample_row)
      if (r < -1) return InvalidArgument("prev_sample_row entries must be >= -1");
  }
  return OkStatus();
}

}  // namespace tide
