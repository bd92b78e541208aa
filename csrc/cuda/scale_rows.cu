// Backward of a per-sample sum whose per-element gradient the forward stored, on
// CUDA: the CPU's csrc/cpu/scale_rows.cpp, one read and one write per element.
#include <cuda_runtime.h>

#include "common.cuh"
#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "kernels.h"

namespace elbits::cuda {
namespace {
using namespace common;

constexpr int64_t kChunk = 16384;  // elements per block

// One block per (row, chunk), as in the Bernoulli forward: the row's upstream scale is one value per
// block, so a block whose row needs nothing (in place, scale == prescale: every row of a
// mean() loss) leaves at once instead of launching a thread per gradient element.
template <class T, class ST>
__global__ void scale_kernel(const T* g, T* out, int64_t n, int64_t chunks, const ST* __restrict__ scale,
                             int64_t scale_stride, double prescale) {
  const int64_t row = blockIdx.x / chunks;
  const int64_t begin = (blockIdx.x % chunks) * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  using acc_t = compute_t<T>;
  const double given = static_cast<double>(scale[row * scale_stride]);
  // The forward stored g * prescale: in place with the expected scale, nothing to do.
  if (given == prescale && out == g) return;
  const acc_t s = static_cast<acc_t>(given / prescale);
  for (int64_t i = row * n + begin + threadIdx.x; i < row * n + end; i += kThreads) st(out + i, to_float(g[i]) * s);
}

}  // namespace

const char* scale_rows(const void* g, void* out, DType dtype, int64_t batch, int64_t n, const void* scale,
                       DType scale_dtype, int64_t scale_stride, double prescale, uintptr_t stream_handle) {
  if (batch * n == 0) return nullptr;
  const cudaStream_t stream = as_stream(stream_handle);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const unsigned blocks = static_cast<unsigned>(batch * chunks);
  dispatch_float(dtype, [&](auto g_tag) {
    using T = decltype(g_tag);
    if (scale_dtype == DType::Float64)
      scale_kernel<T, double><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(g), static_cast<T*>(out), n,
                                                               chunks, static_cast<const double*>(scale), scale_stride,
                                                               prescale);
    else
      scale_kernel<T, float><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(g), static_cast<T*>(out), n, chunks,
                                                              static_cast<const float*>(scale), scale_stride, prescale);
  });
  return launch_status();
}

}  // namespace elbits::cuda
