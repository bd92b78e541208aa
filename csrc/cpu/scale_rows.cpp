// Backward of a per-sample sum whose per-element gradient was stored by the
// forward pass: one read and one write per element.
#include <algorithm>

#include "kernels.h"
#include "parallel.h"
#include "simd_dispatch.h"

namespace elbits::cpu {
namespace {

constexpr int64_t kChunk = 16384;

template <class T>
ELBITS_HD void scale_impl(const T* g, T* out, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) out[i] = from_float<T>(to_float(g[i]) * s);
}

ELBITS_SIMD_CLONES void scale_f32(const void* g, void* out, int64_t n, float s) {
  scale_impl(static_cast<const float*>(g), static_cast<float*>(out), n, s);
}
ELBITS_SIMD_CLONES void scale_f16(const void* g, void* out, int64_t n, float s) {
  scale_impl(static_cast<const half_t*>(g), static_cast<half_t*>(out), n, s);
}
ELBITS_SIMD_CLONES void scale_bf16(const void* g, void* out, int64_t n, float s) {
  scale_impl(static_cast<const bf16_t*>(g), static_cast<bf16_t*>(out), n, s);
}
void scale_f64(const void* g, void* out, int64_t n, double s) {
  const double* gi = static_cast<const double*>(g);
  double* o = static_cast<double*>(out);
  for (int64_t i = 0; i < n; ++i) o[i] = gi[i] * s;
}

}  // namespace

void scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale,
                DType scale_dtype, int64_t scale_stride, int n_threads) {
  const int64_t chunks_per_row = std::max<int64_t>(1, (n + kChunk - 1) / kChunk);
  const int size = dtype_size(dtype);
  parallel_for(batch * chunks_per_row, n_threads, [&](int64_t task) {
    const int64_t row = task / chunks_per_row;
    const int64_t begin = (task % chunks_per_row) * kChunk;
    const int64_t len = std::min(kChunk, n - begin);
    const double s = scale_dtype == DType::Float64 ? static_cast<const double*>(scale)[row * scale_stride]
                                                   : static_cast<const float*>(scale)[row * scale_stride];
    const int64_t off = (row * n + begin) * size;
    const void* gi = static_cast<const char*>(g) + off;
    void* o = static_cast<char*>(out) + off;
    switch (dtype) {
      case DType::Float32: scale_f32(gi, o, len, static_cast<float>(s)); break;
      case DType::Float16: scale_f16(gi, o, len, static_cast<float>(s)); break;
      case DType::BFloat16: scale_bf16(gi, o, len, static_cast<float>(s)); break;
      case DType::Float64: scale_f64(gi, o, len, s); break;
      default: break;
    }
  });
}

}  // namespace elbits::cpu
