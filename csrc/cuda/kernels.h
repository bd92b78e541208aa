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

// Per-sample Bernoulli NLL sums (nats) and, if grad != nullptr, d nll / d logits.
// partial: scratch of batch * chunks_per_row(n) floats64 on the device.
void bernoulli_nll_rows(const void* logits, DType logits_dtype, int64_t logits_row_stride, const void* target,
                        DType target_dtype, int64_t target_row_stride, int64_t batch, int64_t n, void* grad,
                        void* recon, bool out_f64, double* partial, int* flags, uintptr_t stream);

int64_t bernoulli_chunks_per_row(int64_t n);

void gaussian_kl_rows(const void* mu, DType mu_dtype, int64_t mu_s0, int64_t mu_s1, const void* logvar,
                      DType logvar_dtype, int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z, void* kl,
                      void* dlogvar, bool out_f64, int* flags, uintptr_t stream);

void scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale,
                DType scale_dtype, int64_t scale_stride, uintptr_t stream);

// Name of the first CUDA error raised by the last launch, or nullptr.
const char* last_error();

}  // namespace elbits::cuda
