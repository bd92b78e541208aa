// Fused Bernoulli negative log-likelihood: one read of logits and target per
// element produces the per-sample sum and, when asked, the gradient that the
// backward pass only has to scale.
#include <algorithm>
#include <vector>

#include "elbits/bernoulli.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_dispatch.h"

namespace elbits::cpu {
namespace {

// Work is cut into row chunks of a fixed size, so the partial sums, and the
// order they are added in, do not depend on the number of threads.
constexpr int64_t kChunk = 8192;
constexpr int kLanes = 16;  // independent accumulators: vectorises without reassociation

template <class LT, class TT, bool kGrad>
ELBITS_HD void chunk_impl(const LT* x, const TT* t, LT* g, int64_t n, double* sum, uint32_t* flags) {
  using acc_t = float;
  acc_t acc[kLanes] = {};
  uint32_t bad_x[kLanes] = {};
  uint32_t bad_t[kLanes] = {};
  auto element = [&](int64_t i, int lane) {
    const acc_t xv = to_float(x[i]);
    const acc_t tv = static_cast<acc_t>(to_float(t[i]));
    acc_t nll, grad;
    bernoulli_nll(xv, tv, nll, grad);
    acc[lane] += nll;
    if constexpr (kGrad) g[i] = from_float<LT>(grad);
    bad_x[lane] |= not_finite(xv);
    bad_t[lane] |= !((tv >= acc_t(0)) & (tv <= acc_t(1)));  // & not &&: no branch, so it vectorises
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) element(i + j, j);
  }
  for (int j = 0; i < n; ++i, ++j) element(i, j);
  double total = 0.0;
  uint32_t fx = 0, ft = 0;
  for (int j = 0; j < kLanes; ++j) {
    total += static_cast<double>(acc[j]);
    fx |= bad_x[j];
    ft |= bad_t[j];
  }
  *sum = total;
  flags[0] = fx;
  flags[1] = ft;
}

template <class LT, class TT>
struct ChunkKernel {
  static void run(const LT* x, const TT* t, LT* g, int64_t n, double* sum, uint32_t* flags) {
    if (g) chunk_impl<LT, TT, true>(x, t, g, n, sum, flags);
    else chunk_impl<LT, TT, false>(x, t, g, n, sum, flags);
  }
};

// float64 storage: the loop keeps libm's exp/log1p (no vector clones needed).
template <class TT>
void chunk_f64(const double* x, const TT* t, double* g, int64_t n, double* sum, uint32_t* flags) {
  double acc = 0.0;
  uint32_t fx = 0, ft = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double xv = x[i];
    const double tv = static_cast<double>(to_float(t[i]));
    double nll, grad;
    bernoulli_nll(xv, tv, nll, grad);
    acc += nll;
    if (g) g[i] = grad;
    fx |= not_finite(xv);
    ft |= !(tv >= 0.0 && tv <= 1.0);
  }
  *sum = acc;
  flags[0] = fx;
  flags[1] = ft;
}

// One out-of-line function per (logits, target) storage pair, compiled for
// each ISA level and picked at load time (see simd_dispatch.h).
#define ELBITS_BERNOULLI_CHUNK(NAME, LT, TT)                                                        \
  ELBITS_SIMD_CLONES void NAME(const void* x, const void* t, void* g, int64_t n, double* sum,         \
                               uint32_t* flags) {                                                   \
    ChunkKernel<LT, TT>::run(static_cast<const LT*>(x), static_cast<const TT*>(t), static_cast<LT*>(g), \
                             n, sum, flags);                                                        \
  }
ELBITS_BERNOULLI_CHUNK(chunk_f32_f32, float, float)
ELBITS_BERNOULLI_CHUNK(chunk_f32_f16, float, half_t)
ELBITS_BERNOULLI_CHUNK(chunk_f32_bf16, float, bf16_t)
ELBITS_BERNOULLI_CHUNK(chunk_f32_u8, float, uint8_t)
ELBITS_BERNOULLI_CHUNK(chunk_f16_f32, half_t, float)
ELBITS_BERNOULLI_CHUNK(chunk_f16_f16, half_t, half_t)
ELBITS_BERNOULLI_CHUNK(chunk_f16_bf16, half_t, bf16_t)
ELBITS_BERNOULLI_CHUNK(chunk_f16_u8, half_t, uint8_t)
ELBITS_BERNOULLI_CHUNK(chunk_bf16_f32, bf16_t, float)
ELBITS_BERNOULLI_CHUNK(chunk_bf16_f16, bf16_t, half_t)
ELBITS_BERNOULLI_CHUNK(chunk_bf16_bf16, bf16_t, bf16_t)
ELBITS_BERNOULLI_CHUNK(chunk_bf16_u8, bf16_t, uint8_t)
#undef ELBITS_BERNOULLI_CHUNK

using ChunkFn = void (*)(const void*, const void*, void*, int64_t, double*, uint32_t*);

template <class TT>
void chunk_f64_erased(const void* x, const void* t, void* g, int64_t n, double* sum, uint32_t* flags) {
  chunk_f64<TT>(static_cast<const double*>(x), static_cast<const TT*>(t), static_cast<double*>(g), n, sum,
                flags);
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

ChunkFn pick_kernel(DType logits, DType target) {
  // Rows: logits dtype; columns: target slot (f32, f16, bf16, u8/bool, f64).
  static const ChunkFn table[3][5] = {
      {chunk_f32_f32, chunk_f32_f16, chunk_f32_bf16, chunk_f32_u8, nullptr},
      {chunk_f16_f32, chunk_f16_f16, chunk_f16_bf16, chunk_f16_u8, nullptr},
      {chunk_bf16_f32, chunk_bf16_f16, chunk_bf16_bf16, chunk_bf16_u8, nullptr},
  };
  const int col = target_slot(target);
  if (col < 0) return nullptr;
  switch (logits) {
    case DType::Float32: return table[0][col];
    case DType::Float16: return table[1][col];
    case DType::BFloat16: return table[2][col];
    case DType::Float64: {
      static const ChunkFn f64[5] = {chunk_f64_erased<float>, chunk_f64_erased<half_t>,
                                     chunk_f64_erased<bf16_t>, chunk_f64_erased<uint8_t>,
                                     chunk_f64_erased<double>};
      return f64[col];
    }
    default: return nullptr;
  }
}

}  // namespace

BernoulliFlags bernoulli_nll_rows(const BernoulliArgs& a) {
  BernoulliFlags out;
  if (a.batch == 0) return out;
  const ChunkFn fn = pick_kernel(a.logits_dtype, a.target_dtype);
  const size_t lsize = dtype_size(a.logits_dtype);
  const size_t tsize = dtype_size(a.target_dtype);
  const int64_t chunks_per_row = a.n == 0 ? 1 : (a.n + kChunk - 1) / kChunk;
  const int64_t n_tasks = a.batch * chunks_per_row;
  std::vector<double> partial(n_tasks);
  std::vector<uint32_t> flags(2 * n_tasks);
  parallel_for(n_tasks, a.n_threads, [&](int64_t task) {
    const int64_t row = task / chunks_per_row;
    const int64_t begin = (task % chunks_per_row) * kChunk;
    const int64_t len = std::min(kChunk, a.n - begin);
    const char* x = static_cast<const char*>(a.logits) + (row * a.logits_row_stride + begin) * lsize;
    const char* t = static_cast<const char*>(a.target) + (row * a.target_row_stride + begin) * tsize;
    char* g = a.grad ? static_cast<char*>(a.grad) + (row * a.n + begin) * lsize : nullptr;
    fn(x, t, g, len, &partial[task], &flags[2 * task]);
  });
  for (int64_t row = 0; row < a.batch; ++row) {
    double s = 0.0;
    for (int64_t c = 0; c < chunks_per_row; ++c) s += partial[row * chunks_per_row + c];
    if (a.out_f64) static_cast<double*>(a.recon)[row] = s;
    else static_cast<float*>(a.recon)[row] = static_cast<float>(s);
  }
  for (int64_t task = 0; task < n_tasks; ++task) {
    out.nonfinite_logits |= flags[2 * task] != 0;
    out.target_out_of_range |= flags[2 * task + 1] != 0;
  }
  return out;
}

}  // namespace elbits::cpu
