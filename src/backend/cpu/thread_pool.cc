#include "backend/cpu/thread_pool.h"

#include <algorithm>

namespace tide {
namespace {
int g_global_threads = 0;

inline void CpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  claimed_ = std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(num_threads_));
  for (int i = 0; i < num_threads_; ++i) claimed_[static_cast<size_t>(i)].store(0);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin first: the next op of a forward pass usually arrives within microseconds.
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) {
      CpuRelax();
      ++spins;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    if (TryClaim(index, seen)) {
      (*job_)(index, num_threads_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

bool ThreadPool::TryClaim(int index, uint64_t generation) {
  uint64_t expected = generation - 1;
  return claimed_[static_cast<size_t>(index)].compare_exchange_strong(
      expected, generation, std::memory_order_acq_rel, std::memory_order_relaxed);
}

void ThreadPool::Run(const std::function<void(int, int)>& fn) {
  if (num_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(num_threads_ - 1, std::memory_order_release);
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  cv_.notify_all();
  fn(0, num_threads_);
  // A worker that has not started yet would make everyone wait for the OS to schedule
  // it (a whole time slice on a loaded machine); run its index here instead.
  for (int i = 1; i < num_threads_; ++i) {
    if (TryClaim(i, generation)) {
      fn(i, num_threads_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  while (pending_.load(std::memory_order_acquire) != 0) CpuRelax();
  job_ = nullptr;
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads_, max_chunks));
  if (nt <= 1) {
    fn(0, n);
    return;
  }
  Run([&](int t, int) {
    if (t >= nt) return;
    const int64_t begin = n * t / nt;
    const int64_t end = n * (t + 1) / nt;
    if (begin < end) fn(begin, end);
  });
}

ThreadPool& ThreadPool::Global() {
  static ThreadPool pool(g_global_threads);
  return pool;
}

void ThreadPool::SetGlobalThreads(int num_threads) { g_global_threads = num_threads; }

}  // namespace tide
