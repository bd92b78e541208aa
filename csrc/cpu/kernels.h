// CPU entry points of the elbits core. Framework-agnostic: raw pointers,
// element strides and DType codes; the Python op layer validates shapes,
// dtypes and devices before calling, so these functions trust their inputs.
#pragma once
#include <cstdint>

#include "elbits/dtypes.h"

namespace elbits::cpu {

// A 2-D view [rows, cols] with element strides.
struct View2D {
  const void* data;
  DType dtype;
  int64_t stride0;
  int64_t stride1;
};

// Bernoulli reconstruction: per-sample sums of nll(logits, target) in nats.
// logits and target are [batch, n] with contiguous rows (row strides given).
// grad (nullable) receives grad_scale * d nll / d logits, contiguous [batch, n], logits dtype
// (grad_scale: the upstream gradient the caller expects, so backward may skip its pass).
// recon is [batch], float64 when out_f64 else float32.
struct BernoulliArgs {
  const void* logits;
  DType logits_dtype;
  int64_t logits_row_stride;
  const void* target;
  DType target_dtype;
  int64_t target_row_stride;
  int64_t batch;
  int64_t n;
  void* grad;
  void* recon;
  bool out_f64;
  int n_threads;
  double grad_scale = 1.0;
};

struct BernoulliFlags {
  bool nonfinite_logits = false;
  bool target_out_of_range = false;  // outside [0, 1], NaN included
  bool loss_overflow = false;        // finite inputs, but a sum beyond float range
};

BernoulliFlags bernoulli_nll_rows(const BernoulliArgs& args);

// Gaussian KL per latent dimension, [batch, z] in nats, and (nullable)
// dlogvar = d KL / d logvar, both contiguous, float64 when out_f64.
struct KLFlags {
  bool nonfinite_mu = false;
  bool nonfinite_logvar = false;
};

KLFlags gaussian_kl_rows(const View2D& mu, const View2D& logvar, int64_t batch, int64_t z, void* kl, void* dlogvar,
                         bool out_f64);

// out[b, i] = g[b, i] * (scale[b] / prescale): contiguous [batch, n] rows of dtype;
// scale is float32 or float64 [batch] (any stride); prescale is the factor the
// forward already applied. out may alias g; in place, rows whose scale equals
// prescale are left untouched (no memory traffic).
void scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale, DType scale_dtype,
                int64_t scale_stride, double prescale, int n_threads);

}  // namespace elbits::cpu

// ---- Colour / 8-bit image likelihoods (categorical.cpp, logistic_mixture.cpp,
// discretized_gaussian.cpp, continuous_bernoulli.cpp). Parameters are [B, channels,
// pixels] with each sample contiguous (batch stride given, in elements); integer
// targets are uint8 or int64 levels 0..255, [B, C, pixels], sample-contiguous.
namespace elbits::cpu {

struct PixelFlags {
  bool nonfinite_params = false;
  bool target_level_out_of_range = false;
};

// Categorical over 256 levels: logits [B, 256, P] (class stride P), target [B, P].
// Forward writes lse [B, 2, P] (per pixel the max logit, then 1 / sum exp(x - max):
// elbits/categorical.h; float, double for float64 logits) and recon [B].
struct CategoricalArgs {
  const void* logits;
  DType logits_dtype;
  int64_t logits_batch_stride;
  const void* target;
  DType target_dtype;
  int64_t target_batch_stride;
  int64_t batch;
  int64_t pixels;
  void* lse;
  void* recon;
  bool out_f64;
  int n_threads;
};

PixelFlags categorical256_forward(const CategoricalArgs& a);
// grad [B, 256, P] contiguous, logits dtype: (softmax - onehot) * scale[b]
// (scale float32/float64 [B], any stride). grad may be the logits buffer itself.
void categorical256_backward(const CategoricalArgs& a, const void* scale, DType scale_dtype, int64_t scale_stride,
                             void* grad);

// Per-subpixel likelihoods with the gradient stored by forward (Bernoulli pattern).
struct PixelArgs {
  const void* params;
  DType params_dtype;
  int64_t params_batch_stride;
  const void* target;
  DType target_dtype;
  int64_t target_batch_stride;
  int64_t batch;
  int64_t channels;  // image channels C
  int64_t pixels;
  int64_t n_mix;  // logistic mixture components K (unused otherwise)
  void* grad;     // nullable, contiguous like params, params dtype, times grad_scale
  void* recon;
  bool out_f64;
  int n_threads;
  double grad_scale = 1.0;  // the upstream gradient the caller expects (see BernoulliArgs)
};

// PixelCNN++ mixture: params [B, K + C*(3K or 2K), P] (see logistic_mixture.h).
PixelFlags logistic_mixture_rows(const PixelArgs& a);
// params [B, 2C, P]: means (channels 0..C-1) then log-scales (C..2C-1).
PixelFlags discretized_gaussian_rows(const PixelArgs& a);
// Continuous Bernoulli: as bernoulli_nll_rows; targets float in [0, 1], or uint8 levels / 255.
BernoulliFlags continuous_bernoulli_rows(const BernoulliArgs& a);

}  // namespace elbits::cpu
