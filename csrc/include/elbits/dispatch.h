// Storage-type dispatch on the host, shared by the CPU kernels and the CUDA
// launchers: each calls f(T{}) with T the storage type behind a DType code.
#pragma once
#include <cstdint>

#include "dtypes.h"

namespace elbits {

// A floating dtype: float, double, half_t or bf16_t.
template <class F>
void dispatch_float(DType d, F&& f) {
  switch (d) {
    case DType::Float64: f(double{}); break;
    case DType::Float16: f(half_t{}); break;
    case DType::BFloat16: f(bf16_t{}); break;
    default: f(float{}); break;
  }
}

// Integer image levels: uint8 or int64.
template <class F>
void dispatch_level(DType d, F&& f) {
  if (d == DType::Int64) f(int64_t{});
  else f(uint8_t{});
}

// A target: a floating dtype, or bytes (uint8, or bool stored as 0/1 bytes) that each
// kernel reads in its own way (the Bernoulli as the value, the continuous Bernoulli as a level).
template <class F>
void dispatch_target(DType d, F&& f) {
  if (d == DType::UInt8 || d == DType::Bool) f(uint8_t{});
  else dispatch_float(d, static_cast<F&&>(f));
}

}  // namespace elbits
