// Discretized logistic mixture (PixelCNN++), fused with its gradient.
// Work: per (sample, tile of kTile pixels). Inside a tile every loop runs over
// the pixels (contiguous in NCHW), so the per-subpixel math vectorises; the
// parameter layout and the edge bins are handled with 0/1 weights, not branches
// per element of a full where() tree (see elbits/logistic_mixture.h).
#include <type_traits>
#include <vector>

#include "elbits/dtypes.h"
#include "elbits/logistic_mixture.h"
#include "isa_clones.h"
#include "kernels.h"
#include "row_reduce.h"

namespace elbits::cpu {
namespace {

constexpr int64_t kTile = 64;

// A tile's scratch, [kTile] values per row, per thread. Every region is written before
// it is read, except `zeros`, which stays 0.
template <class T>
struct MixScratch {
  T* xs;    // [C]: the targets scaled to [-1, 1]
  T* wlo;   // [C]: 0 for level 0 (open lower edge bin), else 1
  T* whi;   // [C]: 0 for level 255 (open upper edge bin), else 1
  T* lp;    // [K]: log P(pixel | component k)
  T* dmn;   // [C][K]: d lp / d mean
  T* dls;   // [C][K]: d lp / d log-scale
  T* coef;  // [3][K]: tanh of the channel-coupling coefficients (C = 3)
  // The two online log-sum-exps (elbits/logmath.h lse_push2), of the mixture logits
  // (max mu1; q1, k1) and of logits + lp (max parts mu2, mw2; q2, k2).
  T* mu1;
  T* q1;
  T* k1;
  T* mu2;
  T* mw2;
  T* q2;
  T* k2;
  const T* zeros;
};

// Kept per thread across tiles: a fresh zeroed vector per 64-pixel tile cost a malloc
// and a 29 KB memset each (K = 10).
template <class T>
ELBITS_INLINE MixScratch<T> mix_scratch(int64_t C, int64_t K) {
  thread_local std::vector<T> buf;
  const size_t need = static_cast<size_t>((3 * C + K + 2 * C * K + 3 * K + 8) * kTile);
  if (buf.size() < need) buf.resize(need);
  MixScratch<T> s;
  s.xs = buf.data();
  s.wlo = s.xs + C * kTile;
  s.whi = s.wlo + C * kTile;
  s.lp = s.whi + C * kTile;
  s.dmn = s.lp + K * kTile;
  s.dls = s.dmn + C * K * kTile;
  s.coef = s.dls + C * K * kTile;
  s.mu1 = s.coef + 3 * K * kTile;
  s.q1 = s.mu1 + kTile;
  s.k1 = s.q1 + kTile;
  s.mu2 = s.k1 + kTile;
  s.mw2 = s.mu2 + kTile;
  s.q2 = s.mw2 + kTile;
  s.k2 = s.q2 + kTile;
  T* zeros_w = s.k2 + kTile;
  for (int64_t p = 0; p < kTile; ++p) zeros_w[p] = T(0);
  s.zeros = zeros_w;
  return s;
}

// Pass 1: each channel's target level as x in [-1, 1] and the edge-bin weights.
template <class T, class L>
ELBITS_INLINE void load_levels(const L* tgt, int64_t P, int64_t n, int64_t C, const MixScratch<T>& s, uint32_t& range) {
  for (int64_t c = 0; c < C; ++c) {
#pragma GCC ivdep
    for (int64_t p = 0; p < n; ++p) {
      const int64_t lv = level_of(tgt[c * P + p], range);
      s.xs[c * kTile + p] = T(lv) / T(127.5) - T(1);
      s.wlo[c * kTile + p] = lv > 0 ? T(1) : T(0);
      s.whi[c * kTile + p] = lv < 255 ? T(1) : T(0);
    }
  }
}

// Pass 2: per component k, log P(pixel | k) summed over the channels (lp), with
// d lp / d mean and d lp / d log-scale per channel (0 below the -7 clamp).
template <class S, class T>
ELBITS_INLINE void component_pass(const S* prm, int64_t P, int64_t n, int64_t C, int64_t K, const MixScratch<T>& s,
                                  T* badv) {
  const int64_t nb = C == 3 ? 3 * K : 2 * K;  // channels per image channel block
  auto row = [&](int64_t ch) { return prm + ch * P; };
  for (int64_t k = 0; k < K; ++k) {
    T* lpk = s.lp + k * kTile;
    for (int64_t p = 0; p < n; ++p) lpk[p] = T(0);
    if (C == 3) {
      for (int64_t j = 0; j < 3; ++j) {
        const S* cr = row(K + j * nb + 2 * K + k);
        T* co = s.coef + (j * K + k) * kTile;
#pragma GCC ivdep
        for (int64_t p = 0; p < n; ++p) {
          const T v = to_float(cr[p]);
          badv[p] += v - v;
          co[p] = tanh_v(v);
        }
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      const S* mr = row(K + c * nb + k);
      const S* lr = row(K + c * nb + K + k);
      const T* x = s.xs + c * kTile;
      const T* lo = s.wlo + c * kTile;
      const T* hi = s.whi + c * kTile;
      const T* alpha = s.coef + (0 * K + k) * kTile;
      const T* beta = s.coef + (1 * K + k) * kTile;
      const T* gamma = s.coef + (2 * K + k) * kTile;
      T* dm = s.dmn + (c * K + k) * kTile;
      T* dl = s.dls + (c * K + k) * kTile;
      // Mean coupling (PixelCNN++): G += alpha R, B += beta R + gamma G; zeros elsewhere.
      const T* ca = C == 3 && c == 1 ? alpha : C == 3 && c == 2 ? beta : s.zeros;
      const T* cb = C == 3 && c == 2 ? gamma : s.zeros;
      const T* x1 = C == 3 ? s.xs + kTile : s.zeros;
#pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
        T m = to_float(mr[p]);
        const T lsr = to_float(lr[p]);
        badv[p] += (m - m) + (lsr - lsr);
        m += ca[p] * s.xs[p] + cb[p] * x1[p];
        const T lsv = lsr < T(-7) ? T(-7) : lsr;
        T l, g_m, g_ls;
        discretized_logistic(x[p], lo[p], hi[p], m, lsv, l, g_m, g_ls);
        lpk[p] += l;
        dm[p] = g_m;
        dl[p] = lsr >= T(-7) ? g_ls : T(0);
      }
    }
  }
}

// Pass 3: nll = logsumexp(pi) - logsumexp(pi + lp), one online pass over the
// components, each log-sum-exp kept in parts (its max apart from log s) so that
// logits near 1e4 keep the loss's digits: nll = (mu1 - mu2) - mw2 + (log s1 - log s2).
template <class S, class T>
ELBITS_INLINE void mixture_pass(const S* prm, int64_t P, int64_t n, int64_t K, const MixScratch<T>& s, T* badv) {
#pragma GCC ivdep
  for (int64_t p = 0; p < n; ++p) {
    s.mu1[p] = s.mu2[p] = -INFINITY;
    s.q1[p] = s.k1[p] = s.mw2[p] = s.q2[p] = s.k2[p] = T(0);
  }
  for (int64_t k = 0; k < K; ++k) {
    const S* pr = prm + k * P;
    const T* lpk = s.lp + k * kTile;
#pragma GCC ivdep
    for (int64_t p = 0; p < n; ++p) {
      const T v = to_float(pr[p]);
      badv[p] += v - v;
      T mw1 = T(0);
      lse_push2(v, T(0), s.mu1[p], mw1, s.q1[p], s.k1[p]);
      lse_push2(v, lpk[p], s.mu2[p], s.mw2[p], s.q2[p], s.k2[p]);
    }
  }
}

// Pass 4: the tile's NLL sum (nats); log s1 and log s2 replace their accumulators
// q1 and q2 for the gradient pass.
template <class T>
ELBITS_INLINE double tile_nll(int64_t n, const MixScratch<T>& s, const T* badv, uint32_t& nonfinite) {
  double acc = 0.0;
  T* ls1 = s.q1;
  T* ls2 = s.q2;
#pragma GCC ivdep
  for (int64_t p = 0; p < n; ++p) {
    nonfinite |= !(badv[p] == T(0));
    ls1[p] = log_sum_exp_tail(s.q1[p], s.k1[p]);
    ls2[p] = log_sum_exp_tail(s.q2[p], s.k2[p]);
    acc += static_cast<double>(((s.mu1[p] - s.mu2[p]) - s.mw2[p]) + (ls1[p] - ls2[p]));
  }
  return acc;
}

// Pass 5: d nll / d pi_k = softmax(pi)_k - r_k, r_k = posterior responsibility;
// d nll / d theta_{k,c} = -r_k d lp_{k,c} / d theta; all written times gs.
template <class S, class T>
ELBITS_INLINE void gradient_pass(const S* prm, int64_t P, int64_t n, int64_t C, int64_t K, const MixScratch<T>& s,
                                 S* grad, T gs) {
  const int64_t nb = C == 3 ? 3 * K : 2 * K;
  const T* ls1 = s.q1;
  const T* ls2 = s.q2;
  auto grow = [&](int64_t ch) { return grad + ch * P; };
  for (int64_t k = 0; k < K; ++k) {
    const S* pr = prm + k * P;
    const T* lpk = s.lp + k * kTile;
    S* gp = grow(k);
    T* r = s.k1;  // reuse as r_k[p]
#pragma GCC ivdep
    for (int64_t p = 0; p < n; ++p) {
      const T v = to_float(pr[p]);
      const T w = ex_rel((v - s.mu1[p]) - ls1[p]);
      const T rk = ex_rel(((v - s.mu2[p]) + (lpk[p] - s.mw2[p])) - ls2[p]);
      // Every gradient below is proportional to r or to (w - r): scaling both by the
      // expected upstream gradient pre-scales all of them.
      r[p] = rk * gs;
      st(gp + p, (w - rk) * gs);
    }
    T* gm2 = s.k2;  // d nll / d mean of channel 2 (for beta, gamma)
    for (int64_t c = 0; c < C; ++c) {
      const T* dm = s.dmn + (c * K + k) * kTile;
      const T* dl = s.dls + (c * K + k) * kTile;
      S* gmr = grow(K + c * nb + k);
      S* glr = grow(K + c * nb + K + k);
#pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
        const T gmv = -r[p] * dm[p];
        st(gmr + p, gmv);
        st(glr + p, -r[p] * dl[p]);
        if (C == 3 && c == 1) {
          const T al = s.coef[(0 * K + k) * kTile + p];
          st(grow(K + 0 * nb + 2 * K + k) + p, gmv * s.xs[p] * (T(1) - al * al));
        }
        if (C == 3 && c == 2) gm2[p] = gmv;
      }
    }
    if (C == 3) {
      S* gb = grow(K + 1 * nb + 2 * K + k);
      S* gg = grow(K + 2 * nb + 2 * K + k);
      const T* be = s.coef + (1 * K + k) * kTile;
      const T* ga = s.coef + (2 * K + k) * kTile;
#pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
        st(gb + p, gm2[p] * s.xs[p] * (T(1) - be[p] * be[p]));
        st(gg + p, gm2[p] * s.xs[kTile + p] * (T(1) - ga[p] * ga[p]));
      }
    }
  }
}

// One tile of n <= kTile pixels: the NLL sum (nats), two flags (non-finite parameters,
// levels outside 0..255) and, if grad, the gradient times gs.
template <class S, class L>
ELBITS_INLINE void mix_tile(const S* prm, int64_t P, const L* tgt, int64_t n, int64_t C, int64_t K, S* grad,
                            compute_t<S> gs, double* nll_sum, uint32_t* flags) {
  using T = compute_t<S>;
  const MixScratch<T> s = mix_scratch<T>(C, K);
  T badv[kTile];  // badv[p] += v - v: 0 unless a parameter is NaN/Inf
  for (int64_t p = 0; p < kTile; ++p) badv[p] = T(0);
  uint32_t range = 0, nonfinite = 0;
  load_levels(tgt, P, n, C, s, range);
  component_pass(prm, P, n, C, K, s, badv);
  mixture_pass(prm, P, n, K, s, badv);
  *nll_sum = tile_nll(n, s, badv, nonfinite);
  flags[0] = nonfinite;
  flags[1] = range;
  if (grad) gradient_pass(prm, P, n, C, K, s, grad, gs);
}

}  // namespace

// Per-ISA clones of the tile loop (see isa_clones.h).
namespace isa_clones {
#define ELBITS_MIX_CLONES(S, L)                                                                                      \
  ELBITS_CLONES void mix(const S* prm, int64_t P, const L* tgt, int64_t n, int64_t C, int64_t K, S* grad, double gs, \
                         double* nll_sum, uint32_t* flags) {                                                         \
    mix_tile<S, L>(prm, P, tgt, n, C, K, grad, static_cast<compute_t<S>>(gs), nll_sum, flags);                       \
  }
ELBITS_MIX_CLONES(float, uint8_t)
ELBITS_MIX_CLONES(float, int64_t)
ELBITS_MIX_CLONES(half_t, uint8_t)
ELBITS_MIX_CLONES(half_t, int64_t)
ELBITS_MIX_CLONES(bf16_t, uint8_t)
ELBITS_MIX_CLONES(bf16_t, int64_t)
ELBITS_MIX_CLONES(double, uint8_t)
ELBITS_MIX_CLONES(double, int64_t)
#undef ELBITS_MIX_CLONES
}  // namespace isa_clones

PixelFlags logistic_mixture_rows(const PixelArgs& a) {
  const int64_t nch = a.n_mix + a.channels * (a.channels == 3 ? 3 : 2) * a.n_mix;
  return reduce_pixel_rows(a.params, a.params_dtype, a.params_batch_stride, a.target, a.target_dtype,
                           a.target_batch_stride, a.batch, a.pixels, kTile, a.n_threads, a.recon, a.out_f64,
                           [&](auto prm, auto t, int64_t b, int64_t p0, int64_t n, double* sum, uint32_t* f) {
    using S = std::remove_cv_t<std::remove_pointer_t<decltype(prm)>>;
    S* g = a.grad ? static_cast<S*>(a.grad) + b * nch * a.pixels + p0 : nullptr;
    isa_clones::mix(prm, a.pixels, t, n, a.channels, a.n_mix, g, a.grad_scale, sum, f);
  });
}

}  // namespace elbits::cpu
