// Fused Bernoulli negative log-likelihood: one read of logits and target per
// element produces the per-sample sum and, when asked, the gradient that the
// backward pass only has to scale.
#include <algorithm>
#include <vector>

#include "elbits/bernoulli.h"
#include "isa_dispatch.h"
#include "kernels.h"
#include "parallel.h"
#include "row_reduce.h"

namespace elbits::cpu {
namespace {

// Work is cut into row chunks of a fixed size, so the partial sums, and the
// order they are added in, do not depend on the number of threads.
constexpr int64_t kChunk = 8192;

// Above this many bytes touched (logits + targets + gradient) the working set
// cannot stay in a last-level cache (32 MiB per core complex on the AMD parts
// here, less on most others), so the gradient is written with streaming stores:
// no read-for-ownership of its lines, no eviction of the inputs. Below it the
// gradient stays cached for the backward that reads it next. Same idea as glibc's
// memcpy, which streams beyond about 3/4 of the shared cache.
constexpr int64_t kStreamAbove = 24 << 20;

// float64 storage (gradcheck, float64 callers): libm's exp/log1p, scalar.
template <class TT>
void chunk_f64(const void* xp, const void* tp, void* gp, double gs, bool /*stream*/, int64_t n, double* sum,
               uint32_t* flags) {
  const double* x = static_cast<const double*>(xp);
  const TT* t = static_cast<const TT*>(tp);
  double* g = static_cast<double*>(gp);
  double acc = 0.0;
  uint32_t fx = 0, ft = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double tv = static_cast<double>(to_float(t[i]));
    double nll, grad;
    bernoulli_nll(x[i], tv, nll, grad);
    acc += nll;
    if (g) g[i] = grad * gs;
    fx |= not_finite(x[i]);
    ft |= !(tv >= 0.0 && tv <= 1.0);
  }
  *sum = acc;
  flags[0] = fx;
  flags[1] = ft;
  flags[2] = !(fx | ft) && not_finite(acc);
}

int target_slot(DType d) {
  switch (d) {
    case DType::Float32: return 0;
    case DType::Float16: return 1;
    case DType::BFloat16: return 2;
    case DType::UInt8:
    case DType::Bool: return 3;
    case DType::Float64: return 4;
    default: return -1;
  }
}

BernoulliChunkFn pick_kernel(DType logits, DType target) {
  const int col = target_slot(target);
  if (logits == DType::Float64) {
    static const BernoulliChunkFn f64[5] = {chunk_f64<float>, chunk_f64<half_t>, chunk_f64<bf16_t>, chunk_f64<uint8_t>,
                                            chunk_f64<double>};
    return f64[col];
  }
  const int row = logits == DType::Float32 ? 0 : logits == DType::Float16 ? 1 : 2;
  return isa_kernels().bernoulli[row][col];
}

}  // namespace

BernoulliFlags bernoulli_nll_rows(const BernoulliArgs& a) {
  BernoulliFlags out;
  if (a.batch == 0) return out;
  const BernoulliChunkFn fn = pick_kernel(a.logits_dtype, a.target_dtype);
  const size_t lsize = dtype_size(a.logits_dtype);
  const size_t tsize = dtype_size(a.target_dtype);
  const bool stream = a.grad != nullptr && a.batch * a.n * static_cast<int64_t>(2 * lsize + tsize) > kStreamAbove;
  const auto flags = reduce_rows<3>(a.batch, a.n, kChunk, a.n_threads, a.recon, a.out_f64,
                                    [&](int64_t row, int64_t begin, int64_t len, double* sum, uint32_t* f) {
    const char* x = static_cast<const char*>(a.logits) + (row * a.logits_row_stride + begin) * lsize;
    const char* t = static_cast<const char*>(a.target) + (row * a.target_row_stride + begin) * tsize;
    char* g = a.grad ? static_cast<char*>(a.grad) + (row * a.n + begin) * lsize : nullptr;
    fn(x, t, g, a.grad_scale, stream, len, sum, f);
  });
  out.nonfinite_logits = any_flag(flags, 3, 0);
  out.target_out_of_range = any_flag(flags, 3, 1);
  out.loss_overflow = any_flag(flags, 3, 2);
  return out;
}

}  // namespace elbits::cpu
