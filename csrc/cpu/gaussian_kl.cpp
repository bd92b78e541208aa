// Gaussian KL per latent dimension. [batch, z] is small next to the image
// tensors, so it runs on the calling thread in float64 whatever the storage.
#include <cmath>

#include "elbits/bernoulli.h"
#include "elbits/gaussian_kl.h"
#include "kernels.h"

namespace elbits::cpu {
namespace {

double load(const View2D& v, int64_t r, int64_t c) {
  const char* base = static_cast<const char*>(v.data);
  const int64_t off = (r * v.stride0 + c * v.stride1) * dtype_size(v.dtype);
  switch (v.dtype) {
    case DType::Float32: return *reinterpret_cast<const float*>(base + off);
    case DType::Float64: return *reinterpret_cast<const double*>(base + off);
    case DType::Float16: return to_float(*reinterpret_cast<const half_t*>(base + off));
    case DType::BFloat16: return to_float(*reinterpret_cast<const bf16_t*>(base + off));
    default: return NAN;
  }
}

}  // namespace

KLFlags gaussian_kl_rows(const View2D& mu, const View2D& logvar, int64_t batch, int64_t z, void* kl,
                         void* dlogvar, bool out_f64) {
  KLFlags flags;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < z; ++j) {
      const double m = load(mu, b, j);
      const double lv = load(logvar, b, j);
      flags.nonfinite_mu |= not_finite(m);
      flags.nonfinite_logvar |= not_finite(lv);
      double dlv;
      const double k = gaussian_kl(m, lv, dlv);
      const int64_t i = b * z + j;
      if (out_f64) {
        static_cast<double*>(kl)[i] = k;
        if (dlogvar) static_cast<double*>(dlogvar)[i] = dlv;
      } else {
        static_cast<float*>(kl)[i] = static_cast<float>(k);
        if (dlogvar) static_cast<float*>(dlogvar)[i] = static_cast<float>(dlv);
      }
    }
  }
  return flags;
}

}  // namespace elbits::cpu
