// Categorical-256 on CUDA: fused log-softmax + NLL without storing probabilities
// (the CPU's csrc/cpu/categorical.cpp, same math from elbits/categorical.h).
//
// Layout: logits [B, 256, P], the class dimension strided by P. One thread owns
// one pixel and loops over the 256 classes, so at every class a warp reads 32
// consecutive pixels: coalesced, and each logit is read from DRAM exactly once.
// Forward: online max / sum-exp per pixel, taken 8 classes at a time (the
// group's max rescales the running sum once per group, then one exp per logit),
// so there is no second pass over the logits; writes lse [B, 2, P] (planes of
// the max logit and 1 / sum exp(x - max), elbits/categorical.h) and the block's
// partial NLL sum. Backward: one read of the logits and one write of the
// gradient, (softmax - onehot) * scale recomputed from (x, lse); the write may
// go into the logits buffer itself (each element is read, then written, by the
// same thread, loads of a group issued before its stores).
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/categorical.h"
#include "elbits/logmath.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

constexpr int kGroup = 8;             // classes per online-softmax step
constexpr int kClassesPerBlock = 32;  // backward: classes per block (grid.y = 256 / 32)

template <class S, class L>
__global__ void __launch_bounds__(kThreads)
    cat_forward(const S* __restrict__ x, int64_t x_bs, const L* __restrict__ t, int64_t t_bs, int64_t P,
                compute_t<S>* __restrict__ lse, double* __restrict__ partial, int* __restrict__ flags, int64_t chunks,
                bool check_finite) {
  using T = compute_t<S>;
  const int64_t b = blockIdx.x / chunks;
  const int64_t p = (blockIdx.x % chunks) * kThreads + threadIdx.x;
  double acc = 0.0;
  bool bad = false, range = false;
  if (p < P) {
    const S* xp = x + b * x_bs + p;
    // s = q + k as in sum_exp_add: q sums the terms below the running max m, k counts
    // the terms at it.
    T m = -INFINITY, q = T(0), k = T(0), badv = T(0);
#pragma unroll 1
    for (int c0 = 0; c0 < kLevels; c0 += kGroup) {
      T v[kGroup];
#pragma unroll
      for (int j = 0; j < kGroup; ++j) v[j] = to_float(xp[(c0 + j) * P]);
      T gm = v[0];
#pragma unroll
      for (int j = 0; j < kGroup; ++j) {
        badv += v[j] - v[j];  // 0 unless a logit is NaN/Inf
        gm = v[j] > gm ? v[j] : gm;
      }
      // When the group raises the max, every term so far falls below it: rescale
      // their sum once (exp of <= 0 only).
      if (gm > m) {
        q = (q + k) * ex_nonpos(m - gm);
        k = T(0);
        m = gm;
      }
      // The group's terms are summed apart, then added: float sums of 8 and of 32 terms
      // instead of one running sum of 256 (as the CPU's blocks of 16).
      T gq = T(0);
#pragma unroll
      for (int j = 0; j < kGroup; ++j) sum_exp_add(v[j], m, gq, k);
      q += gq;
    }
    const T ls = log_sum_exp_tail(q, k);
    lse[b * 2 * P + p] = m;
    lse[b * 2 * P + P + p] = T(1) / (T(1) + (q + (k - T(1))));  // 1 / s
    const int64_t lv = level_of(t[b * t_bs + p], range);
    acc = static_cast<double>((m - static_cast<T>(to_float(xp[lv * P]))) + ls);
    bad = check_finite && !(badv == T(0));
  }
  finish_block(acc, bad, kNonfiniteParams, range, kTargetLevelOutOfRange, partial, flags);
}

// No __restrict__ on x / out: they are the same buffer for the in-place gradient.
template <class S, class L>
__global__ void __launch_bounds__(kThreads)
    cat_backward(const S* x, int64_t x_bs, const L* __restrict__ t, int64_t t_bs, int64_t P,
                 const compute_t<S>* __restrict__ lse, const void* __restrict__ scale, DType scale_dtype,
                 int64_t scale_stride, S* out, int64_t pixel_blocks) {
  using T = compute_t<S>;
  constexpr int kClassBlocks = kLevels / kClassesPerBlock;
  // Block order: sample, class block, pixel block (pixel fastest).
  const int64_t pb = blockIdx.x % pixel_blocks;
  const int64_t rest = blockIdx.x / pixel_blocks;
  const int64_t b = rest / kClassBlocks;
  const int c0 = static_cast<int>(rest % kClassBlocks) * kClassesPerBlock;
  const int64_t p = pb * kThreads + threadIdx.x;
  if (p >= P) return;
  const T g = static_cast<T>(load_scale(scale, scale_dtype, b * scale_stride));
  const T m = lse[b * 2 * P + p], inv_s = lse[b * 2 * P + P + p];
  const int64_t lv = static_cast<int64_t>(t[b * t_bs + p]);  // out of range: no class is the target
  const S* xp = x + b * x_bs + p;
  S* op = out + b * kLevels * P + p;
#pragma unroll 1
  for (int c = c0; c < c0 + kClassesPerBlock; c += kGroup) {
    T v[kGroup];
#pragma unroll
    for (int j = 0; j < kGroup; ++j) v[j] = to_float(xp[(c + j) * P]);  // all loads of the group first
#pragma unroll
    for (int j = 0; j < kGroup; ++j) st(op + (c + j) * P, categorical_grad(v[j], m, inv_s, lv == c + j, g));
  }
}

}  // namespace

int64_t categorical256_chunks_per_row(int64_t pixels) { return pixels <= 0 ? 1 : (pixels + kThreads - 1) / kThreads; }

const char* categorical256_forward(const void* logits, DType logits_dtype, int64_t logits_bs, const void* target,
                                   DType target_dtype, int64_t target_bs, int64_t batch, int64_t pixels, void* lse,
                                   void* recon, bool out_f64, double* partial, int* flags, bool check_finite,
                                   uintptr_t stream_handle) {
  if (batch == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = categorical256_chunks_per_row(pixels);
  const unsigned grid = static_cast<unsigned>(chunks * batch);
  dispatch_float(logits_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_level(target_dtype, [&](auto l_tag) {
      using L = decltype(l_tag);
      cat_forward<S, L><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(logits), logits_bs, static_cast<const L*>(target), target_bs, pixels,
          static_cast<compute_t<S>*>(lse), partial, flags, chunks, check_finite);
    });
  });
  launch_finish(partial, chunks, batch, recon, out_f64, stream);
  return launch_status();
}

const char* categorical256_backward(const void* logits, DType logits_dtype, int64_t logits_bs, const void* target,
                                    DType target_dtype, int64_t target_bs, int64_t batch, int64_t pixels,
                                    const void* lse, const void* scale, DType scale_dtype, int64_t scale_stride,
                                    void* grad, uintptr_t stream_handle) {
  if (batch == 0 || pixels == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t pixel_blocks = (pixels + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(pixel_blocks * (kLevels / kClassesPerBlock) * batch);
  dispatch_float(logits_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_level(target_dtype, [&](auto l_tag) {
      using L = decltype(l_tag);
      cat_backward<S, L><<<grid, kThreads, 0, stream>>>(
          static_cast<const S*>(logits), logits_bs, static_cast<const L*>(target), target_bs, pixels,
          static_cast<const compute_t<S>*>(lse), scale, scale_dtype, scale_stride, static_cast<S*>(grad), pixel_blocks);
    });
  });
  return launch_status();
}

}  // namespace elbits::cuda
