#include "parallel.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace elbits::cpu {
namespace {

class Pool {
 public:
  // Runs a job if the pool is free; returns false when another caller holds it
  // (a second Python thread), in which case that caller runs its job inline.
  bool try_run(int64_t n_tasks, int n_threads, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    ensure_workers(n_threads - 1);
    const int helpers = std::min<int64_t>(n_threads - 1, n_tasks - 1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_.store(0);
      active_helpers_ = helpers;
      pending_ = helpers;
      ++generation_;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    fn_ = nullptr;
    return true;
  }

 private:
  void drain() {
    for (int64_t t = next_.fetch_add(1); t < n_tasks_; t = next_.fetch_add(1)) (*fn_)(t);
  }

  void ensure_workers(int wanted) {
    if (owner_pid_ != getpid()) {
      // Forked child: the parent's threads do not exist here. Their handles are
      // dropped without join (joining would wait forever).
      workers_.clear();
      owner_pid_ = getpid();
    }
    while (static_cast<int>(workers_.size()) < wanted) {
      const int index = static_cast<int>(workers_.size());
      // The worker starts from the current generation, read here under busy_:
      // reading it in the new thread could miss the job about to be posted.
      const uint64_t start_generation = generation_;
      workers_.push_back(new std::thread([this, index, start_generation] { worker_loop(index, start_generation); }));
      workers_.back()->detach();
    }
  }

  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= active_helpers_) continue;
      }
      drain();
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex busy_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::vector<std::thread*> workers_;
  pid_t owner_pid_ = getpid();
  uint64_t generation_ = 0;
  int active_helpers_ = 0;
  int pending_ = 0;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  const std::function<void(int64_t)>* fn_ = nullptr;
};

Pool& pool() {
  // Never destroyed: detached workers may still wait on it at interpreter exit.
  static Pool* p = new Pool();
  return *p;
}

// libgomp's stable entry point for `#pragma omp parallel num_threads(n)`.
using GompParallelFn = void (*)(void (*)(void*), void*, unsigned, unsigned);
std::atomic<GompParallelFn> gomp_parallel{nullptr};
std::string& backend_name() {
  static std::string* name = new std::string("pool");
  return *name;
}

struct OmpJob {
  const std::function<void(int64_t)>* fn;
  int64_t n_tasks;
  std::atomic<int64_t> next{0};
};

void omp_body(void* data) {
  auto* job = static_cast<OmpJob*>(data);
  for (int64_t t = job->next.fetch_add(1); t < job->n_tasks; t = job->next.fetch_add(1)) (*job->fn)(t);
}

}  // namespace

bool use_openmp_runtime(const char* path) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);  // only the copy torch already loaded
  if (!handle) return false;
  auto fn = reinterpret_cast<GompParallelFn>(dlsym(handle, "GOMP_parallel"));
  if (!fn) return false;
  backend_name() = std::string("openmp:") + path;
  gomp_parallel.store(fn);
  return true;
}

const char* parallel_backend() { return backend_name().c_str(); }

void parallel_for(int64_t n_tasks, int n_threads, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads <= 1 || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  const int threads = static_cast<int>(std::min<int64_t>(n_threads, n_tasks));
  if (GompParallelFn omp = gomp_parallel.load()) {
    OmpJob job{&fn, n_tasks};
    omp(omp_body, &job, static_cast<unsigned>(threads), 0);
    return;
  }
  if (!pool().try_run(n_tasks, threads, fn)) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
  }
}

}  // namespace elbits::cpu
