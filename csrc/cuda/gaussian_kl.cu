// Gaussian KL per latent dimension on CUDA: the CPU's csrc/cpu/gaussian_kl.cpp with
// the math of elbits/gaussian_kl.h, one thread per (sample, dimension).
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "elbits/gaussian_kl.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

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

}  // namespace

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
        kl_kernel<M, L, double><<<blocks_for(total), kThreads, 0, stream>>>(
            static_cast<const M*>(mu), mu_s0, mu_s1, static_cast<const L*>(logvar), lv_s0, lv_s1, batch, z,
            static_cast<double*>(kl), static_cast<double*>(dlogvar), flags, check_finite);
      else
        kl_kernel<M, L, float><<<blocks_for(total), kThreads, 0, stream>>>(
            static_cast<const M*>(mu), mu_s0, mu_s1, static_cast<const L*>(logvar), lv_s0, lv_s1, batch, z,
            static_cast<float*>(kl), static_cast<float*>(dlogvar), flags, check_finite);
    });
  });
  return launch_status();
}

}  // namespace elbits::cuda
