// Categorical-256: fused log-softmax + NLL without storing probabilities.
// Forward: per (sample, tile of kTile pixels) a max pass and a sum-exp pass over
// the 256 class rows of the tile (256 x kTile values, read from DRAM once and
// again from cache), keeping per pixel only the max and 1 / sum exp(x - max)
// (elbits/categorical.h). Backward: one streaming pass
// that reads logits and writes (softmax - onehot) * scale, class by class.
#include <type_traits>

#include "elbits/categorical.h"
#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "isa_clones.h"
#include "kernels.h"
#include "parallel.h"
#include "row_reduce.h"

namespace elbits::cpu {
namespace {

constexpr int64_t kTile = 128;       // pixels per forward task: 256 x 128 x 4 B = 128 KiB
constexpr int64_t kClassBlock = 16;  // classes per backward task
constexpr int kSumBlock = 16;        // classes per partial sum of the forward's sum-exp

template <class S, class L>
ELBITS_INLINE void fwd_tile(const S* x, int64_t P, const L* t, int64_t n, compute_t<S>* lse_m, compute_t<S>* lse_inv,
                            double* nll, uint32_t* flags) {
  using T = compute_t<S>;
  T m[kTile], q[kTile], k[kTile], bad[kTile];  // bad[p] += v - v: 0 unless a value is NaN/Inf
  for (int64_t p = 0; p < n; ++p) {
    m[p] = to_float(x[p]);
    bad[p] = m[p] - m[p];
  }
  for (int c = 1; c < kLevels; ++c) {
    const S* xc = x + c * P;
    for (int64_t p = 0; p < n; ++p) {
      const T v = to_float(xc[p]);
      bad[p] += v - v;
      m[p] = v > m[p] ? v : m[p];
    }
  }
  // q sums 16 classes at a time, then the 16 partial sums: each float sum has 16 terms,
  // so rounding stays ~16 ulp (a running sum of 256 equal terms drifts by ~100 ulp).
  T qb[kTile];
  for (int64_t p = 0; p < n; ++p) q[p] = k[p] = T(0);
  for (int c0 = 0; c0 < kLevels; c0 += kSumBlock) {
    for (int64_t p = 0; p < n; ++p) qb[p] = T(0);
    for (int c = c0; c < c0 + kSumBlock; ++c) {
      const S* xc = x + c * P;
      for (int64_t p = 0; p < n; ++p) sum_exp_add(T(to_float(xc[p])), m[p], qb[p], k[p]);
    }
    for (int64_t p = 0; p < n; ++p) q[p] += qb[p];
  }
  double acc = 0.0;
  uint32_t range = 0, nonfinite = 0;
  for (int64_t p = 0; p < n; ++p) {
    nonfinite |= !(bad[p] == T(0));
    const T ls = log_sum_exp_tail(q[p], k[p]);
    lse_m[p] = m[p];
    lse_inv[p] = T(1) / (T(1) + (q[p] + (k[p] - T(1))));  // 1 / s
    const int64_t lv = level_of(t[p], range);
    acc += static_cast<double>((m[p] - T(to_float(x[lv * P + p]))) + ls);
  }
  *nll = acc;
  flags[0] = nonfinite;
  flags[1] = range;
}

template <class S, class L>
ELBITS_INLINE void bwd_block(const S* x, int64_t P, const L* t, int c0, int c1, const compute_t<S>* lse_m,
                             const compute_t<S>* lse_inv, compute_t<S> g, S* out) {
  using T = compute_t<S>;
  for (int c = c0; c < c1; ++c) {
    const S* xc = x + c * P;
    S* oc = out + c * P;
#pragma GCC ivdep
    for (int64_t p = 0; p < P; ++p)
      st(oc + p, categorical_grad(T(to_float(xc[p])), lse_m[p], lse_inv[p], static_cast<int64_t>(t[p]) == c, g));
  }
}

}  // namespace

// Per-ISA clones of the tile loops (see isa_clones.h).
namespace isa_clones {
#define ELBITS_CAT_CLONES(S, L)                                                                                        \
  ELBITS_CLONES void cat_fwd(const S* x, int64_t P, const L* t, int64_t n, compute_t<S>* lse_m, compute_t<S>* lse_inv, \
                             double* nll, uint32_t* flags) {                                                           \
    fwd_tile<S, L>(x, P, t, n, lse_m, lse_inv, nll, flags);                                                            \
  }                                                                                                                    \
  ELBITS_CLONES void cat_bwd(const S* x, int64_t P, const L* t, int c0, int c1, const compute_t<S>* lse_m,             \
                             const compute_t<S>* lse_inv, compute_t<S> g, S* out) {                                    \
    bwd_block<S, L>(x, P, t, c0, c1, lse_m, lse_inv, g, out);                                                          \
  }
ELBITS_CAT_CLONES(float, uint8_t)
ELBITS_CAT_CLONES(float, int64_t)
ELBITS_CAT_CLONES(half_t, uint8_t)
ELBITS_CAT_CLONES(half_t, int64_t)
ELBITS_CAT_CLONES(bf16_t, uint8_t)
ELBITS_CAT_CLONES(bf16_t, int64_t)
ELBITS_CAT_CLONES(double, uint8_t)
ELBITS_CAT_CLONES(double, int64_t)
#undef ELBITS_CAT_CLONES
}  // namespace isa_clones

PixelFlags categorical256_forward(const CategoricalArgs& a) {
  return reduce_pixel_rows(a.logits, a.logits_dtype, a.logits_batch_stride, a.target, a.target_dtype,
                           a.target_batch_stride, a.batch, a.pixels, kTile, a.n_threads, a.recon, a.out_f64,
                           [&](auto x, auto t, int64_t b, int64_t p0, int64_t n, double* sum, uint32_t* f) {
    using T = compute_t<std::remove_cv_t<std::remove_pointer_t<decltype(x)>>>;
    T* lse = static_cast<T*>(a.lse) + b * 2 * a.pixels + p0;  // [B, 2, P]: max, then 1 / s
    isa_clones::cat_fwd(x, a.pixels, t, n, lse, lse + a.pixels, sum, f);
  });
}

void categorical256_backward(const CategoricalArgs& a, const void* scale, DType scale_dtype, int64_t scale_stride,
                             void* grad) {
  if (a.batch == 0 || a.pixels == 0) return;
  const int64_t blocks = kLevels / kClassBlock;
  dispatch_float(a.logits_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    using T = compute_t<S>;
    dispatch_level(a.target_dtype, [&](auto l_tag) {
      using L = decltype(l_tag);
      parallel_for(a.batch * blocks, a.n_threads, [&](int64_t task) {
        const int64_t b = task / blocks;
        const int c0 = static_cast<int>((task % blocks) * kClassBlock);
        const S* x = static_cast<const S*>(a.logits) + b * a.logits_batch_stride;
        const L* t = static_cast<const L*>(a.target) + b * a.target_batch_stride;
        const T* lse = static_cast<const T*>(a.lse) + b * 2 * a.pixels;
        S* o = static_cast<S*>(grad) + b * kLevels * a.pixels;
        const T g = static_cast<T>(load_scale(scale, scale_dtype, b * scale_stride));
        isa_clones::cat_bwd(x, a.pixels, t, c0, c0 + static_cast<int>(kClassBlock), lse, lse + a.pixels, g, o);
      });
    });
  });
}

}  // namespace elbits::cpu
