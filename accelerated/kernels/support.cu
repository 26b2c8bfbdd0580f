// DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS for float16 and bfloat16: a 65536-bin count of the
// canonical total-order keys (64-bit counters).  The support is the set of non-zero bins.
// nan_policy 'raise' is checked on the host before launch; 'omit' skips NaNs here.
#include "natprec_scalar.cuh"

extern "C" __global__ void np_support16(const uint16_t* __restrict__ x, np_i64 n, int kind,
                                        int by_value, int omit_nan, np_u64* __restrict__ counts) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint32_t b = x[i];
    if (omit_nan && np_is_nan_bits(kind, b)) continue;
    atomicAdd(&counts[np_support_key16(kind, b, by_value != 0)], 1ull);
  }
}

// |supp| from the 65536 counts (one block of 1024 threads).
extern "C" __global__ void np_count_nonzero65536(const np_u64* __restrict__ counts,
                                                 np_u64* __restrict__ out) {
  __shared__ np_u64 part[1024];
  np_u64 c = 0;
  for (int i = threadIdx.x; i < 65536; i += blockDim.x) c += counts[i] != 0ull;
  part[threadIdx.x] = c;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = part[0];
}
