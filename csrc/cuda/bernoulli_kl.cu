// CUDA kernels for the Bernoulli reconstruction, the Gaussian KL and the
// backward's row scaling. The per-element math is the CPU's, from
// csrc/include/elbits; only the loops and the reductions are CUDA's own.
#include <cuda_runtime.h>

#include "elbits/bernoulli.h"
#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "elbits/gaussian_kl.h"
#include "common.cuh"
#include "kernels.h"

namespace elbits::cuda {
namespace {

using namespace colour;

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
__global__ void bernoulli_chunks(const LT* __restrict__ x, int64_t x_stride, const TT* __restrict__ t,
                                 int64_t t_stride, int64_t n, int64_t chunks, LT* __restrict__ g, compute_t<LT> gs,
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

// KL is [batch, z]: tiny next to the images; float64 arithmetic like the CPU's.
template <class M, class L, class OT>
__global__ void kl_kernel(const M* mu, int64_t mu_s0, int64_t mu_s1, const L* logvar, int64_t lv_s0, int64_t lv_s1,
                          int64_t batch, int64_t z, OT* kl, OT* dlogvar, int* flags, bool check_finite) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * z) return;
  const int64_t b = i / z, j = i % z;
  const double m = to_float(mu[b * mu_s0 + j * mu_s1]);
  const double lv = to_float(logvar[b * lv_s0 + j * lv_s1]);
  if (check_finite && not_finite(m)) atomicOr(flags, kNonfiniteMu);
  if (check_finite && not_finite(lv)) atomicOr(flags, kNonfiniteLogvar);
  double dlv;
  kl[i] = static_cast<OT>(gaussian_kl(m, lv, dlv));
  if (dlogvar) dlogvar[i] = static_cast<OT>(dlv);
}

// One block per (row, chunk), as in the forward: the row's upstream scale is one value per
// block, so a block whose row needs nothing (in place, scale == prescale: every row of a
// mean() loss) leaves at once instead of launching a thread per gradient element.
template <class T, class ST>
__global__ void scale_kernel(const T* g, T* out, int64_t n, int64_t chunks, const ST* __restrict__ scale,
                             int64_t scale_stride, double prescale) {
  const int64_t row = blockIdx.x / chunks;
  const int64_t begin = (blockIdx.x % chunks) * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  using acc_t = compute_t<T>;
  const double given = static_cast<double>(scale[row * scale_stride]);
  // The forward stored g * prescale: in place with the expected scale, nothing to do.
  if (given == prescale && out == g) return;
  const acc_t s = static_cast<acc_t>(given / prescale);
  for (int64_t i = row * n + begin + threadIdx.x; i < row * n + end; i += kThreads) st(out + i, to_float(g[i]) * s);
}

template <int V>
bool packs_fit(const void* p, size_t elem) {
  return reinterpret_cast<uintptr_t>(p) % (elem * V) == 0;
}

template <class LT, class TT>
void launch_bernoulli(const void* x, int64_t xs, const void* t, int64_t ts, int64_t batch, int64_t n, void* g,
                      double gs, double* partial, int* flags, bool check_finite, int64_t chunks,
                      cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  using acc_t = compute_t<LT>;
  constexpr int V = sizeof(LT) == 8 ? 2 : 4;  // 16-byte logit packs (8 for half/bf16)
  static_assert(kChunk % V == 0, "chunks must start on a pack boundary");
  const bool packed = n % V == 0 && xs % V == 0 && ts % V == 0 && packs_fit<V>(x, sizeof(LT)) &&
                      packs_fit<V>(t, sizeof(TT)) && (g == nullptr || packs_fit<V>(g, sizeof(LT)));
  if (packed)
    bernoulli_chunks<LT, TT, V><<<grid, kThreads, 0, stream>>>(static_cast<const LT*>(x), xs,
        static_cast<const TT*>(t), ts, n, chunks, static_cast<LT*>(g), static_cast<acc_t>(gs), partial, flags,
        check_finite);
  else
    bernoulli_chunks<LT, TT, 1><<<grid, kThreads, 0, stream>>>(static_cast<const LT*>(x), xs,
        static_cast<const TT*>(t), ts, n, chunks, static_cast<LT*>(g), static_cast<acc_t>(gs), partial, flags,
        check_finite);
}

}  // namespace

int64_t bernoulli_chunks_per_row(int64_t n) { return n <= 0 ? 1 : (n + kChunk - 1) / kChunk; }

const char* bernoulli_nll_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride,
                               const void* target, DType target_dtype, int64_t target_row_stride, int64_t batch,
                               int64_t n, void* grad, double grad_scale, void* recon, bool out_f64, double* partial,
                               int* flags, bool check_finite, uintptr_t stream_handle) {
  if (batch == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = bernoulli_chunks_per_row(n);
  dispatch_float(logits_dtype, [&](auto l_tag) {
    dispatch_target(target_dtype, [&](auto t_tag) {
      launch_bernoulli<decltype(l_tag), decltype(t_tag)>(logits, logits_row_stride, target, target_row_stride, batch,
                                                         n, grad, grad_scale, partial, flags, check_finite, chunks,
                                                         stream);
    });
  });
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  return launch_status();
}

const char* gaussian_kl_rows(const void* mu, DType mu_dtype, int64_t mu_s0, int64_t mu_s1, const void* logvar,
                             DType logvar_dtype, int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z, void* kl,
                             void* dlogvar, bool out_f64, int* flags, bool check_finite, uintptr_t stream_handle) {
  const int64_t total = batch * z;
  if (total == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  dispatch_float(mu_dtype, [&](auto m_tag) {
    using M = decltype(m_tag);
    dispatch_float(logvar_dtype, [&](auto v_tag) {
      using L = decltype(v_tag);
      if (out_f64)
        kl_kernel<M, L, double><<<blocks_for(total), kThreads, 0, stream>>>(static_cast<const M*>(mu), mu_s0, mu_s1,
            static_cast<const L*>(logvar), lv_s0, lv_s1, batch, z, static_cast<double*>(kl),
            static_cast<double*>(dlogvar), flags, check_finite);
      else
        kl_kernel<M, L, float><<<blocks_for(total), kThreads, 0, stream>>>(static_cast<const M*>(mu), mu_s0, mu_s1,
            static_cast<const L*>(logvar), lv_s0, lv_s1, batch, z, static_cast<float*>(kl),
            static_cast<float*>(dlogvar), flags, check_finite);
    });
  });
  return launch_status();
}

const char* scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale,
                       DType scale_dtype, int64_t scale_stride, double prescale, uintptr_t stream_handle) {
  if (batch * n == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = bernoulli_chunks_per_row(n);
  const unsigned blocks = static_cast<unsigned>(batch * chunks);
  dispatch_float(dtype, [&](auto g_tag) {
    using T = decltype(g_tag);
    if (scale_dtype == DType::Float64)
      scale_kernel<T, double><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(g), static_cast<T*>(out), n,
          chunks, static_cast<const double*>(scale), scale_stride, prescale);
    else
      scale_kernel<T, float><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(g), static_cast<T*>(out), n,
          chunks, static_cast<const float*>(scale), scale_stride, prescale);
  });
  return launch_status();
}

}  // namespace elbits::cuda
