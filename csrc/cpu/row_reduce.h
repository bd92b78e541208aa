// The row-reduction driver of every CPU likelihood: rows cut into fixed chunks, the
// chunks run on the thread pool, and each row's chunk partials (float64) added in chunk
// order, whatever thread computed them, so results do not depend on the thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "elbits/dispatch.h"
#include "kernels.h"
#include "parallel.h"

namespace elbits::cpu {

inline void finish_rows(const std::vector<double>& partial, int64_t batch, int64_t chunks, void* recon, bool out_f64) {
  for (int64_t row = 0; row < batch; ++row) {
    double s = 0.0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[row * chunks + c];
    if (out_f64) static_cast<double*>(recon)[row] = s;
    else static_cast<float*>(recon)[row] = static_cast<float>(s);
  }
}

// The per-sample reduction driver of every CPU likelihood: cuts each of `batch`
// rows of `n` elements into fixed chunks of `chunk`, runs
// fn(row, begin, len, &partial_sum, flags_of_this_task) on the thread pool, then
// writes recon[row] from the partials in chunk order. Returns every task's
// kFlags flags (read them with any_flag). Results do not depend on n_threads.
template <int kFlags, class Fn>
std::vector<uint32_t> reduce_rows(int64_t batch, int64_t n, int64_t chunk, int n_threads, void* recon, bool out_f64,
                                  Fn&& fn) {
  const int64_t chunks = n <= 0 ? 1 : (n + chunk - 1) / chunk;
  const int64_t n_tasks = batch * chunks;
  std::vector<double> partial(n_tasks);
  std::vector<uint32_t> flags(kFlags * n_tasks);
  parallel_for(n_tasks, n_threads, [&](int64_t task) {
    const int64_t row = task / chunks;
    const int64_t begin = (task % chunks) * chunk;
    fn(row, begin, std::min(chunk, n - begin), &partial[task], &flags[kFlags * task]);
  });
  finish_rows(partial, batch, chunks, recon, out_f64);
  return flags;
}

// OR of flag slot `slot` over every task (tasks store `stride` flags each).
inline bool any_flag(const std::vector<uint32_t>& flags, int stride, int slot) {
  for (size_t i = slot; i < flags.size(); i += stride)
    if (flags[i]) return true;
  return false;
}

// reduce_rows for the per-pixel likelihoods: parameters [B, channels, pixels] and
// integer levels [B, C, pixels], each sample contiguous from its batch stride. For
// the storage types behind the two dtypes, runs
// fn(prm, t, b, p0, n, &partial_sum, flags) on tiles of `tile` pixels, where prm and
// t are typed pointers to pixel p0 of sample b; the tile reports two flags
// (non-finite parameters, levels outside 0..255).
template <class Fn>
PixelFlags reduce_pixel_rows(const void* params, DType params_dtype, int64_t params_bs, const void* levels,
                             DType levels_dtype, int64_t levels_bs, int64_t batch, int64_t pixels, int64_t tile,
                             int n_threads, void* recon, bool out_f64, Fn&& fn) {
  PixelFlags out;
  if (batch == 0 || pixels == 0) return out;
  std::vector<uint32_t> flags;
  dispatch_float(params_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_level(levels_dtype, [&](auto l_tag) {
      using L = decltype(l_tag);
      flags = reduce_rows<2>(batch, pixels, tile, n_threads, recon, out_f64,
                             [&](int64_t b, int64_t p0, int64_t n, double* sum, uint32_t* f) {
        fn(static_cast<const S*>(params) + b * params_bs + p0, static_cast<const L*>(levels) + b * levels_bs + p0, b,
           p0, n, sum, f);
      });
    });
  });
  out.nonfinite_params = any_flag(flags, 2, 0);
  out.target_level_out_of_range = any_flag(flags, 2, 1);
  return out;
}

}  // namespace elbits::cpu
