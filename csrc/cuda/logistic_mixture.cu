// Discretized logistic mixture (PixelCNN++) on CUDA, fused with its gradient:
// the CPU's csrc/cpu/logistic_mixture.cpp with the per-subpixel math of
// elbits/logistic_mixture.h and elbits/logmath.h.
//
// One thread owns one pixel (all C channels, all K components); parameter rows
// are strided by P, so a warp reads 32 consecutive pixels of a row: coalesced.
// Pass 1 runs over the components once, keeping online log-sum-exps of the
// mixture logits (lse1) and of logits + log P(pixel | k) (lse2), each in parts
// (elbits/logmath.h lse_push2: the max's parts apart from log s):
//   nll = lse1 - lse2 = (mu1 - mu2) - mw2 + (log s1 - log s2).
// With a gradient, pass 2 recomputes each component (same inline code, so the
// same values) and writes d nll / d params once, in the PixelCNN++ layout:
//   d / d pi_k = softmax(pi)_k - r_k,  d / d theta_{k,c} = -r_k d log P_{k,c} / d theta,
// r_k = exp(pi_k + lp_k - lse2), each exponent taken from the parts. Recomputing costs arithmetic, not memory:
// nothing per component is kept in global memory, and the re-read of the
// pixel's parameters hits the cache.
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/logistic_mixture.h"
#include "elbits/logmath.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

// log P(pixel | component k) and, per channel, d log P / d mean and d / d log-scale
// (0 below the -7 clamp); coef = tanh of the channel-coupling coefficients (C = 3).
template <int C, class S, class T>
__device__ __forceinline__ T component(const S* pr, int64_t P, int64_t K, int64_t k, const T (&xs)[C], const T (&lo)[C],
                                       const T (&hi)[C], T (&dm)[C], T (&dl)[C], T (&coef)[3], T& badv) {
  const int64_t nb = C == 3 ? 3 * K : 2 * K;  // parameter rows per image channel
  if (C == 3) {
#pragma unroll
    for (int j = 0; j < 3; ++j) {
      const T v = to_float(pr[(K + j * nb + 2 * K + k) * P]);
      badv += v - v;
      coef[j] = tanh_v(v);
    }
  }
  T lp = T(0);
#pragma unroll
  for (int c = 0; c < C; ++c) {
    T m = to_float(pr[(K + c * nb + k) * P]);
    const T lsr = to_float(pr[(K + c * nb + K + k) * P]);
    badv += (m - m) + (lsr - lsr);
    // Mean coupling (PixelCNN++): G += alpha R, B += beta R + gamma G.
    const T ca = C == 3 && c == 1 ? coef[0] : C == 3 && c == 2 ? coef[1] : T(0);
    const T cb = C == 3 && c == 2 ? coef[2] : T(0);
    const T x1 = C == 3 ? xs[C == 3 ? 1 : 0] : T(0);
    m += ca * xs[0] + cb * x1;
    const T lsv = lsr < T(-7) ? T(-7) : lsr;
    T l, g_m, g_ls;
    discretized_logistic(xs[c], lo[c], hi[c], m, lsv, l, g_m, g_ls);
    lp += l;
    dm[c] = g_m;
    dl[c] = lsr >= T(-7) ? g_ls : T(0);
  }
  return lp;
}

template <int C, class S, class L>
__global__ void __launch_bounds__(kThreads)
    mix_kernel(const S* __restrict__ prm, int64_t p_bs, const L* __restrict__ tgt, int64_t t_bs, int64_t P, int64_t K,
               S* __restrict__ grad, compute_t<S> gs, double* __restrict__ partial, int* __restrict__ flags,
               int64_t chunks, bool check_finite) {
  using T = compute_t<S>;
  const int64_t b = blockIdx.x / chunks;
  const int64_t p = (blockIdx.x % chunks) * kThreads + threadIdx.x;
  double acc = 0.0;
  bool bad = false, range = false;
  if (p < P) {
    const S* pr = prm + b * p_bs + p;
    T xs[C], lo[C], hi[C];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t lv = level_of(tgt[b * t_bs + c * P + p], range);
      xs[c] = T(lv) / T(127.5) - T(1);
      lo[c] = lv > 0 ? T(1) : T(0);
      hi[c] = lv < 255 ? T(1) : T(0);
    }
    T badv = T(0);
    T mu1 = -INFINITY, mw1 = T(0), q1 = T(0), k1 = T(0);
    T mu2 = -INFINITY, mw2 = T(0), q2 = T(0), k2 = T(0);
    T dm[C], dl[C], coef[3] = {T(0), T(0), T(0)};
#pragma unroll 1
    for (int64_t k = 0; k < K; ++k) {
      const T lp = component<C>(pr, P, K, k, xs, lo, hi, dm, dl, coef, badv);
      const T v = to_float(pr[k * P]);
      badv += v - v;
      lse_push2(v, T(0), mu1, mw1, q1, k1);
      lse_push2(v, lp, mu2, mw2, q2, k2);
    }
    const T ls1 = log_sum_exp_tail(q1, k1);  // lse1 = mu1 + ls1
    const T ls2 = log_sum_exp_tail(q2, k2);  // lse2 = mu2 + mw2 + ls2 = log p(x) + lse1
    acc = static_cast<double>(((mu1 - mu2) - mw2) + (ls1 - ls2));
    bad = check_finite && !(badv == T(0));
    if (grad) {
      const int64_t nb = C == 3 ? 3 * K : 2 * K;
      S* gp = grad + b * (K + C * nb) * P + p;
      T unused = T(0);
#pragma unroll 1
      for (int64_t k = 0; k < K; ++k) {
        const T lp = component<C>(pr, P, K, k, xs, lo, hi, dm, dl, coef, unused);
        const T v = to_float(pr[k * P]);
        // Every gradient below is linear in w and rk: scaling both by gs scales them all.
        const T w = gs * ex_rel((v - mu1) - ls1);
        const T rk = gs * ex_rel(((v - mu2) + (lp - mw2)) - ls2);
        st(gp + k * P, w - rk);
        T gm2 = T(0);  // d nll / d mean of channel 2 (for beta, gamma)
#pragma unroll
        for (int c = 0; c < C; ++c) {
          const T gmv = -rk * dm[c];
          st(gp + (K + c * nb + k) * P, gmv);
          st(gp + (K + c * nb + K + k) * P, -rk * dl[c]);
          if (C == 3 && c == 1) st(gp + (K + 0 * nb + 2 * K + k) * P, gmv * xs[0] * (T(1) - coef[0] * coef[0]));
          if (C == 3 && c == 2) gm2 = gmv;
        }
        if (C == 3) {
          st(gp + (K + 1 * nb + 2 * K + k) * P, gm2 * xs[0] * (T(1) - coef[1] * coef[1]));
          st(gp + (K + 2 * nb + 2 * K + k) * P, gm2 * xs[C == 3 ? 1 : 0] * (T(1) - coef[2] * coef[2]));
        }
      }
    }
  }
  finish_block(acc, bad, kNonfiniteParams, range, kTargetLevelOutOfRange, partial, flags);
}

}  // namespace

int64_t logistic_mixture_chunks_per_row(int64_t /*channels*/, int64_t pixels) {
  return pixels <= 0 ? 1 : (pixels + kThreads - 1) / kThreads;
}

const char* logistic_mixture_rows(const void* params, DType params_dtype, int64_t params_bs, const void* target,
                                  DType target_dtype, int64_t target_bs, int64_t batch, int64_t channels,
                                  int64_t pixels, int64_t n_mix, void* grad, double grad_scale, void* recon,
                                  bool out_f64, double* partial, int* flags, bool check_finite,
                                  uintptr_t stream_handle) {
  if (batch == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = logistic_mixture_chunks_per_row(channels, pixels);
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  dispatch_float(params_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_level(target_dtype, [&](auto l_tag) {
      using L = decltype(l_tag);
      const auto* prm = static_cast<const S*>(params);
      const auto* tgt = static_cast<const L*>(target);
      auto* g = static_cast<S*>(grad);
      const auto gs = static_cast<compute_t<S>>(grad_scale);
      if (channels == 3)
        mix_kernel<3, S, L><<<grid, kThreads, 0, stream>>>(prm, params_bs, tgt, target_bs, pixels, n_mix, g, gs,
                                                           partial, flags, chunks, check_finite);
      else
        mix_kernel<1, S, L><<<grid, kThreads, 0, stream>>>(prm, params_bs, tgt, target_bs, pixels, n_mix, g, gs,
                                                           partial, flags, chunks, check_finite);
    });
  });
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  return launch_status();
}

}  // namespace elbits::cuda
