// ThreadPool: the one pool of CPU worker threads, sized to the cores and reused by
// every kernel of every step (creating threads per op would cost more than a decode
// matmul). Workers spin briefly between jobs, then sleep, so back-to-back ops of a
// forward pass dispatch in microseconds while an idle server burns no CPU.
//
// Thread-safety: ParallelFor may be called from one thread at a time (the engine
// thread); it is not reentrant (a task must not call ParallelFor).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tide {

class ThreadPool {
 public:
  // num_threads <= 0 means one per available core. The calling thread counts as one.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int num_threads() const noexcept { return num_threads_; }

  // Runs fn(thread_index, num_threads) once for every thread_index in [0, num_threads)
  // and returns when all have finished. The function splits the work itself. Index 0 runs
  // on the caller; index i on worker i, unless worker i has not picked the job up by the
  // time the caller is done with its own share (descheduled by the OS, or still waking):
  // then the caller runs fn(i, ...) itself rather than wait. So an index runs exactly
  // once, but not necessarily on a distinct OS thread.
  void Run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into contiguous chunks of at least `grain` items, one per thread at
  // most, and calls fn(begin, end) for each; returns when all are done.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // The process-wide pool used by CPU ops (created on first use with SetGlobalThreads'
  // count, default: all cores).
  static ThreadPool& Global();
  // Sets the size of the global pool; must be called before the first Global().
  static void SetGlobalThreads(int num_threads);

 private:
  void WorkerLoop(int index);
  // Claims `index` for `generation`; true for exactly one caller per (index, generation).
  bool TryClaim(int index, uint64_t generation);

  int num_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  // claimed_[i] = the last generation whose index i was claimed (by worker i or by the
  // caller); claiming is a compare-exchange from generation - 1, so exactly one wins.
  std::unique_ptr<std::atomic<uint64_t>[]> claimed_;
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace tide
