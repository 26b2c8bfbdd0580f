// Element-format dequantization: a gather from the exact float64 decode table (codes are
// validated on the host, before launch, with the reference's rules).
#include "natprec_scalar.cuh"

extern "C" __global__ void np_dequantize_gather(const uint32_t* __restrict__ codes, np_i64 n,
                                                const double* __restrict__ table,
                                                double* __restrict__ out) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = table[codes[i]];
}
