// Bernoulli reconstruction on CUDA, gradient stored by the forward pass: the CPU's
// csrc/cpu/bernoulli.cpp with the per-element math of elbits/bernoulli.h; only the
// loops and the reductions are CUDA's own.
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/bernoulli.h"
#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

// Fixed chunking, as on the CPU: each block reduces one chunk of one row in a
// fixed order (per-thread strided sums, then common.cuh's shuffle tree), and a
// finishing kernel adds a row's chunk sums in order, so results repeat run to run.
constexpr int64_t kChunk = 16384;

// V elements of T in one aligned load/store (16 bytes for float x 4): a warp then moves
// 512 contiguous bytes of logits per instruction instead of 128, and the uint8 targets
// 4 bytes per thread instead of 1, which is what lets the loop reach DRAM bandwidth.
template <class T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

// V = 1: any strides and alignment. V > 1: the host checked that n, both row strides and
// all three base pointers are multiples of V elements, so every row and chunk (kChunk is
// a multiple of V) starts on a pack boundary.
template <class LT, class TT, int V>
__global__ void bernoulli_chunks(const LT* __restrict__ x, int64_t x_stride, const TT* __restrict__ t, int64_t t_stride,
                                 int64_t n, int64_t chunks, LT* __restrict__ g, compute_t<LT> gs,
                                 double* __restrict__ partial, int* __restrict__ flags, bool check_finite) {
  using acc_t = compute_t<LT>;
  // A 1-D grid of batch x chunks blocks: no 65,535 limit on the batch.
  const int64_t row = blockIdx.x / chunks;
  const int64_t begin = (blockIdx.x % chunks) * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  const auto* xr = reinterpret_cast<const Pack<LT, V>*>(x + row * x_stride);
  const auto* tr = reinterpret_cast<const Pack<TT, V>*>(t + row * t_stride);
  auto* gr = g ? reinterpret_cast<Pack<LT, V>*>(g + row * n) : nullptr;
  acc_t acc = 0;
  int bad_x = 0, bad_t = 0;
  for (int64_t i = begin / V + threadIdx.x; i < end / V; i += kThreads) {
    const Pack<LT, V> xp = xr[i];
    const Pack<TT, V> tp = tr[i];
    Pack<LT, V> gp;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const acc_t xv = to_float(xp.v[k]);
      const acc_t tv = static_cast<acc_t>(to_float(tp.v[k]));
      acc_t nll, grad;
      bernoulli_nll(xv, tv, nll, grad);
      acc += nll;
      st(&gp.v[k], grad * gs);
      bad_x |= not_finite(xv);
      bad_t |= !(tv >= acc_t(0) && tv <= acc_t(1));
    }
    if (gr) gr[i] = gp;
  }
  // check_finite=False records nothing, as the CPU then raises nothing.
  finish_block(static_cast<double>(acc), check_finite && bad_x, kNonfiniteLogits, check_finite && bad_t,
               kTargetOutOfRange, partial, flags);
}

template <int V>
bool packs_fit(const void* p, size_t elem) {
  return reinterpret_cast<uintptr_t>(p) % (elem * V) == 0;
}

template <class LT, class TT>
void launch_bernoulli(const void* x, int64_t xs, const void* t, int64_t ts, int64_t batch, int64_t n, void* g,
                      double gs, double* partial, int* flags, bool check_finite, int64_t chunks, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  using acc_t = compute_t<LT>;
  constexpr int V = sizeof(LT) == 8 ? 2 : 4;  // 16-byte logit packs (8 for half/bf16)
  static_assert(kChunk % V == 0, "chunks must start on a pack boundary");
  const bool packed = n % V == 0 && xs % V == 0 && ts % V == 0 && packs_fit<V>(x, sizeof(LT)) &&
                      packs_fit<V>(t, sizeof(TT)) && (g == nullptr || packs_fit<V>(g, sizeof(LT)));
  if (packed)
    bernoulli_chunks<LT, TT, V><<<grid, kThreads, 0, stream>>>(static_cast<const LT*>(x), xs, static_cast<const TT*>(t),
                                                               ts, n, chunks, static_cast<LT*>(g),
                                                               static_cast<acc_t>(gs), partial, flags, check_finite);
  else
    bernoulli_chunks<LT, TT, 1><<<grid, kThreads, 0, stream>>>(static_cast<const LT*>(x), xs, static_cast<const TT*>(t),
                                                               ts, n, chunks, static_cast<LT*>(g),
                                                               static_cast<acc_t>(gs), partial, flags, check_finite);
}

}  // namespace

int64_t bernoulli_chunks_per_row(int64_t n) { return n <= 0 ? 1 : (n + kChunk - 1) / kChunk; }

const char* bernoulli_nll_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride, const void* target,
                               DType target_dtype, int64_t target_row_stride, int64_t batch, int64_t n, void* grad,
                               double grad_scale, void* recon, bool out_f64, double* partial, int* flags,
                               bool check_finite, uintptr_t stream_handle) {
  if (batch == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = bernoulli_chunks_per_row(n);
  dispatch_float(logits_dtype, [&](auto l_tag) {
    dispatch_target(target_dtype, [&](auto t_tag) {
      launch_bernoulli<decltype(l_tag), decltype(t_tag)>(logits, logits_row_stride, target, target_row_stride, batch, n,
                                                         grad, grad_scale, partial, flags, check_finite, chunks,
                                                         stream);
    });
  });
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  return launch_status();
}

}  // namespace elbits::cuda
