#include "cli/common.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <functional>

#include "backend/device_memory.h"
#include "base/file.h"
#include "model/builtin.h"

namespace tide::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The start-up progress line while weights are read or copied: percent, MB so far and
// MB/s, at most every 0.5 s plus the 100% line, then the total and the time taken.
class LoadProgress {
 public:
  explicit LoadProgress(std::string what) : what_(std::move(what)) {}
  void operator()(int64_t done, int64_t total) {
    const auto now = Clock::now();
    const bool last = done >= total;
    if (!last && now - last_print_ < std::chrono::milliseconds(500)) return;
    if (last && finished_) return;
    last_print_ = now;
    finished_ = last;
    const double s = Seconds(now);
    std::fprintf(stderr, "[tide] %s: %3d%%  %.1f / %.1f MB  %.1f MB/s\n", what_.c_str(),
                 total > 0 ? static_cast<int>(100 * done / total) : 100, Mb(done), Mb(total), s > 0 ? Mb(done) / s : 0.0);
    total_ = total;
  }
  void Finish() const {
    std::fprintf(stderr, "[tide] %s: %.1f MB in %.2f s\n", what_.c_str(), Mb(total_), Seconds(Clock::now()));
  }

 private:
  static double Mb(int64_t b) { return static_cast<double>(b) / 1e6; }
  double Seconds(Clock::time_point now) const { return std::chrono::duration<double>(now - start_).count(); }
  std::string what_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_print_{};
  bool finished_ = false;
  int64_t total_ = 0;
};

}  // namespace

Result<int64_t> PlaceWeights(Model& model, const ExecContext& ctx, double utilization) {
  if (ctx.device == DeviceKind::kCpu) {
    LoadProgress progress("reading weights");
    model.weights().Prefetch(std::ref(progress));
    progress.Finish();
    return int64_t{0};
  }
  std::string why;
  if (!CudaAvailable(&why)) return Unimplemented("--device cuda: " + why);
  LoadProgress progress("weights to " + CudaDeviceName());
  RETURN_IF_ERROR(model.PlaceOn(ctx, std::ref(progress)));
  progress.Finish();
  if (utilization <= 0) return int64_t{0};
  int64_t free_b = 0, total_b = 0;
  RETURN_IF_ERROR(CudaMemoryInfo(&free_b, &total_b));
  const int64_t budget = static_cast<int64_t>(utilization * static_cast<double>(total_b)) - (total_b - free_b) -
                         (int64_t{1} << 30);
  if (budget <= 0)
    return InvalidArgument("--gpu-memory-utilization " + std::to_string(utilization) + " leaves no room for a KV cache (" +
                           std::to_string((total_b - free_b) >> 20) + " MiB of " + std::to_string(total_b >> 20) +
                           " MiB already in use)");
  return budget;
}


Result<std::string> ResolveModelPath(const std::string& model) {
  if (model.empty()) return EnsureBuiltinModel();
  return model;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& path, const Model& model) {
  if (IsDirectory(path)) return Tokenizer::FromHfFolder(path);
  if (model.weights().gguf() == nullptr) return InvalidArgument(path + ": no tokenizer found");
  return Tokenizer::FromGguf(*model.weights().gguf());
}

void AddEngineFlags(CLI::App* sub, EngineFlags* f, const std::string& kv_default, unsigned which) {
  if (which & kKvCacheMemoryFlag)
    sub->add_option("--kv-cache-memory", f->kv_cache_memory, "KV cache budget (e.g. 512M, 4G); default: " + kv_default);
  if (which & kBlockSizeFlag)
    sub->add_option("--block-size", f->block_size, "Tokens per KV block")->capture_default_str()->check(CLI::Range(1, 1024));
  if (which & kMaxNumSeqsFlag)
    sub->add_option("--max-num-seqs", f->max_num_seqs, "Sequences running at once")->capture_default_str()->check(CLI::PositiveNumber);
  if (which & kMaxNumBatchedTokensFlag)
    sub->add_option("--max-num-batched-tokens", f->max_num_batched_tokens, "Tokens per engine step")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
  if (which & kMaxModelLenFlag)
    sub->add_option("--max-model-len", f->max_model_len, "Context length (prompt + output); 0 = the default")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
  if (which & kPrefixCachingFlags)
    sub->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", f->enable_prefix_caching,
                  "Reuse the KV blocks of cached prompt prefixes (default on)");
  if (which & kAsyncSchedulingFlags)
    sub->add_flag("--async-scheduling,!--no-async-scheduling", f->async_scheduling,
                  "Schedule and launch step n+1 while step n runs on the GPU (same outputs; default on)");
}

Status ApplyEngineFlags(const EngineFlags& f, EngineOptions* eo) {
  if (!f.kv_cache_memory.empty()) {
    Result<int64_t> bytes = ParseByteSize(f.kv_cache_memory);
    if (!bytes.ok()) return bytes.status().WithContext("--kv-cache-memory");
    eo->kv_cache_bytes = *bytes;
    eo->num_kv_blocks = 0;
  }
  eo->block_size = f.block_size;
  eo->max_num_seqs = f.max_num_seqs;
  eo->max_num_batched_tokens = f.max_num_batched_tokens;
  if (f.max_model_len > 0) eo->max_model_len = f.max_model_len;
  eo->enable_prefix_caching = f.enable_prefix_caching;
  eo->async_scheduling = f.async_scheduling;
  return OkStatus();
}

std::string FormatBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

}  // namespace tide::cli
