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

  // Runs fn(thread_index, num_threads) on every thread (caller included) and returns
  // when all have finished. The function splits the work itself.
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

  int num_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace tide
