// The dispatch table of the Bernoulli and scale hot loops, one per x86-64 ISA level.
// Their bodies (isa_loop_bodies.cpp) are built three times (baseline, x86-64-v3 =
// AVX2/FMA/F16C, x86-64-v4 = AVX-512) with a different ELBITS_ISA_NS each, and each
// build fills a table; isa_kernels() (isa_dispatch.cpp) picks one at first use from
// what the CPU reports. The wheel itself assumes only baseline x86-64.
#pragma once
#include <cstdint>

namespace elbits::cpu {

// Bernoulli chunk: x (logits), t (target), g (nullable gradient, times gs; written
// with streaming stores if `stream`), n elements; writes the chunk's NLL sum (nats)
// and three flags: non-finite x, t outside [0, 1] (or NaN), and finite inputs whose
// loss overflowed float32.
using BernoulliChunkFn = void (*)(const void* x, const void* t, void* g, double gs, bool stream, int64_t n, double* sum,
                                  uint32_t* flags);
// out[i] = g[i] * s over n elements (g and out of one storage type).
using ScaleFn = void (*)(const void* g, void* out, int64_t n, float s);

// Storage slots: logits f32 / f16 / bf16; targets f32 / f16 / bf16 / u8-or-bool / f64.
struct IsaKernels {
  const char* name;
  BernoulliChunkFn bernoulli[3][5];
  ScaleFn scale[3];
};

const IsaKernels& isa_kernels();

namespace isa_base {
void fill(IsaKernels& k);
}
namespace isa_v3 {
void fill(IsaKernels& k);
}
namespace isa_v4 {
void fill(IsaKernels& k);
}

}  // namespace elbits::cpu
