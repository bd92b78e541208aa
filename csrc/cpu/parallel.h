// A small persistent thread pool for the CPU kernels.
// Why not OpenMP: torch ships its own libgomp; a second OpenMP runtime in the
// process keeps its own spinning team and the two oversubscribe the cores.
// Results never depend on the thread count: work is split into fixed tasks,
// each writing its own slot, and reductions over slots run in a fixed order.
#pragma once
#include <cstdint>
#include <functional>

namespace elbits::cpu {

// Calls fn(task) for task in [0, n_tasks) on up to n_threads threads (the
// caller is one of them). Blocks until all tasks are done.
void parallel_for(int64_t n_tasks, int n_threads, const std::function<void(int64_t)>& fn);

}  // namespace elbits::cpu
