// pybind11 functions for the CUDA kernels (built only with ELBITS_WITH_CUDA).
// Launches are asynchronous on the stream Python passes; nothing here syncs.
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "cuda/kernels.h"

namespace py = pybind11;

namespace elbits {
namespace {

const void* cptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* mptr(uintptr_t p) { return reinterpret_cast<void*>(p); }

// Runs a launcher without the GIL. Each returns its launch status (nullptr, or the
// CUDA error's name), raised here once the GIL is held again.
template <class F>
void launch(F&& f) {
  const char* e;
  {
    py::gil_scoped_release nogil;
    e = f();
  }
  if (e) throw std::runtime_error(std::string("elbits CUDA launch failed: ") + e);
}

DType dt(int code) { return static_cast<DType>(code); }
double* f64p(uintptr_t p) { return static_cast<double*>(mptr(p)); }
int* i32p(uintptr_t p) { return static_cast<int*>(mptr(p)); }

// Bernoulli-shaped likelihoods (Bernoulli, continuous Bernoulli): [batch, n] rows, as
// bindings.cpp's bernoulli_like_rows.
using BernoulliRowsFn = const char* (*)(const void*, DType, int64_t, const void*, DType, int64_t, int64_t, int64_t,
                                        void*, double, void*, bool, double*, int*, bool, uintptr_t);

template <BernoulliRowsFn F>
void bernoulli_like_rows(uintptr_t logits, int logits_dtype, int64_t logits_row_stride, uintptr_t target,
                         int target_dtype, int64_t target_row_stride, int64_t batch, int64_t n, uintptr_t grad,
                         double grad_scale, uintptr_t recon, bool out_f64, uintptr_t partial, uintptr_t flags,
                         bool check_finite, uintptr_t stream) {
  launch([&] {
    return F(cptr(logits), dt(logits_dtype), logits_row_stride, cptr(target), dt(target_dtype), target_row_stride,
             batch, n, mptr(grad), grad_scale, mptr(recon), out_f64, f64p(partial), i32p(flags), check_finite, stream);
  });
}

// Per-subpixel likelihoods (logistic mixture, discretized Gaussian), as bindings.cpp's pixel_rows.
using PixelRowsFn = const char* (*)(const void*, DType, int64_t, const void*, DType, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, void*, double, void*, bool, double*, int*, bool, uintptr_t);

template <PixelRowsFn F>
void pixel_rows(uintptr_t params, int params_dtype, int64_t params_bs, uintptr_t target, int target_dtype,
                int64_t target_bs, int64_t batch, int64_t channels, int64_t pixels, int64_t n_mix, uintptr_t grad,
                double grad_scale, uintptr_t recon, bool out_f64, uintptr_t partial, uintptr_t flags, bool check_finite,
                uintptr_t stream) {
  launch([&] {
    return F(cptr(params), dt(params_dtype), params_bs, cptr(target), dt(target_dtype), target_bs, batch, channels,
             pixels, n_mix, mptr(grad), grad_scale, mptr(recon), out_f64, f64p(partial), i32p(flags), check_finite,
             stream);
  });
}

}  // namespace

void register_cuda(py::module_& m) {
  m.def("cuda_bernoulli_chunks_per_row", &cuda::bernoulli_chunks_per_row);
  m.def("cuda_bernoulli_nll_rows", &bernoulli_like_rows<&cuda::bernoulli_nll_rows>);
  m.def("cuda_gaussian_kl_rows",
        [](uintptr_t mu, int mu_dtype, int64_t mu_s0, int64_t mu_s1, uintptr_t logvar, int logvar_dtype, int64_t lv_s0,
           int64_t lv_s1, int64_t batch, int64_t z, uintptr_t kl, uintptr_t dlogvar, bool out_f64, uintptr_t flags,
           bool check_finite, uintptr_t stream) {
    launch([&] {
      return cuda::gaussian_kl_rows(cptr(mu), dt(mu_dtype), mu_s0, mu_s1, cptr(logvar), dt(logvar_dtype), lv_s0, lv_s1,
                                    batch, z, mptr(kl), mptr(dlogvar), out_f64, i32p(flags), check_finite, stream);
    });
  });
  m.def("cuda_scale_rows", [](uintptr_t g, uintptr_t out, int dtype, int64_t batch, int64_t n, uintptr_t scale,
                              int scale_dtype, int64_t scale_stride, double prescale, uintptr_t stream) {
    launch([&] {
      return cuda::scale_rows(cptr(g), mptr(out), dt(dtype), batch, n, cptr(scale), dt(scale_dtype), scale_stride,
                              prescale, stream);
    });
  });

  // ---- Colour / 8-bit likelihoods.
  m.def("cuda_categorical256_chunks_per_row", &cuda::categorical256_chunks_per_row);
  m.def("cuda_categorical256_forward",
        [](uintptr_t logits, int logits_dtype, int64_t logits_bs, uintptr_t target, int target_dtype, int64_t target_bs,
           int64_t batch, int64_t pixels, uintptr_t lse, uintptr_t recon, bool out_f64, uintptr_t partial,
           uintptr_t flags, bool check_finite, uintptr_t stream) {
    launch([&] {
      return cuda::categorical256_forward(cptr(logits), dt(logits_dtype), logits_bs, cptr(target), dt(target_dtype),
                                          target_bs, batch, pixels, mptr(lse), mptr(recon), out_f64, f64p(partial),
                                          i32p(flags), check_finite, stream);
    });
  });
  m.def("cuda_categorical256_backward",
        [](uintptr_t logits, int logits_dtype, int64_t logits_bs, uintptr_t target, int target_dtype, int64_t target_bs,
           int64_t batch, int64_t pixels, uintptr_t lse, uintptr_t scale, int scale_dtype, int64_t scale_stride,
           uintptr_t grad, uintptr_t stream) {
    launch([&] {
      return cuda::categorical256_backward(cptr(logits), dt(logits_dtype), logits_bs, cptr(target), dt(target_dtype),
                                           target_bs, batch, pixels, cptr(lse), cptr(scale), dt(scale_dtype),
                                           scale_stride, mptr(grad), stream);
    });
  });
  m.def("cuda_logistic_mixture_chunks_per_row", &cuda::logistic_mixture_chunks_per_row);
  m.def("cuda_logistic_mixture_rows", &pixel_rows<&cuda::logistic_mixture_rows>);
  m.def("cuda_discretized_gaussian_chunks_per_row", &cuda::discretized_gaussian_chunks_per_row);
  m.def("cuda_discretized_gaussian_rows", &pixel_rows<&cuda::discretized_gaussian_rows>);
  m.def("cuda_continuous_bernoulli_chunks_per_row", &cuda::continuous_bernoulli_chunks_per_row);
  m.def("cuda_continuous_bernoulli_rows", &bernoulli_like_rows<&cuda::continuous_bernoulli_rows>);
}

}  // namespace elbits
