// logits_process: the request-level adjustments of engine/logits_processor.cc's
// ProcessLogits, for many rows at once and in place, so that penalised rows can be
// sampled on the device. Per row, in this order (the same float operations in the same
// order as ProcessLogits, so results are bit-identical):
//   1. logit_bias: logit[id] += bias, pair by pair in list order
//   2. masked ids: logit[id] = -inf (the engine passes EOS / stop ids while min_tokens
//      is not reached)
//   3. repetition_penalty r over ids in the row's prompt or output, once per id:
//      logit > 0 ? logit / r : logit * r
//   4. presence p and frequency f over the output ids with their counts c:
//      logit -= p + f * c
// Lists are CSR: row r's entries are ids[offsets[r] .. offsets[r + 1]). An offsets
// pointer may be null (every row's list empty); penalty arrays may be null (off). Ids
// outside [0, vocab) are skipped (the engine validates bias and stop ids at submission).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/exec.h"
#include "base/status.h"

namespace tide {

// CUDA limits: the repetition bitmap lives in shared memory (vocab bits), and output
// counts are 16-bit (a row's output history shorter than 65536 tokens).
inline constexpr int64_t kLogitsProcessCudaMaxVocab = int64_t{1} << 18;

struct LogitsProcessParams {
  float* logits = nullptr;  // [rows, vocab], adjusted in place
  int64_t rows = 0, vocab = 0;
  const int32_t* prompt_offsets = nullptr;  // [rows + 1] (null: no prompt ids)
  const int32_t* prompt_ids = nullptr;
  const int32_t* output_offsets = nullptr;  // [rows + 1] (null: no output ids)
  const int32_t* output_ids = nullptr;
  const int32_t* bias_offsets = nullptr;    // [rows + 1] (null: no biases)
  const int32_t* bias_ids = nullptr;
  const float* bias_values = nullptr;       // parallel to bias_ids
  const int32_t* masked_offsets = nullptr;  // [rows + 1] (null: nothing masked)
  const int32_t* masked_ids = nullptr;
  const float* repetition_penalty = nullptr;  // [rows] (null: off; 1 = off)
  const float* presence_penalty = nullptr;    // [rows] (null: off; 0 = off)
  const float* frequency_penalty = nullptr;   // [rows] (null: off; 0 = off)
  // Sizes and the logits pointer only (offsets and ids are device memory on CUDA; their
  // contents — non-decreasing offsets starting at 0, ids wherever a list is non-empty —
  // are the caller's to guarantee).
  [[nodiscard]] Status check() const;
};

void LogitsProcessRef(const LogitsProcessParams& p);  // ProcessLogits' steps, row by row
void LogitsProcessCpu(const LogitsProcessParams& p, ThreadPool* pool);
// CUDA (built with TIDE_CUDA): every pointer in p is device memory; vocab <=
// kLogitsProcessCudaMaxVocab (else a launch error is recorded and nothing changes).
// `workspace` holds LogitsProcessCudaWorkspaceBytes(rows, vocab) device bytes, all zero
// before its first use; every launch leaves it zero again. Runs on `stream`.
void LogitsProcessCuda(const LogitsProcessParams& p, void* workspace, size_t workspace_bytes, void* stream);
size_t LogitsProcessCudaWorkspaceBytes(int64_t rows, int64_t vocab);
// Dispatcher. On CUDA it uses a zeroed grow-only workspace of its own (not thread-safe;
// a growth waits for the device, so not inside a graph capture).
void LogitsProcess(const ExecContext& ctx, const LogitsProcessParams& p);

}  // namespace tide
