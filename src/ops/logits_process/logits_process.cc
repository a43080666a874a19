#include "ops/logits_process/logits_process.h"

#include <string>

#include "base/check.h"

namespace tide {

Status LogitsProcessParams::check() const {
  auto bad = [](const std::string& what) { return InvalidArgument("logits_process: " + what); };
  if (rows < 0) return bad("rows must be >= 0, got " + std::to_string(rows));
  if (vocab <= 0 || vocab > (int64_t{1} << 31) - 1) return bad("vocab must be in [1, 2^31), got " + std::to_string(vocab));
  if (rows == 0) return OkStatus();
  if (logits == nullptr) return bad("logits is null");
  // An ids pointer may be null when every row's list is empty (an empty vector's data()):
  // only the offsets, in device memory on CUDA, could tell, so that is the caller's.
  return OkStatus();
}

#if TIDE_HAVE_CUDA
void LogitsProcessCudaOwnWorkspace(const LogitsProcessParams& p, void* stream);  // logits_process_cuda.cu
#endif

void LogitsProcess(const ExecContext& ctx, const LogitsProcessParams& p) {
  switch (ctx.device) {
    case DeviceKind::kCpu:
      LogitsProcessCpu(p, ctx.pool);
      return;
    case DeviceKind::kCuda:
#if TIDE_HAVE_CUDA
      LogitsProcessCudaOwnWorkspace(p, ctx.stream);
      return;
#else
      break;  // not built: falls to the check below
#endif
  }
  TIDE_CHECK(false && "logits_process: no kernel for this device");
}

}  // namespace tide
