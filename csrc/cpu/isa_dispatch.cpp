// Picks the table of per-ISA loop bodies (isa_dispatch.h) from what the CPU reports.
#include "isa_dispatch.h"

namespace elbits::cpu {
namespace {

IsaKernels choose() {
  IsaKernels k{};
#if defined(ELBITS_X86_ISAS)
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
                  __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (v4) {
    isa_v4::fill(k);
    k.name = "x86-64-v4 (AVX-512)";
    return k;
  }
  if (v3) {
    isa_v3::fill(k);
    k.name = "x86-64-v3 (AVX2)";
    return k;
  }
#endif
  isa_base::fill(k);
  k.name = "baseline";
  return k;
}

}  // namespace

const IsaKernels& isa_kernels() {
  static const IsaKernels k = choose();
  return k;
}

}  // namespace elbits::cpu
