// pybind11 module elbits._C: a thin layer from Python integers (pointers,
// sizes, strides, dtype codes) to the core. No libtorch: the op layer in
// python/elbits/ops/ owns tensors, validation and autograd.
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/isa_kernels.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace py = pybind11;
using namespace elbits;

namespace {

const void* ptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* mut_ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }

py::dict bernoulli_nll_rows(uintptr_t logits, int logits_dtype, int64_t logits_row_stride, uintptr_t target,
                            int target_dtype, int64_t target_row_stride, int64_t batch, int64_t n,
                            uintptr_t grad, uintptr_t recon, bool out_f64, int n_threads) {
  cpu::BernoulliArgs a{ptr(logits), static_cast<DType>(logits_dtype), logits_row_stride, ptr(target),
                       static_cast<DType>(target_dtype), target_row_stride, batch, n, mut_ptr(grad),
                       mut_ptr(recon), out_f64, n_threads};
  cpu::BernoulliFlags f;
  {
    py::gil_scoped_release nogil;
    f = cpu::bernoulli_nll_rows(a);
  }
  py::dict out;
  out["nonfinite_logits"] = f.nonfinite_logits;
  out["target_out_of_range"] = f.target_out_of_range;
  out["loss_overflow"] = f.loss_overflow;
  return out;
}

py::dict gaussian_kl_rows(uintptr_t mu, int mu_dtype, int64_t mu_s0, int64_t mu_s1, uintptr_t logvar,
                          int logvar_dtype, int64_t lv_s0, int64_t lv_s1, int64_t batch, int64_t z,
                          uintptr_t kl, uintptr_t dlogvar, bool out_f64) {
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

void scale_rows(uintptr_t g, uintptr_t out, int dtype, int64_t batch, int64_t n, uintptr_t scale,
                int scale_dtype, int64_t scale_stride, int n_threads) {
  py::gil_scoped_release nogil;
  cpu::scale_rows(ptr(g), mut_ptr(out), static_cast<DType>(dtype), batch, n, ptr(scale),
                  static_cast<DType>(scale_dtype), scale_stride, n_threads);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "elbits compiled core (CPU; CUDA when built with it). Internal: use elbits.elbo_terms.";
  m.def("bernoulli_nll_rows", &bernoulli_nll_rows);
  m.def("gaussian_kl_rows", &gaussian_kl_rows);
  m.def("scale_rows", &scale_rows);
  m.attr("has_cuda") = false;
  m.def("use_openmp_runtime", [](const std::string& path) { return cpu::use_openmp_runtime(path.c_str()); },
        "Run parallel loops on the OpenMP runtime loaded from `path` (torch's).");
  m.def("parallel_backend", [] { return std::string(cpu::parallel_backend()); });
  m.def("cpu_isa", [] { return std::string(cpu::isa_kernels().name); },
        "The x86-64 level whose vector loops this CPU runs.");
}
