// CUDA entry points: the same ops as csrc/cpu/kernels.h, launched on the
// caller's stream (torch's current stream, passed as an integer by Python).
// No host synchronisation: input problems are OR-ed into a small device flag
// buffer owned by the caller, which Python reads when the user asks.
#pragma once
#include <cstdint>

#include "elbits/dtypes.h"

namespace elbits::cuda {

// Bits of the device flag word (see python/elbits/ops/device_flags.py).
enum Flag : int {
  kNonfiniteLogits = 1,
  kTargetOutOfRange = 2,
  kNonfiniteMu = 4,
  kNonfiniteLogvar = 8,
  kNonfiniteParams = 16,
  kTargetLevelOutOfRange = 32,
};

// bernoulli.cu: per-sample Bernoulli NLL sums (nats) and, if grad != nullptr, grad_scale * d nll / d logits.
// partial: scratch of batch * chunks_per_row(n) floats64 on the device.
// Every launcher returns its launch status: nullptr, or the CUDA error's name.
const char* bernoulli_nll_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride, const void* target,
                               DType target_dtype, int64_t target_row_stride, int64_t batch, int64_t n, void* grad,
                               double grad_scale, void* recon, bool out_f64, double* partial, int* flags,
                               bool check_finite, uintptr_t stream);

int64_t bernoulli_chunks_per_row(int64_t n);

// gaussian_kl.cu: as the CPU's gaussian_kl_rows.
const char* gaussian_kl_rows(const void* mu, DType mu_dtype, int64_t mu_s0, int64_t mu_s1, const void* logvar,
                             DType logvar_dtype, int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z, void* kl,
                             void* dlogvar, bool out_f64, int* flags, bool check_finite, uintptr_t stream);

// scale_rows.cu: as the CPU's scale_rows, out = g * (scale[b] / prescale); in place, rows whose
// scale equals prescale are skipped.
const char* scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale,
                       DType scale_dtype, int64_t scale_stride, double prescale, uintptr_t stream);

// ---- Colour / 8-bit likelihoods (categorical.cu, logistic_mixture.cu,
// discretized_gaussian.cu, continuous_bernoulli.cu): the CPU entry points of
// csrc/cpu/kernels.h on the device. Same layouts: parameters [B, channels,
// pixels] with each sample contiguous (batch stride in elements), integer
// targets uint8/int64 levels [B, C, pixels], grad contiguous in the parameters'
// dtype. Each forward reduces fixed chunks of a sample into `partial` (scratch
// of batch * *_chunks_per_row(...) float64 on the device) and a finishing kernel
// adds a sample's chunks in order, so recon repeats bit for bit run to run.
// Input problems OR bits into *flags (kNonfiniteParams / kTargetLevelOutOfRange;
// the continuous Bernoulli uses kNonfiniteLogits / kTargetOutOfRange as the CPU
// does); with check_finite = false the NaN/Inf bits are not set (target range
// bits still are, as the CPU still raises for them).
// Each returns nullptr, or the name of the CUDA error a launch raised.

int64_t categorical256_chunks_per_row(int64_t pixels);
// logits [B, 256, P] (class stride P), target [B, P]; lse [B, 2, P] contiguous (per
// pixel the max logit, then 1 / sum exp(x - max): elbits/categorical.h), float32
// (float64 for float64 logits); recon [B].
const char* categorical256_forward(const void* logits, DType logits_dtype, int64_t logits_bs, const void* target,
                                   DType target_dtype, int64_t target_bs, int64_t batch, int64_t pixels, void* lse,
                                   void* recon, bool out_f64, double* partial, int* flags, bool check_finite,
                                   uintptr_t stream);
// grad [B, 256, P] contiguous = (softmax - onehot) * scale[b]; may be the logits buffer itself.
const char* categorical256_backward(const void* logits, DType logits_dtype, int64_t logits_bs, const void* target,
                                    DType target_dtype, int64_t target_bs, int64_t batch, int64_t pixels,
                                    const void* lse, const void* scale, DType scale_dtype, int64_t scale_stride,
                                    void* grad, uintptr_t stream);

// PixelCNN++ mixture, params [B, K + C*(3K or 2K), P]; grad nullable, written times
// grad_scale (as bernoulli_nll_rows; the same for the two below).
int64_t logistic_mixture_chunks_per_row(int64_t channels, int64_t pixels);
const char* logistic_mixture_rows(const void* params, DType params_dtype, int64_t params_bs, const void* target,
                                  DType target_dtype, int64_t target_bs, int64_t batch, int64_t channels,
                                  int64_t pixels, int64_t n_mix, void* grad, double grad_scale, void* recon,
                                  bool out_f64, double* partial, int* flags, bool check_finite, uintptr_t stream);

// Discretized Gaussian, params [B, 2C, P] (means then log-scales); n_mix unused.
int64_t discretized_gaussian_chunks_per_row(int64_t channels, int64_t pixels);
const char* discretized_gaussian_rows(const void* params, DType params_dtype, int64_t params_bs, const void* target,
                                      DType target_dtype, int64_t target_bs, int64_t batch, int64_t channels,
                                      int64_t pixels, int64_t n_mix, void* grad, double grad_scale, void* recon,
                                      bool out_f64, double* partial, int* flags, bool check_finite, uintptr_t stream);

// Continuous Bernoulli, [batch, n] rows (row strides given) as bernoulli_nll_rows;
// targets float in [0, 1] or uint8 levels / 255.
int64_t continuous_bernoulli_chunks_per_row(int64_t n);
const char* continuous_bernoulli_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride,
                                      const void* target, DType target_dtype, int64_t target_row_stride, int64_t batch,
                                      int64_t n, void* grad, double grad_scale, void* recon, bool out_f64,
                                      double* partial, int* flags, bool check_finite, uintptr_t stream);

}  // namespace elbits::cuda
