// Backward of a per-sample sum whose per-element gradient was stored by the
// forward pass: one read and one write per element.
#include <algorithm>

#include "isa_dispatch.h"
#include "kernels.h"
#include "parallel.h"

namespace elbits::cpu {
namespace {

constexpr int64_t kChunk = 16384;

void scale_f64(const void* g, void* out, int64_t n, double s) {
  const double* gi = static_cast<const double*>(g);
  double* o = static_cast<double*>(out);
  for (int64_t i = 0; i < n; ++i) o[i] = gi[i] * s;
}

}  // namespace

void scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale, DType scale_dtype,
                int64_t scale_stride, double prescale, int n_threads) {
  const int64_t chunks_per_row = std::max<int64_t>(1, (n + kChunk - 1) / kChunk);
  const int size = dtype_size(dtype);
  parallel_for(batch * chunks_per_row, n_threads, [&](int64_t task) {
    const int64_t row = task / chunks_per_row;
    const int64_t begin = (task % chunks_per_row) * kChunk;
    const int64_t len = std::min(kChunk, n - begin);
    const double given = load_scale(scale, scale_dtype, row * scale_stride);
    // The forward stored the gradient times prescale (the expected upstream
    // gradient, e.g. 1/B for a batch mean): when that guess was right there is
    // nothing to do in place.
    if (given == prescale && out == g) return;
    const double s = given / prescale;
    const int64_t off = (row * n + begin) * size;
    const void* gi = static_cast<const char*>(g) + off;
    void* o = static_cast<char*>(out) + off;
    switch (dtype) {
      case DType::Float32: isa_kernels().scale[0](gi, o, len, static_cast<float>(s)); break;
      case DType::Float16: isa_kernels().scale[1](gi, o, len, static_cast<float>(s)); break;
      case DType::BFloat16: isa_kernels().scale[2](gi, o, len, static_cast<float>(s)); break;
      case DType::Float64: scale_f64(gi, o, len, s); break;
      default: break;
    }
  });
}

}  // namespace elbits::cpu
