// Continuous Bernoulli on CUDA, gradient stored by the forward pass: the CPU's
// csrc/cpu/continuous_bernoulli.cpp with the math of elbits/continuous_bernoulli.h
// (Taylor series of log C near eta = 0). [batch, n] rows as the Bernoulli kernel:
// each block reduces a fixed chunk of one row in a fixed order; per-thread sums
// in float64 like the CPU's.
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/continuous_bernoulli.h"
#include "elbits/dispatch.h"
#include "elbits/logmath.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

constexpr int64_t kChunk = 16 * kThreads;  // elements per block

template <class TT>
__device__ __forceinline__ double target_value(TT v) {
  return static_cast<double>(to_float(v));
}
__device__ __forceinline__ double target_value(uint8_t v) { return v / 255.0; }

template <class S, class TT>
__global__ void __launch_bounds__(kThreads)
    cb_kernel(const S* __restrict__ x, int64_t x_rs, const TT* __restrict__ t, int64_t t_rs, int64_t n,
              S* __restrict__ g, compute_t<S> gs, double* __restrict__ partial, int* __restrict__ flags, int64_t chunks,
              bool check_finite) {
  using T = compute_t<S>;
  const int64_t row = blockIdx.x / chunks;
  const int64_t begin = (blockIdx.x % chunks) * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  double acc = 0.0;
  bool bad = false, range = false;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const T eta = to_float(x[row * x_rs + i]);
    const double tv = target_value(t[row * t_rs + i]);
    bad |= not_finite(eta);
    range |= !(tv >= 0.0 && tv <= 1.0);
    T nll, grad;
    continuous_bernoulli_nll(eta, static_cast<T>(tv), nll, grad);
    acc += nll;
    if (g) st(g + row * n + i, grad * gs);
  }
  finish_block(acc, check_finite && bad, kNonfiniteLogits, range, kTargetOutOfRange, partial, flags);
}

}  // namespace

int64_t continuous_bernoulli_chunks_per_row(int64_t n) { return n <= 0 ? 1 : (n + kChunk - 1) / kChunk; }

const char* continuous_bernoulli_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride,
                                      const void* target, DType target_dtype, int64_t target_row_stride, int64_t batch,
                                      int64_t n, void* grad, double grad_scale, void* recon, bool out_f64,
                                      double* partial, int* flags, bool check_finite, uintptr_t stream_handle) {
  if (batch == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = continuous_bernoulli_chunks_per_row(n);
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  dispatch_float(logits_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_target(target_dtype, [&](auto t_tag) {
      using TT = decltype(t_tag);
      cb_kernel<S, TT><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(logits), logits_row_stride, static_cast<const TT*>(target), target_row_stride, n,
          static_cast<S*>(grad), static_cast<compute_t<S>>(grad_scale), partial, flags, chunks, check_finite);
    });
  });
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  return launch_status();
}

}  // namespace elbits::cuda
