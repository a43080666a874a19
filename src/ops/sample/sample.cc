#include "ops/sample/sample.h"

#include <string>

#include "base/check.h"

namespace tide {

Status SampleGreedyParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("sample_greedy: " + what); };
  if (rows < 0) return bad("rows must be >= 0, got " + std::to_string(rows));
  if (vocab <= 0 || vocab > (int64_t{1} << 31) - 1) return bad("vocab must be in [1, 2^31), got " + std::to_string(vocab));
  if (top_k < 0 || top_k > kSampleMaxTopK)
    return bad("top_k must be in [0, " + std::to_string(kSampleMaxTopK) + "], got " + std::to_string(top_k));
  if (rows == 0) return OkStatus();
  if (logits == nullptr || token == nullptr || logprob == nullptr) return bad("logits, token or logprob is null");
  if (top_k > 0 && (top_ids == nullptr || top_logprobs == nullptr)) return bad("top_ids or top_logprobs is null");
  return OkStatus();
}

void SampleGreedy(const ExecContext& ctx, const SampleGreedyParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      SampleGreedyCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      SampleGreedyCuda(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "sample_greedy: no kernel for this device");
}

}  // namespace tide
