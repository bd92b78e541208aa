// pybind11 module elbits._C: a thin layer from Python integers (pointers,
// sizes, strides, dtype codes) to the core. No libtorch: the op layer in
// python/elbits/ops/ owns tensors, validation and autograd.
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/isa_dispatch.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace py = pybind11;
using namespace elbits;

namespace {

const void* ptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* mut_ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }

// Bernoulli-shaped likelihoods (Bernoulli, continuous Bernoulli): [batch, n] rows, one flag set.
template <cpu::BernoulliFlags (*Fn)(const cpu::BernoulliArgs&)>
py::dict bernoulli_like_rows(uintptr_t logits, int logits_dtype, int64_t logits_row_stride, uintptr_t target,
                             int target_dtype, int64_t target_row_stride, int64_t batch, int64_t n, uintptr_t grad,
                             double grad_scale, uintptr_t recon, bool out_f64, int n_threads) {
  cpu::BernoulliArgs a{ptr(logits),
                       static_cast<DType>(logits_dtype),
                       logits_row_stride,
                       ptr(target),
                       static_cast<DType>(target_dtype),
                       target_row_stride,
                       batch,
                       n,
                       mut_ptr(grad),
                       mut_ptr(recon),
                       out_f64,
                       n_threads,
                       grad_scale};
  cpu::BernoulliFlags f;
  {
    py::gil_scoped_release nogil;
    f = Fn(a);
  }
  py::dict out;
  out["nonfinite_logits"] = f.nonfinite_logits;
  out["target_out_of_range"] = f.target_out_of_range;
  out["loss_overflow"] = f.loss_overflow;
  return out;
}

py::dict gaussian_kl_rows(uintptr_t mu, int mu_dtype, int64_t mu_s0, int64_t mu_s1, uintptr_t logvar, int logvar_dtype,
                          int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z, uintptr_t kl, uintptr_t dlogvar,
                          bool out_f64) {
  cpu::View2D m{ptr(mu), static_cast<DType>(mu_dtype), mu_s0, mu_s1};
  cpu::View2D lv{ptr(logvar), static_cast<DType>(logvar_dtype), lv_s0, lv_s1};
  cpu::KLFlags f;
  {
    py::gil_scoped_release nogil;
    f = cpu::gaussian_kl_rows(m, lv, batch, z, mut_ptr(kl), mut_ptr(dlogvar), out_f64);
  }
  py::dict out;
  out["nonfinite_mu"] = f.nonfinite_mu;
  out["nonfinite_logvar"] = f.nonfinite_logvar;
  return out;
}

void scale_rows(uintptr_t g, uintptr_t out, int dtype, int64_t batch, int64_t n, uintptr_t scale, int scale_dtype,
                int64_t scale_stride, double prescale, int n_threads) {
  py::gil_scoped_release nogil;
  cpu::scale_rows(ptr(g), mut_ptr(out), static_cast<DType>(dtype), batch, n, ptr(scale),
                  static_cast<DType>(scale_dtype), scale_stride, prescale, n_threads);
}

// ---- Colour / 8-bit likelihoods (categorical256, logistic mixture, discretized
// Gaussian, continuous Bernoulli).
py::dict pixel_flags(const cpu::PixelFlags& f) {
  py::dict out;
  out["nonfinite_params"] = f.nonfinite_params;
  out["target_level_out_of_range"] = f.target_level_out_of_range;
  return out;
}

cpu::CategoricalArgs categorical_args(uintptr_t logits, int logits_dtype, int64_t logits_bs, uintptr_t target,
                                      int target_dtype, int64_t target_bs, int64_t batch, int64_t pixels, uintptr_t lse,
                                      uintptr_t recon, bool out_f64, int n_threads) {
  return cpu::CategoricalArgs{ptr(logits),
                              static_cast<DType>(logits_dtype),
                              logits_bs,
                              ptr(target),
                              static_cast<DType>(target_dtype),
                              target_bs,
                              batch,
                              pixels,
                              mut_ptr(lse),
                              mut_ptr(recon),
                              out_f64,
                              n_threads};
}

py::dict categorical256_forward(uintptr_t logits, int logits_dtype, int64_t logits_bs, uintptr_t target,
                                int target_dtype, int64_t target_bs, int64_t batch, int64_t pixels, uintptr_t lse,
                                uintptr_t recon, bool out_f64, int n_threads) {
  const auto a = categorical_args(logits, logits_dtype, logits_bs, target, target_dtype, target_bs, batch, pixels, lse,
                                  recon, out_f64, n_threads);
  cpu::PixelFlags f;
  {
    py::gil_scoped_release nogil;
    f = cpu::categorical256_forward(a);
  }
  return pixel_flags(f);
}

void categorical256_backward(uintptr_t logits, int logits_dtype, int64_t logits_bs, uintptr_t target, int target_dtype,
                             int64_t target_bs, int64_t batch, int64_t pixels, uintptr_t lse, uintptr_t scale,
                             int scale_dtype, int64_t scale_stride, uintptr_t grad, int n_threads) {
  const auto a = categorical_args(logits, logits_dtype, logits_bs, target, target_dtype, target_bs, batch, pixels, lse,
                                  0, false, n_threads);
  py::gil_scoped_release nogil;
  cpu::categorical256_backward(a, ptr(scale), static_cast<DType>(scale_dtype), scale_stride, mut_ptr(grad));
}

template <cpu::PixelFlags (*Fn)(const cpu::PixelArgs&)>
py::dict pixel_rows(uintptr_t params, int params_dtype, int64_t params_bs, uintptr_t target, int target_dtype,
                    int64_t target_bs, int64_t batch, int64_t channels, int64_t pixels, int64_t n_mix, uintptr_t grad,
                    double grad_scale, uintptr_t recon, bool out_f64, int n_threads) {
  cpu::PixelArgs a{ptr(params),
                   static_cast<DType>(params_dtype),
                   params_bs,
                   ptr(target),
                   static_cast<DType>(target_dtype),
                   target_bs,
                   batch,
                   channels,
                   pixels,
                   n_mix,
                   mut_ptr(grad),
                   mut_ptr(recon),
                   out_f64,
                   n_threads,
                   grad_scale};
  cpu::PixelFlags f;
  {
    py::gil_scoped_release nogil;
    f = Fn(a);
  }
  return pixel_flags(f);
}

}  // namespace

#if defined(ELBITS_WITH_CUDA)
namespace elbits {
void register_cuda(py::module_& m);  // csrc/cuda/bind_cuda.cpp
}
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "elbits compiled core (CPU; CUDA when built with it). Internal: use elbits.elbo_terms.";
  m.def("bernoulli_nll_rows", &bernoulli_like_rows<cpu::bernoulli_nll_rows>);
  m.def("gaussian_kl_rows", &gaussian_kl_rows);
  m.def("scale_rows", &scale_rows);
  m.def("categorical256_forward", &categorical256_forward);
  m.def("categorical256_backward", &categorical256_backward);
  m.def("logistic_mixture_rows", &pixel_rows<cpu::logistic_mixture_rows>);
  m.def("discretized_gaussian_rows", &pixel_rows<cpu::discretized_gaussian_rows>);
  m.def("continuous_bernoulli_rows", &bernoulli_like_rows<cpu::continuous_bernoulli_rows>);
#if defined(ELBITS_WITH_CUDA)
  m.attr("has_cuda") = true;
  elbits::register_cuda(m);
#else
  m.attr("has_cuda") = false;
#endif
  m.def("use_openmp_runtime", [](const std::string& path) { return cpu::use_openmp_runtime(path.c_str()); },
        "Run parallel loops on the OpenMP runtime loaded from `path` (torch's).");
  m.def("parallel_backend", [] { return std::string(cpu::parallel_backend()); });
  m.def("cpu_isa", [] { return std::string(cpu::isa_kernels().name); },
        "The x86-64 level whose vector loops this CPU runs.");
}
