// The bodies of the per-ISA hot loops (the table: isa_dispatch.h). Everything here is inlined math
// from csrc/include/elbits, so each copy is vectorised for its own ISA.
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "elbits/bernoulli.h"
#include "elbits/dtypes.h"
#include "isa_dispatch.h"

#ifndef ELBITS_ISA_NS
#error "compile with -DELBITS_ISA_NS=isa_base|isa_v3|isa_v4"
#endif

namespace elbits::cpu::ELBITS_ISA_NS {
namespace {

// `omp simd` (compiled with -fopenmp-simd: no OpenMP runtime is linked) lets the
// compiler keep one partial sum per vector lane; without it, IEEE rules forbid
// reordering the float sum and the loop would stay scalar. The order is fixed
// for a given ISA level, so results repeat run to run.
// Each block's float sum covers few enough elements per lane that rounding
// stays near float eps even when every element has the same value (worst case
// for a running sum); blocks are added in float64.
constexpr int64_t kBlock = 512;

// Input checks ride on the loss itself so the hot loop pays two min/max ops per
// element for them: a NaN or Inf logit (or a NaN target) makes the chunk's sum
// non-finite, and only then is the chunk scanned again to say which tensor it was.
// Targets outside [0, 1] leave the sum finite, hence the min/max reductions.
template <class LT, class TT>
void rescan(const LT* x, const TT* t, int64_t n, uint32_t* flags) {
  for (int64_t i = 0; i < n; ++i) {
    const float xv = to_float(x[i]);
    const float tv = to_float(t[i]);
    flags[0] |= not_finite(xv);
    flags[1] |= !(tv >= 0.0f && tv <= 1.0f);
  }
  flags[2] |= !(flags[0] | flags[1]);  // finite inputs, overflowed sum
}

// n bytes from src to dst with non-temporal (streaming) stores: the lines go to
// memory without being read first and without evicting what the caches hold.
void stream_bytes(char* dst, const char* src, int64_t n) {
#if defined(__x86_64__)
#if defined(__AVX512F__)
  constexpr int64_t kW = 64;
#elif defined(__AVX__)
  constexpr int64_t kW = 32;
#else
  constexpr int64_t kW = 16;
#endif
  const int64_t mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(dst) % kW);
  int64_t i = mis == 0 ? 0 : (kW - mis < n ? kW - mis : n);
  std::memcpy(dst, src, static_cast<size_t>(i));
  for (; i + kW <= n; i += kW) {
#if defined(__AVX512F__)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
#elif defined(__AVX__)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
#else
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
#endif
  }
  std::memcpy(dst + i, src + i, static_cast<size_t>(n - i));
#else
  std::memcpy(dst, src, static_cast<size_t>(n));
#endif
}

// kGrad: write the gradient (times gs). stream: through an L1-resident block and
// streaming stores (for working sets larger than the caches; see bernoulli.cpp).
template <class LT, class TT, bool kGrad>
void bernoulli_loop(const LT* x, const TT* t, LT* g, float gs, bool stream, int64_t n, double* sum, uint32_t* flags) {
  double total = 0.0;
  float t_min = 0.0f, t_max = 0.0f;
  alignas(64) LT block[kBlock];
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t len = start + kBlock < n ? kBlock : n - start;
    const LT* xb = x + start;
    const TT* tb = t + start;
    LT* gb = kGrad ? (stream ? block : g + start) : nullptr;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc) reduction(min : t_min) reduction(max : t_max)
    for (int64_t i = 0; i < len; ++i) {
      const float xv = to_float(xb[i]);
      const float tv = to_float(tb[i]);
      float nll, grad;
      bernoulli_nll(xv, tv, nll, grad);
      acc += nll;
      if constexpr (kGrad) gb[i] = from_float<LT>(grad * gs);
      t_min = tv < t_min ? tv : t_min;
      t_max = tv > t_max ? tv : t_max;
    }
    if (kGrad && stream)
      stream_bytes(reinterpret_cast<char*>(g + start), reinterpret_cast<const char*>(block),
                   len * static_cast<int64_t>(sizeof(LT)));
    total += acc;
  }
#if defined(__x86_64__)
  if (kGrad && stream) _mm_sfence();  // order the streaming stores before the result is used
#endif
  *sum = total;
  flags[0] = 0;
  flags[1] = (t_min < 0.0f) | (t_max > 1.0f);
  flags[2] = 0;
  if (not_finite(total)) rescan(x, t, n, flags);
}

template <class LT, class TT>
void bernoulli_chunk(const void* x, const void* t, void* g, double gs, bool stream, int64_t n, double* sum,
                     uint32_t* flags) {
  const LT* xl = static_cast<const LT*>(x);
  const TT* tt = static_cast<const TT*>(t);
  const float gsf = static_cast<float>(gs);
  if (g) bernoulli_loop<LT, TT, true>(xl, tt, static_cast<LT*>(g), gsf, stream, n, sum, flags);
  else bernoulli_loop<LT, TT, false>(xl, tt, nullptr, gsf, false, n, sum, flags);
}

template <class T>
void scale(const void* g, void* out, int64_t n, float s) {
  const T* gi = static_cast<const T*>(g);
  T* o = static_cast<T*>(out);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = from_float<T>(to_float(gi[i]) * s);
}

template <class LT>
void fill_row(BernoulliChunkFn (&row)[5]) {
  row[0] = bernoulli_chunk<LT, float>;
  row[1] = bernoulli_chunk<LT, half_t>;
  row[2] = bernoulli_chunk<LT, bf16_t>;
  row[3] = bernoulli_chunk<LT, uint8_t>;
  row[4] = bernoulli_chunk<LT, double>;  // a probability read as float, like the other targets
}

}  // namespace

void fill(IsaKernels& k) {
  fill_row<float>(k.bernoulli[0]);
  fill_row<half_t>(k.bernoulli[1]);
  fill_row<bf16_t>(k.bernoulli[2]);
  k.scale[0] = scale<float>;
  k.scale[1] = scale<half_t>;
  k.scale[2] = scale<bf16_t>;
}

}  // namespace elbits::cpu::ELBITS_ISA_NS
