// Parallel loops of the CPU kernels.
// Preferred: the OpenMP runtime torch itself loaded (its libgomp), reached with
// dlopen(RTLD_NOLOAD) + dlsym at run time, so the kernels run on torch's own
// thread team. Linking a second OpenMP runtime, or running a pool of our own,
// was measured to fight torch's team: its threads spin after every torch op and
// take the cores our threads need (fwd+bwd 1024x64x64: 13.9 ms vs 5.5 ms).
// Fallback, when no runtime was handed over: a small persistent pool.
// Results never depend on the thread count: work is split into fixed tasks,
// each writing its own slot, and reductions over slots run in a fixed order.
#pragma once
#include <cstdint>
#include <functional>

namespace elbits::cpu {

// Calls fn(task) for task in [0, n_tasks) on up to n_threads threads (the
// caller is one of them). Blocks until all tasks are done.
void parallel_for(int64_t n_tasks, int n_threads, const std::function<void(int64_t)>& fn);

// Use the OpenMP runtime already loaded from `path` (torch's libgomp or libiomp5,
// which exports the GOMP entry points). Returns false, and keeps the pool, when
// the library is not loaded in this process or lacks GOMP_parallel.
bool use_openmp_runtime(const char* path);

// "openmp:<path>" or "pool".
const char* parallel_backend();

}  // namespace elbits::cpu
