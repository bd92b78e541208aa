// Discretized Gaussian on CUDA, gradient stored by the forward pass: the CPU's
// csrc/cpu/discretized_gaussian.cpp with the float64 math of
// elbits/discretized_gaussian.h (erfc; the asymptotic series in the far tail).
//
// A sample's C x P subpixels are one flat row (means at [0, C P), log-scales at
// [C P, 2 C P)); each block reduces a fixed chunk of kChunk subpixels of one row,
// threads striding by kThreads (coalesced), in a fixed order.
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/discretized_gaussian.h"
#include "elbits/logmath.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

constexpr int64_t kChunk = 8 * kThreads;  // subpixels per block

template <class S, class L>
__global__ void __launch_bounds__(kThreads)
    dg_kernel(const S* __restrict__ prm, int64_t p_bs, const L* __restrict__ tgt, int64_t t_bs, int64_t n,
              S* __restrict__ grad, double gs, double* __restrict__ partial, int* __restrict__ flags, int64_t chunks,
              bool check_finite) {
  const int64_t b = blockIdx.x / chunks;
  const int64_t begin = (blockIdx.x % chunks) * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  const S* mr = prm + b * p_bs;  // means
  const S* lr = mr + n;          // log-scales
  const L* t = tgt + b * t_bs;
  S* gm = grad ? grad + b * 2 * n : nullptr;
  double acc = 0.0;
  bool bad = false, range = false;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const double m = to_float(mr[i]), ls = to_float(lr[i]);
    bad |= not_finite(m) | not_finite(ls);
    const int64_t lv = level_of(t[i], range);
    double lp, dm, dls;
    discretized_gaussian(static_cast<int>(lv), m, ls, lp, dm, dls);
    acc -= lp;
    if (gm) {
      st(gm + i, static_cast<compute_t<S>>(-dm * gs));
      st(gm + n + i, static_cast<compute_t<S>>(-dls * gs));
    }
  }
  finish_block(acc, check_finite && bad, kNonfiniteParams, range, kTargetLevelOutOfRange, partial, flags);
}

}  // namespace

int64_t discretized_gaussian_chunks_per_row(int64_t channels, int64_t pixels) {
  const int64_t n = channels * pixels;
  return n <= 0 ? 1 : (n + kChunk - 1) / kChunk;
}

const char* discretized_gaussian_rows(const void* params, DType params_dtype, int64_t params_bs, const void* target,
                                      DType target_dtype, int64_t target_bs, int64_t batch, int64_t channels,
                                      int64_t pixels, int64_t /*n_mix*/, void* grad, double grad_scale, void* recon,
                                      bool out_f64, double* partial, int* flags, bool check_finite,
                                      uintptr_t stream_handle) {
  if (batch == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = discretized_gaussian_chunks_per_row(channels, pixels);
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  dispatch_float(params_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_level(target_dtype, [&](auto l_tag) {
      using L = decltype(l_tag);
      dg_kernel<S, L><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(params), params_bs, static_cast<const L*>(target), target_bs, channels * pixels,
          static_cast<S*>(grad), grad_scale, partial, flags, chunks, check_finite);
    });
  });
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  return launch_status();
}

}  // namespace elbits::cuda
