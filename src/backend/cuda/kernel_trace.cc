#include "backend/cuda/kernel_trace.h"

#include <cuda_runtime.h>
#include <cupti.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace tide::cuda {
namespace {

// The entry points tide uses, resolved from the library dlopen found.
struct Cupti {
  std::string path;
  uint32_t version = 0;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) num_dropped = nullptr;
  decltype(&cuptiGetTimestamp) timestamp = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
  decltype(&cuptiGetVersion) get_version = nullptr;
};

struct Loaded {
  Cupti cupti;
  Status status;
};

std::vector<std::string> CandidatePaths() {
  std::vector<std::string> paths = {"libcupti.so", "libcupti.so.13"};
  // Beside the CUDA runtime tide runs with (toolkits keep libcupti in lib64/ since
  // CUDA 12.x, in extras/CUPTI/lib64/ before).
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cudaGetDeviceCount), &info) != 0 && info.dli_fname != nullptr) {
    std::string dir = info.dli_fname;
    dir = dir.find('/') == std::string::npos ? "." : dir.substr(0, dir.rfind('/'));
    for (const char* rel : {"/libcupti.so.13", "/libcupti.so", "/../extras/CUPTI/lib64/libcupti.so"}) paths.push_back(dir + rel);
  }
  std::vector<std::string> roots = {"/usr/local/cuda"};
  if (const char* home = std::getenv("CUDA_HOME"); home != nullptr && *home != '\0') roots.insert(roots.begin(), home);
  for (const std::string& root : roots)
    for (const char* rel : {"/lib64/libcupti.so", "/lib64/libcupti.so.13", "/extras/CUPTI/lib64/libcupti.so"})
      paths.push_back(root + rel);
  return paths;
}

template <typename F>
bool Resolve(void* handle, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(handle, name));
  if (*out == nullptr) *missing += std::string(missing->empty() ? "" : ", ") + name;
  return *out != nullptr;
}

Loaded LoadCupti() {
  Loaded l;
  std::string tried, last_error;
  void* handle = nullptr;
  for (const std::string& p : CandidatePaths()) {
    handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) break;
    tried += (tried.empty() ? "" : ", ") + p;
    if (const char* e = dlerror()) last_error = e;
  }
  if (handle == nullptr) {
    l.status = NotFound("no CUPTI library loads (tried " + tried + "; last error: " + last_error +
                        "); put libcupti.so.13 on LD_LIBRARY_PATH");
    return l;
  }
  Cupti& c = l.cupti;
  std::string missing;
  Resolve(handle, "cuptiActivityRegisterCallbacks", &c.register_callbacks, &missing);
  Resolve(handle, "cuptiActivityEnable", &c.enable, &missing);
  Resolve(handle, "cuptiActivityDisable", &c.disable, &missing);
  Resolve(handle, "cuptiActivityFlushAll", &c.flush_all, &missing);
  Resolve(handle, "cuptiActivityGetNextRecord", &c.next_record, &missing);
  Resolve(handle, "cuptiActivityGetNumDroppedRecords", &c.num_dropped, &missing);
  Resolve(handle, "cuptiGetTimestamp", &c.timestamp, &missing);
  Resolve(handle, "cuptiGetResultString", &c.result_string, &missing);
  Resolve(handle, "cuptiGetVersion", &c.get_version, &missing);
  Dl_info info{};
  c.path = c.timestamp != nullptr && dladdr(reinterpret_cast<void*>(c.timestamp), &info) != 0 && info.dli_fname
               ? info.dli_fname
               : "libcupti";
  if (!missing.empty()) {
    // The library stays loaded: CUPTI does not support being unloaded.
    l.status = FailedPrecondition(c.path + " lacks " + missing);
    return l;
  }
  if (c.get_version(&c.version) != CUPTI_SUCCESS) c.version = 0;
  return l;
}

const Loaded& Library() {
  static const Loaded loaded = LoadCupti();
  return loaded;
}

const Cupti& Api() { return Library().cupti; }

std::string ErrorString(CUptiResult r) {
  const char* s = nullptr;
  if (Api().result_string == nullptr || Api().result_string(r, &s) != CUPTI_SUCCESS || s == nullptr)
    return "CUPTI error " + std::to_string(static_cast<int>(r));
  return s;
}

// What CUPTI's threads hand over, for the one tracer that is on.
std::mutex g_mu;
std::vector<GpuActivity> g_records;  // guarded by g_mu
uint64_t g_dropped = 0;              // guarded by g_mu
uint64_t g_untimed = 0;              // guarded by g_mu
std::atomic<bool> g_on{false};

constexpr size_t kBufferBytes = size_t{4} << 20;
constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                         CUPTI_ACTIVITY_KIND_MEMSET};

void CUPTIAPI BufferRequested(uint8_t** buffer, size_t* size, size_t* max_num_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(ACTIVITY_RECORD_ALIGNMENT, kBufferBytes));
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_num_records = 0;  // as many as fit
}

void CUPTIAPI BufferCompleted(CUcontext context, uint32_t stream_id, uint8_t* buffer, size_t /*size*/,
                              size_t valid_size) {
  std::vector<GpuActivity> got;
  uint64_t untimed = 0;
  CUpti_Activity* rec = nullptr;
  while (valid_size > 0 && Api().next_record(buffer, valid_size, &rec) == CUPTI_SUCCESS) {
    GpuActivity a;
    // start/end sit at the same offsets in every version of these records; read them
    // through the header's current ones.
    switch (rec->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
        a = {GpuActivity::Kind::kKernel, k->start, k->end};
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
        a = {GpuActivity::Kind::kMemcpy, m->start, m->end};
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
        a = {GpuActivity::Kind::kMemset, m->start, m->end};
        break;
      }
      default:
        continue;
    }
    if (a.start_ns == 0 || a.end_ns < a.start_ns) {
      ++untimed;
      continue;
    }
    got.push_back(a);
  }
  size_t dropped = 0;
  if (Api().num_dropped(context, stream_id, &dropped) != CUPTI_SUCCESS) dropped = 0;
  std::free(buffer);
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_on.load()) return;  // a flush after Stop: nobody wants these
  g_records.insert(g_records.end(), got.begin(), got.end());
  g_dropped += dropped;
  g_untimed += untimed;
}

}  // namespace

Result<std::unique_ptr<KernelTracer>> KernelTracer::Create() {
  const Loaded& l = Library();
  RETURN_IF_ERROR(l.status);
  std::unique_ptr<KernelTracer> t(new KernelTracer());
  t->library_ = l.cupti.path + " (CUPTI api version " + std::to_string(l.cupti.version) + ")";
  return t;
}

KernelTracer::~KernelTracer() {
  if (started_) (void)Stop();
}

Status KernelTracer::Start() {
  if (started_) return OkStatus();
  if (g_on.exchange(true)) return FailedPrecondition("another kernel tracer is on (CUPTI is process-wide)");
  // Registered once for the process: CUPTI keeps one pair of buffer callbacks.
  static const CUptiResult registered = Api().register_callbacks(BufferRequested, BufferCompleted);
  if (registered != CUPTI_SUCCESS) {
    g_on = false;
    return Internal("cuptiActivityRegisterCallbacks: " + ErrorString(registered));
  }
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_records.clear();
    g_dropped = g_untimed = 0;
  }
  for (size_t i = 0; i < std::size(kKinds); ++i) {
    const CUptiResult r = Api().enable(kKinds[i]);
    if (r != CUPTI_SUCCESS) {
      for (size_t j = 0; j < i; ++j) (void)Api().disable(kKinds[j]);
      g_on = false;
      return Internal("cuptiActivityEnable(" + std::to_string(static_cast<int>(kKinds[i])) + "): " + ErrorString(r));
    }
  }
  started_ = true;
  return OkStatus();
}

Result<std::vector<GpuActivity>> KernelTracer::Collect() {
  if (!started_) return FailedPrecondition("KernelTracer::Collect before Start");
  if (const cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess)
    return Internal(std::string("cudaDeviceSynchronize: ") + cudaGetErrorString(e));
  if (const CUptiResult r = Api().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED); r != CUPTI_SUCCESS)
    return Internal("cuptiActivityFlushAll: " + ErrorString(r));
  std::vector<GpuActivity> out;
  uint64_t dropped = 0, untimed = 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    out.swap(g_records);
    dropped = std::exchange(g_dropped, 0);
    untimed = std::exchange(g_untimed, 0);
  }
  if (dropped > 0 || untimed > 0)
    return DataLoss("CUPTI dropped " + std::to_string(dropped) + " activity records and gave " +
                    std::to_string(untimed) + " without timestamps");
  return out;
}

Status KernelTracer::Stop() {
  if (!started_) return OkStatus();
  started_ = false;
  Status st;
  for (CUpti_ActivityKind k : kKinds)
    if (const CUptiResult r = Api().disable(k); r != CUPTI_SUCCESS && st.ok())
      st = Internal("cuptiActivityDisable: " + ErrorString(r));
  // Hand back CUPTI's buffers; their records are dropped.
  (void)Api().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_records.clear();
    g_dropped = g_untimed = 0;
  }
  g_on = false;
  return st;
}

uint64_t KernelTracer::NowNs() const {
  uint64_t t = 0;
  (void)Api().timestamp(&t);
  return t;
}

}  // namespace tide::cuda
