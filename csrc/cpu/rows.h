// The fixed-order end of every per-sample reduction on the CPU: each row's chunk
// partials (float64) are added in chunk order, whatever thread computed them.
#pragma once
#include <cstdint>
#include <vector>

namespace elbits::cpu {

inline void finish_rows(const std::vector<double>& partial, int64_t batch, int64_t chunks, void* recon,
                        bool out_f64) {
  for (int64_t row = 0; row < batch; ++row) {
    double s = 0.0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[row * chunks + c];
    if (out_f64) static_cast<double*>(recon)[row] = s;
    else static_cast<float*>(recon)[row] = static_cast<float>(s);
  }
}

// OR of flag slot `slot` over every task (tasks store `stride` flags each).
inline bool any_flag(const std::vector<uint32_t>& flags, int stride, int slot) {
  for (size_t i = slot; i < flags.size(); i += stride)
    if (flags[i]) return true;
  return false;
}

}  // namespace elbits::cpu
