// Launch helpers shared by every CUDA kernel file (namespace common): the block size,
// the fixed-order block reduction, the finishing kernel that adds a row's chunk
// partials in order, stream handles and launch status. The per-element math itself
// is only ever the shared headers in csrc/include/elbits.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "elbits/dispatch.h"
#include "elbits/dtypes.h"
#include "kernels.h"

namespace elbits::cuda::common {
namespace {

constexpr int kThreads = 256;

// Sum over a block of kThreads threads in a fixed order (shuffle tree per warp,
// then the warp sums in warp order); the result is valid in thread 0.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = 0.0;
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_sums[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  return v;
}

// Grids are 1-D, block = row * chunks + chunk (no 65535 limit on the batch).
// Thread 0 of the block stores the block's partial sum and ORs in the flag bit
// of each problem any thread of the block saw (one atomic per bad block only).
// Every thread of the block must call it (no early return before).
__device__ __forceinline__ void finish_block(double acc, bool bad_values, int values_bit, bool bad_target,
                                             int target_bit, double* partial, int* flags) {
  const int any_values = __syncthreads_or(bad_values);
  const int any_target = __syncthreads_or(bad_target);
  const double s = block_sum(acc);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = s;  // grid = rows x chunks, flattened row-major
    const int bits = (any_values ? values_bit : 0) | (any_target ? target_bit : 0);
    if (bits) atomicOr(flags, bits);
  }
}

// recon[row] = sum of the row's chunk partials, in chunk order.
template <class OT>
__global__ void finish_rows(const double* __restrict__ partial, int64_t chunks, int64_t batch, OT* out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= batch) return;
  double s = 0.0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[row * chunks + c];
  out[row] = static_cast<OT>(s);
}

inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

inline unsigned blocks_for(int64_t total) { return static_cast<unsigned>((total + kThreads - 1) / kThreads); }

// The launch status of the kernels just queued: nullptr, or the CUDA error's name.
inline const char* launch_status() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

inline void launch_finish(const double* partial, int64_t chunks, int64_t batch, void* recon, bool out_f64,
                          cudaStream_t stream) {
  if (out_f64)
    finish_rows<double>
        <<<blocks_for(batch), kThreads, 0, stream>>>(partial, chunks, batch, static_cast<double*>(recon));
  else
    finish_rows<float><<<blocks_for(batch), kThreads, 0, stream>>>(partial, chunks, batch, static_cast<float*>(recon));
}

}  // namespace
}  // namespace elbits::cuda::common
