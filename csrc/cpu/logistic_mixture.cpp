// Discretized logistic mixture (PixelCNN++), fused with its gradient.
// Work: per (sample, tile of kTile pixels). Inside a tile every loop runs over
// the pixels (contiguous in NCHW), so the per-subpixel math vectorises; the
// parameter layout and the edge bins are handled with 0/1 weights, not branches
// per element of a full where() tree (see elbits/logistic_mixture.h).
#include <type_traits>
#include <vector>

#include "colour_common.h"
#include "elbits/logistic_mixture.h"
#include "kernels.h"
#include "rows.h"

namespace elbits::cpu {
namespace {
using namespace colour;

constexpr int64_t kTile = 64;

template <class S, class L>
ELBITS_INLINE void mix_tile(const S* prm, int64_t P, const L* tgt, int64_t n, int64_t C, int64_t K, S* grad,
              compute_t<S> gs, double* nll_sum, uint32_t* flags) {
  using T = compute_t<S>;
  const int64_t nb = C == 3 ? 3 * K : 2 * K;  // channels per image channel block
  // Scratch: x, weights per channel; lp per k; dmean/dls per (c, k); tanh coeffs per (j, k).
  // Kept per thread across tiles: a fresh zeroed vector per 64-pixel tile cost a
  // malloc and a 29 KB memset each (K = 10). Every region is written before it is
  // read, except `zeros`, which is cleared here.
  thread_local std::vector<T> buf;
  const size_t need = static_cast<size_t>((3 * C + K + 2 * C * K + 3 * K + 8) * kTile);
  if (buf.size() < need) buf.resize(need);
  T* xs = buf.data();               // [C][kTile]
  T* wlo = xs + C * kTile;          // [C][kTile]
  T* whi = wlo + C * kTile;         // [C][kTile]
  T* lp = whi + C * kTile;          // [K][kTile]
  T* dmn = lp + K * kTile;          // [C][K][kTile]
  T* dls = dmn + C * K * kTile;     // [C][K][kTile]
  T* coef = dls + C * K * kTile;    // [3][K][kTile]
  // [kTile] each: the two online log-sum-exps (elbits/logmath.h lse_push2), of the
  // mixture logits (max mu1; q1, k1) and of logits + lp (max parts mu2, mw2; q2, k2).
  T* mu1 = coef + 3 * K * kTile;
  T* q1 = mu1 + kTile;
  T* k1 = q1 + kTile;
  T* mu2 = k1 + kTile;
  T* mw2 = mu2 + kTile;
  T* q2 = mw2 + kTile;
  T* k2 = q2 + kTile;
  T* zeros_w = k2 + kTile;
  for (int64_t p = 0; p < kTile; ++p) zeros_w[p] = T(0);
  const T* zeros = zeros_w;  // stays 0
  T badv[kTile];  // badv[p] += v - v: 0 unless a parameter is NaN/Inf
  for (int64_t p = 0; p < kTile; ++p) badv[p] = T(0);
  uint32_t range = 0;
  for (int64_t c = 0; c < C; ++c) {
    #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
      const int64_t lv = level_of(tgt[c * P + p], range);
      xs[c * kTile + p] = T(lv) / T(127.5) - T(1);
      wlo[c * kTile + p] = lv > 0 ? T(1) : T(0);
      whi[c * kTile + p] = lv < 255 ? T(1) : T(0);
    }
  }
  auto row = [&](int64_t ch) { return prm + ch * P; };
  for (int64_t k = 0; k < K; ++k) {
    T* lpk = lp + k * kTile;
    for (int64_t p = 0; p < n; ++p) lpk[p] = T(0);
    if (C == 3) {
      for (int64_t j = 0; j < 3; ++j) {
        const S* cr = row(K + j * nb + 2 * K + k);
        T* co = coef + (j * K + k) * kTile;
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
      const T* x = xs + c * kTile;
      const T* lo = wlo + c * kTile;
      const T* hi = whi + c * kTile;
      const T* alpha = coef + (0 * K + k) * kTile;
      const T* beta = coef + (1 * K + k) * kTile;
      const T* gamma = coef + (2 * K + k) * kTile;
      T* dm = dmn + (c * K + k) * kTile;
      T* dl = dls + (c * K + k) * kTile;
      // Mean coupling (PixelCNN++): G += alpha R, B += beta R + gamma G; zeros elsewhere.
      const T* ca = C == 3 && c == 1 ? alpha : C == 3 && c == 2 ? beta : zeros;
      const T* cb = C == 3 && c == 2 ? gamma : zeros;
      const T* x1 = C == 3 ? xs + kTile : zeros;
      #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
        T m = to_float(mr[p]);
        const T lsr = to_float(lr[p]);
        badv[p] += (m - m) + (lsr - lsr);
        m += ca[p] * xs[p] + cb[p] * x1[p];
        const T lsv = lsr < T(-7) ? T(-7) : lsr;
        T l, g_m, g_ls;
        discretized_logistic(x[p], lo[p], hi[p], m, lsv, l, g_m, g_ls);
        lpk[p] += l;
        dm[p] = g_m;
        dl[p] = lsr >= T(-7) ? g_ls : T(0);
      }
    }
  }
  // Mixture: nll = logsumexp(pi) - logsumexp(pi + lp), one online pass over the
  // components, each log-sum-exp kept in parts (its max apart from log s) so that
  // logits near 1e4 keep the loss's digits: nll = (mu1 - mu2) - mw2 + (log s1 - log s2).
  #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
    mu1[p] = mu2[p] = -INFINITY;
    q1[p] = k1[p] = mw2[p] = q2[p] = k2[p] = T(0);
  }
  for (int64_t k = 0; k < K; ++k) {
    const S* pr = row(k);
    const T* lpk = lp + k * kTile;
    #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
      const T v = to_float(pr[p]);
      badv[p] += v - v;
      T mw1 = T(0);
      lse_push2(v, T(0), mu1[p], mw1, q1[p], k1[p]);
      lse_push2(v, lpk[p], mu2[p], mw2[p], q2[p], k2[p]);
    }
  }
  double acc = 0.0;
  uint32_t nonfinite = 0;
  T* ls1 = q1;  // log s1, log s2 replace their accumulators
  T* ls2 = q2;
  #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
    nonfinite |= !(badv[p] == T(0));
    ls1[p] = log_sum_exp_tail(q1[p], k1[p]);
    ls2[p] = log_sum_exp_tail(q2[p], k2[p]);
    acc += static_cast<double>(((mu1[p] - mu2[p]) - mw2[p]) + (ls1[p] - ls2[p]));
  }
  *nll_sum = acc;
  flags[0] = nonfinite;
  flags[1] = range;
  if (!grad) return;
  // d nll / d pi_k = softmax(pi)_k - r_k, r_k = posterior responsibility;
  // d nll / d theta_{k,c} = -r_k d lp_{k,c} / d theta.
  auto grow = [&](int64_t ch) { return grad + ch * P; };
  for (int64_t k = 0; k < K; ++k) {
    const S* pr = row(k);
    const T* lpk = lp + k * kTile;
    S* gp = grow(k);
    T* r = k1;  // reuse as r_k[p]
    #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
      const T v = to_float(pr[p]);
      const T w = ex_rel((v - mu1[p]) - ls1[p]);
      const T rk = ex_rel(((v - mu2[p]) + (lpk[p] - mw2[p])) - ls2[p]);
      // Every gradient below is proportional to r or to (w - r): scaling both by the
      // expected upstream gradient pre-scales all of them.
      r[p] = rk * gs;
      st(gp + p, (w - rk) * gs);
    }
    T* gm2 = k2;  // d nll / d mean of channel 2 (for beta, gamma)
    for (int64_t c = 0; c < C; ++c) {
      const T* dm = dmn + (c * K + k) * kTile;
      const T* dl = dls + (c * K + k) * kTile;
      S* gmr = grow(K + c * nb + k);
      S* glr = grow(K + c * nb + K + k);
      #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
        const T gmv = -r[p] * dm[p];
        st(gmr + p, gmv);
        st(glr + p, -r[p] * dl[p]);
        if (C == 3 && c == 1) {
          const T al = coef[(0 * K + k) * kTile + p];
          st(grow(K + 0 * nb + 2 * K + k) + p, gmv * xs[p] * (T(1) - al * al));
        }
        if (C == 3 && c == 2) gm2[p] = gmv;
      }
    }
    if (C == 3) {
      S* gb = grow(K + 1 * nb + 2 * K + k);
      S* gg = grow(K + 2 * nb + 2 * K + k);
      const T* be = coef + (1 * K + k) * kTile;
      const T* ga = coef + (2 * K + k) * kTile;
      #pragma GCC ivdep
      for (int64_t p = 0; p < n; ++p) {
        st(gb + p, gm2[p] * xs[p] * (T(1) - be[p] * be[p]));
        st(gg + p, gm2[p] * xs[kTile + p] * (T(1) - ga[p] * ga[p]));
      }
    }
  }
}

}  // namespace

// Per-ISA clones of the tile loop (see colour_common.h).
namespace colour_isa {
#define ELBITS_MIX_CLONES(S, L)                                                                       \
  ELBITS_CLONES void mix(const S* prm, int64_t P, const L* tgt, int64_t n, int64_t C, int64_t K,     \
                         S* grad, double gs, double* nll_sum, uint32_t* flags) {                     \
    mix_tile<S, L>(prm, P, tgt, n, C, K, grad, static_cast<compute_t<S>>(gs), nll_sum, flags);           \
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
}  // namespace colour_isa

PixelFlags logistic_mixture_rows(const PixelArgs& a) {
  const int64_t nch = a.n_mix + a.channels * (a.channels == 3 ? 3 : 2) * a.n_mix;
  return reduce_pixel_rows(a.params, a.params_dtype, a.params_batch_stride, a.target, a.target_dtype,
                           a.target_batch_stride, a.batch, a.pixels, kTile, a.n_threads, a.recon, a.out_f64,
                           [&](auto prm, auto t, int64_t b, int64_t p0, int64_t n, double* sum, uint32_t* f) {
    using S = std::remove_cv_t<std::remove_pointer_t<decltype(prm)>>;
    S* g = a.grad ? static_cast<S*>(a.grad) + b * nch * a.pixels + p0 : nullptr;
    colour_isa::mix(prm, a.pixels, t, n, a.channels, a.n_mix, g, a.grad_scale, sum, f);
  });
}

}  // namespace elbits::cpu
