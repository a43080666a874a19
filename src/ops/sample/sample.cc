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

Status SampleParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("sample: " + what); };
  if (rows < 0) return bad("rows must be >= 0, got " + std::to_string(rows));
  if (vocab <= 0 || vocab > (int64_t{1} << 31) - 1) return bad("vocab must be in [1, 2^31), got " + std::to_string(vocab));
  if (top_k_logprobs < 0 || top_k_logprobs > kSampleMaxTopK)
    return bad("top_k_logprobs must be in [0, " + std::to_string(kSampleMaxTopK) + "], got " +
               std::to_string(top_k_logprobs));
  if (rows == 0) return OkStatus();
  if (logits == nullptr || raw_logits == nullptr || spec == nullptr || token == nullptr || logprob == nullptr)
    return bad("logits, raw_logits, spec, token or logprob is null");
  if (top_k_logprobs > 0 && (top_ids == nullptr || top_logprobs == nullptr)) return bad("top_ids or top_logprobs is null");
  return OkStatus();
}

#if TIDE_HAVE_CUDA
void SampleCudaOwnWorkspace(const SampleParams& p, void* stream);  // sample_cuda.cu
#else
// The cuda tests link it everywhere and skip before calling it without a GPU build.
void TEST_SampleCudaUniformAt(const uint64_t*, const uint64_t*, double*, int64_t, void*) {
  TIDE_CHECK(false && "TEST_SampleCudaUniformAt: built without CUDA");
}
#endif

void Sample(const ExecContext& ctx, const SampleParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      SampleCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      SampleCudaOwnWorkspace(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "sample: no kernel for this device");
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
