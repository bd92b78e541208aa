// CUDA kernels for the Bernoulli reconstruction, the Gaussian KL and the
// backward's row scaling. The per-element math is the CPU's, from
// csrc/include/elbits; only the loops and the reductions are CUDA's own.
#include <cuda_runtime.h>

#include <type_traits>

#include "elbits/bernoulli.h"
#include "elbits/dtypes.h"
#include "elbits/gaussian_kl.h"
#include "common.cuh"
#include "kernels.h"

namespace elbits::cuda {
namespace {

using colour::as_stream;
using colour::blocks_for;
using colour::kThreads;
using colour::launch_finish;

// Fixed chunking, as on the CPU: each block reduces one chunk of one row in a
// fixed order (per-thread strided sums, then common.cuh's shuffle tree), and a
// finishing kernel adds a row's chunk sums in order, so results repeat run to run.
constexpr int64_t kChunk = 16384;

cudaError_t first_error = cudaSuccess;

void note_launch() {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess && first_error == cudaSuccess) first_error = e;
}

template <class T> struct Compute { using type = float; };
template <> struct Compute<double> { using type = double; };

template <class T> __device__ __forceinline__ void store(T* p, float v) { *p = from_float<T>(v); }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }

// V elements of T in one aligned load/store (16 bytes for float x 4): a warp then moves
// 512 contiguous bytes of logits per instruction instead of 128, and the uint8 targets
// 4 bytes per thread instead of 1, which is what lets the loop reach DRAM bandwidth.
template <class T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

template <class T> __device__ __forceinline__ void put(T& dst, float v) { dst = from_float<T>(v); }
__device__ __forceinline__ void put(double& dst, double v) { dst = v; }

// V = 1: any strides and alignment. V > 1: the host checked that n, both row strides and
// all three base pointers are multiples of V elements, so every row and chunk (kChunk is
// a multiple of V) starts on a pack boundary.
template <class LT, class TT, int V>
__global__ void bernoulli_chunks(const LT* __restrict__ x, int64_t x_stride, const TT* __restrict__ t,
                                 int64_t t_stride, int64_t n, int64_t chunks, LT* __restrict__ g,
                                 typename Compute<LT>::type gs, double* __restrict__ partial, int* __restrict__ flags) {
  using acc_t = typename Compute<LT>::type;
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
      const acc_t xv = static_cast<acc_t>(to_float(xp.v[k]));
      const acc_t tv = static_cast<acc_t>(to_float(tp.v[k]));
      acc_t nll, grad;
      bernoulli_nll(xv, tv, nll, grad);
      acc += nll;
      put(gp.v[k], grad * gs);
      bad_x |= not_finite(xv);
      bad_t |= !(tv >= acc_t(0) && tv <= acc_t(1));
    }
    if (gr) gr[i] = gp;
  }
  colour::finish_block(static_cast<double>(acc), bad_x, kNonfiniteLogits, bad_t, kTargetOutOfRange, partial, flags);
}

template <class T>
__device__ __forceinline__ double load2d(const void* p, int64_t i) {
  return static_cast<double>(to_float(static_cast<const T*>(p)[i]));
}

__device__ double load_any(const void* p, DType d, int64_t i) {
  switch (d) {
    case DType::Float32: return load2d<float>(p, i);
    case DType::Float64: return static_cast<const double*>(p)[i];
    case DType::Float16: return load2d<half_t>(p, i);
    default: return load2d<bf16_t>(p, i);
  }
}

// KL is [batch, z]: tiny next to the images; float64 arithmetic like the CPU's.
template <class OT>
__global__ void kl_kernel(const void* mu, DType mu_dtype, int64_t mu_s0, int64_t mu_s1, const void* logvar,
                          DType lv_dtype, int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z, OT* kl,
                          OT* dlogvar, int* flags) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * z) return;
  const int64_t b = i / z, j = i % z;
  const double m = load_any(mu, mu_dtype, b * mu_s0 + j * mu_s1);
  const double lv = load_any(logvar, lv_dtype, b * lv_s0 + j * lv_s1);
  if (not_finite(m)) atomicOr(flags, kNonfiniteMu);
  if (not_finite(lv)) atomicOr(flags, kNonfiniteLogvar);
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
  using acc_t = typename Compute<T>::type;
  const double given = static_cast<double>(scale[row * scale_stride]);
  // The forward stored g * prescale: in place with the expected scale, nothing to do.
  if (given == prescale && out == g) return;
  const acc_t s = static_cast<acc_t>(given / prescale);
  for (int64_t i = row * n + begin + threadIdx.x; i < row * n + end; i += kThreads)
    store(out + i, static_cast<acc_t>(to_float(g[i])) * s);
}

template <int V>
bool packs_fit(const void* p, size_t elem) {
  return reinterpret_cast<uintptr_t>(p) % (elem * V) == 0;
}

template <class LT, class TT>
void launch_bernoulli(const void* x, int64_t xs, const void* t, int64_t ts, int64_t batch, int64_t n, void* g,
                      double gs, double* partial, int* flags, int64_t chunks, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  using acc_t = typename Compute<LT>::type;
  constexpr int V = sizeof(LT) == 8 ? 2 : 4;  // 16-byte logit packs (8 for half/bf16)
  static_assert(kChunk % V == 0, "chunks must start on a pack boundary");
  const bool packed = n % V == 0 && xs % V == 0 && ts % V == 0 && packs_fit<V>(x, sizeof(LT)) &&
                      packs_fit<V>(t, sizeof(TT)) && (g == nullptr || packs_fit<V>(g, sizeof(LT)));
  if (packed)
    bernoulli_chunks<LT, TT, V><<<grid, kThreads, 0, stream>>>(static_cast<const LT*>(x), xs,
        static_cast<const TT*>(t), ts, n, chunks, static_cast<LT*>(g), static_cast<acc_t>(gs), partial, flags);
  else
    bernoulli_chunks<LT, TT, 1><<<grid, kThreads, 0, stream>>>(static_cast<const LT*>(x), xs,
        static_cast<const TT*>(t), ts, n, chunks, static_cast<LT*>(g), static_cast<acc_t>(gs), partial, flags);
}

template <class LT>
void dispatch_target(DType td, const void* x, int64_t xs, const void* t, int64_t ts, int64_t batch, int64_t n,
                     void* g, double gs, double* partial, int* flags, int64_t chunks, cudaStream_t stream) {
  switch (td) {
    case DType::Float32: return launch_bernoulli<LT, float>(x, xs, t, ts, batch, n, g, gs, partial, flags, chunks, stream);
    case DType::Float64: return launch_bernoulli<LT, double>(x, xs, t, ts, batch, n, g, gs, partial, flags, chunks, stream);
    case DType::Float16: return launch_bernoulli<LT, half_t>(x, xs, t, ts, batch, n, g, gs, partial, flags, chunks, stream);
    case DType::BFloat16: return launch_bernoulli<LT, bf16_t>(x, xs, t, ts, batch, n, g, gs, partial, flags, chunks, stream);
    default: return launch_bernoulli<LT, uint8_t>(x, xs, t, ts, batch, n, g, gs, partial, flags, chunks, stream);
  }
}

}  // namespace

int64_t bernoulli_chunks_per_row(int64_t n) { return n <= 0 ? 1 : (n + kChunk - 1) / kChunk; }

void bernoulli_nll_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride, const void* target,
                        DType target_dtype, int64_t target_row_stride, int64_t batch, int64_t n, void* grad,
                        double grad_scale, void* recon, bool out_f64, double* partial, int* flags,
                        uintptr_t stream_handle) {
  if (batch == 0) return;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = bernoulli_chunks_per_row(n);
  switch (logits_dtype) {
    case DType::Float32:
      dispatch_target<float>(target_dtype, logits, logits_row_stride, target, target_row_stride, batch, n, grad,
                             grad_scale, partial, flags, chunks, stream);
      break;
    case DType::Float64:
      dispatch_target<double>(target_dtype, logits, logits_row_stride, target, target_row_stride, batch, n, grad,
                              grad_scale, partial, flags, chunks, stream);
      break;
    case DType::Float16:
      dispatch_target<half_t>(target_dtype, logits, logits_row_stride, target, target_row_stride, batch, n, grad,
                              grad_scale, partial, flags, chunks, stream);
      break;
    default:
      dispatch_target<bf16_t>(target_dtype, logits, logits_row_stride, target, target_row_stride, batch, n, grad,
                              grad_scale, partial, flags, chunks, stream);
  }
  note_launch();
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  note_launch();
}

void gaussian_kl_rows(const void* mu, DType mu_dtype, int64_t mu_s0, int64_t mu_s1, const void* logvar,
                      DType logvar_dtype, int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z, void* kl,
                      void* dlogvar, bool out_f64, int* flags, uintptr_t stream_handle) {
  const int64_t total = batch * z;
  if (total == 0) return;
  const cudaStream_t stream = as_stream(stream_handle);
  if (out_f64)
    kl_kernel<double><<<blocks_for(total), kThreads, 0, stream>>>(mu, mu_dtype, mu_s0, mu_s1, logvar, logvar_dtype,
        lv_s0, lv_s1, batch, z, static_cast<double*>(kl), static_cast<double*>(dlogvar), flags);
  else
    kl_kernel<float><<<blocks_for(total), kThreads, 0, stream>>>(mu, mu_dtype, mu_s0, mu_s1, logvar, logvar_dtype,
        lv_s0, lv_s1, batch, z, static_cast<float*>(kl), static_cast<float*>(dlogvar), flags);
  note_launch();
}

void scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale,
                DType scale_dtype, int64_t scale_stride, double prescale, uintptr_t stream_handle) {
  const int64_t total = batch * n;
  if (total == 0) return;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = bernoulli_chunks_per_row(n);
  const unsigned blocks = static_cast<unsigned>(batch * chunks);
#define ELBITS_SCALE(T)                                                                                      \
  if (scale_dtype == DType::Float64)                                                                         \
    scale_kernel<T, double><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(g), static_cast<T*>(out), n, \
        chunks, static_cast<const double*>(scale), scale_stride, prescale);                                  \
  else                                                                                                       \
    scale_kernel<T, float><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(g), static_cast<T*>(out), n,  \
        chunks, static_cast<const float*>(scale), scale_stride, prescale);
  switch (dtype) {
    case DType::Float32: ELBITS_SCALE(float) break;
    case DType::Float64: ELBITS_SCALE(double) break;
    case DType::Float16: ELBITS_SCALE(half_t) break;
    default: ELBITS_SCALE(bf16_t) break;
  }
#undef ELBITS_SCALE
  note_launch();
}

const char* last_error() {
  if (first_error == cudaSuccess) return nullptr;
  const char* msg = cudaGetErrorString(first_error);
  first_error = cudaSuccess;
  return msg;
}

}  // namespace elbits::cuda
