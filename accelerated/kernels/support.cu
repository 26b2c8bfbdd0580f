// DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS for float16 and bfloat16: a 65536-bin count of the
// canonical total-order keys (64-bit counters).  The support is the set of non-zero bins.
// nan_policy 'raise' is checked on the host before launch; 'omit' skips NaNs here.
//
// Issue 12: no global atomics.  Two passes of 32768 keys (np_support_slot decides which
// element counts in which pass); in each, every block counts its contiguous share of x in
// 32768 shared 32-bit counters (128 KiB: the host opts in to that much dynamic shared memory),
// with 16-byte vector loads, and writes them as one row of `partial`; np_support16_reduce
// sums the rows into the 64-bit counts.  The host sizes the grid so that no block counts
// 2**32 elements.  The host harness runs the same slots and rows serially.
#include "natprec_scalar.cuh"

extern "C" __global__ void __launch_bounds__(1024) np_support16_pass(
    const uint16_t* __restrict__ x, np_i64 n, int kind, int by_value, int omit_nan, uint32_t base,
    uint32_t* __restrict__ partial) {
  extern __shared__ __align__(16) uint32_t s_cnt[];
  for (uint32_t w = threadIdx.x; w < NP_SUPPORT_PASS; w += blockDim.x) s_cnt[w] = 0u;
  __syncthreads();
  // This block's share: [lo, hi), lo a multiple of 8 elements (16 bytes).
  const np_i64 per = ((n + gridDim.x - 1) / gridDim.x + 7) & ~(np_i64)7;
  const np_i64 lo = (np_i64)blockIdx.x * per;
  const np_i64 hi = lo + per < n ? lo + per : n;
  const bool bv = by_value != 0, on = omit_nan != 0;
  if (lo < hi) {
    const bool aligned = (((size_t)x) & 15u) == 0u;
    const np_i64 nv = aligned ? (hi - lo) / 8 : 0;
    const uint4* xv = (const uint4*)(x + lo);
    for (np_i64 iv = threadIdx.x; iv < nv; iv += blockDim.x) {
      const uint4 raw = __ldg(xv + iv);
      const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t s0 = np_support_slot(kind, w[j] & 0xffffu, bv, on, base);
        const uint32_t s1 = np_support_slot(kind, w[j] >> 16, bv, on, base);
        if (s0 != NP_NO_SLOT) atomicAdd(&s_cnt[s0], 1u);
        if (s1 != NP_NO_SLOT) atomicAdd(&s_cnt[s1], 1u);
      }
    }
    for (np_i64 i = lo + nv * 8 + threadIdx.x; i < hi; i += blockDim.x) {
      const uint32_t s = np_support_slot(kind, x[i], bv, on, base);
      if (s != NP_NO_SLOT) atomicAdd(&s_cnt[s], 1u);
    }
  }
  __syncthreads();
  uint32_t* row = partial + (np_i64)blockIdx.x * NP_SUPPORT_PASS;
  for (uint32_t w = threadIdx.x; w < NP_SUPPORT_PASS; w += blockDim.x) row[w] = s_cnt[w];
}

// counts[base + s] += sum over rows of partial[row][s]  (one thread per slot).
extern "C" __global__ void np_support16_reduce(const uint32_t* __restrict__ partial, int nrows,
                                               uint32_t base, np_u64* __restrict__ counts) {
  const uint32_t s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= NP_SUPPORT_PASS) return;
  np_u64 t = 0;
  for (int r = 0; r < nrows; ++r) t += partial[(np_i64)r * NP_SUPPORT_PASS + s];
  counts[base + s] += t;
}
