#include "ops/attention/attention.h"

#include <cmath>
#include <string>

#include "base/check.h"

namespace tide {

Status AttentionParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("attention: " + what); };
  auto str = [](int64_t v) { return std::to_string(v); };
  if (n_seqs < 0) return bad("n_seqs must be >= 0, got " + str(n_seqs));
  if (n_tokens < 0) return bad("n_tokens must be >= 0, got " + str(n_tokens));
  if (num_blocks < 0) return bad("num_blocks must be >= 0, got " + str(num_blocks));
  if (max_blocks_per_seq < 0) return bad("max_blocks_per_seq must be >= 0, got " + str(max_blocks_per_seq));
  if (n_heads <= 0) return bad("n_heads must be > 0, got " + str(n_heads));
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) {
    return bad("n_kv_heads must be > 0 and divide n_heads = " + str(n_heads) + ", got " + str(n_kv_heads));
  }
  if (head_dim <= 0 || head_dim > kAttentionMaxHeadDim) {
    return bad("head_dim must be in [1, " + str(kAttentionMaxHeadDim) + "], got " + str(head_dim));
  }
  if (block_size <= 0) return bad("block_size must be > 0, got " + str(block_size));
  if (!std::isfinite(scale)) return bad("scale must be finite, got " + std::to_string(scale));
  if (n_seqs == 0) {
    if (n_tokens != 0) return bad("n_tokens = " + str(n_tokens) + " but n_seqs = 0");
    return OkStatus();
  }
  if (q_start == nullptr) return bad("q_start is null");
  if (kv_len == nullptr) return bad("kv_len is null");
  if (q_start[0] != 0) return bad("q_start[0] must be 0, got " + str(q_start[0]));
  if (q_start[n_seqs] != n_tokens) {
    return bad("q_start[n_seqs] = " + str(q_start[n_seqs]) + " must equal n_tokens = " + str(n_tokens));
  }
  const int64_t capacity = static_cast<int64_t>(max_blocks_per_seq) * block_size;
  bool any_kv = false;
  for (int s = 0; s < n_seqs; ++s) {
    const int64_t q_len = static_cast<int64_t>(q_start[s + 1]) - q_start[s];
    if (q_len < 0) {
      return bad("q_start must be non-decreasing: q_start[" + str(s + 1) + "] = " + str(q_start[s + 1]) +
                 " < q_start[" + str(s) + "] = " + str(q_start[s]));
    }
    if (kv_len[s] < q_len || kv_len[s] > capacity) {
      return bad("kv_len[" + str(s) + "] = " + str(kv_len[s]) + " must be in [q_len = " + str(q_len) +
                 ", max_blocks_per_seq * block_size = " + str(capacity) + "]");
    }
    any_kv = any_kv || kv_len[s] > 0;
  }
  if (n_tokens > 0) {
    if (q == nullptr) return bad("q is null");
    if (out == nullptr) return bad("out is null");
  }
  if (!any_kv) return OkStatus();
  if (k_cache == nullptr) return bad("k_cache is null");
  if (v_cache == nullptr) return bad("v_cache is null");
  if (block_table == nullptr) return bad("block_table is null");
  for (int s = 0; s < n_seqs; ++s) {
    const int64_t used = (static_cast<int64_t>(kv_len[s]) + block_size - 1) / block_size;
    const int32_t* row = block_table + static_cast<int64_t>(s) * max_blocks_per_seq;
    for (int64_t b = 0; b < used; ++b) {
      if (row[b] < 0 || row[b] >= num_blocks) {
        return bad("block_table[" + str(s) + "][" + str(b) + "] = " + str(row[b]) + " is outside [0, num_blocks = " +
                   str(num_blocks) + ")");
      }
    }
  }
  return OkStatus();
}

void Attention(const ExecContext& ctx, const AttentionParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      AttentionCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      AttentionCuda(p, ctx.stream, ctx.precision);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "attention: no kernel for this device");
}

}  // namespace tide

#if !TIDE_HAVE_CUDA
namespace tide {
// Without CUDA there is no flash kernel to configure; the cuda tests that call this
// skip before they run, but they still link.
void SetAttentionCudaFlashWarps(int) {}
}  // namespace tide
#endif
