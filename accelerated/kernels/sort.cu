// DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS for float32 on the device (issue 12): support keys, an LSD
// radix sort (4 passes of 8 bits over tiles of NP_RADIX_TILE keys, one thread per tile, stable),
// and the runs of the sorted keys.  Per pass: np_radix_count writes each tile's 256 digit counts
// digit-major (counts[d * ntiles + t]); the host runs an exclusive scan over them (PyCUDA's
// scan kernel), which gives every (digit, tile) its first output slot; np_radix_scatter moves
// the keys.  Runs: np_run_heads flags, an exclusive scan of the flags, np_run_compact writes each
// run's key and start.  32-bit counters: the host keeps n below 2**32.  All per-element work is
// natprec_scalar.cuh's, which the host harness runs serially.
#include "natprec_scalar.cuh"

extern "C" __global__ void np_support_keys32(const uint32_t* __restrict__ x, np_i64 n, int by_value,
                                             uint32_t* __restrict__ keys) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    keys[i] = np_support_key32(x[i], by_value != 0);
}

extern "C" __global__ void np_radix_count(const uint32_t* __restrict__ keys, np_i64 n, int shift, np_i64 ntiles,
                                          uint32_t* __restrict__ counts) {
  const np_i64 t = (np_i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= ntiles) return;
  uint32_t cnt[NP_RADIX_DIGITS];
  for (int d = 0; d < NP_RADIX_DIGITS; ++d) cnt[d] = 0u;
  const np_i64 lo = t * NP_RADIX_TILE;
  const np_i64 len = lo + NP_RADIX_TILE <= n ? NP_RADIX_TILE : n - lo;
  np_radix_tile_count(keys + lo, len, shift, cnt);
  for (int d = 0; d < NP_RADIX_DIGITS; ++d) counts[(np_i64)d * ntiles + t] = cnt[d];
}

extern "C" __global__ void np_radix_scatter(const uint32_t* __restrict__ keys, np_i64 n, int shift, np_i64 ntiles,
                                            const uint32_t* __restrict__ offsets, uint32_t* __restrict__ out) {
  const np_i64 t = (np_i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= ntiles) return;
  uint32_t off[NP_RADIX_DIGITS];
  for (int d = 0; d < NP_RADIX_DIGITS; ++d) off[d] = offsets[(np_i64)d * ntiles + t];
  const np_i64 lo = t * NP_RADIX_TILE;
  const np_i64 len = lo + NP_RADIX_TILE <= n ? NP_RADIX_TILE : n - lo;
  np_radix_tile_scatter(keys + lo, len, shift, off, out);
}

extern "C" __global__ void np_run_heads(const uint32_t* __restrict__ sorted, np_i64 n, uint32_t* __restrict__ flags) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    flags[i] = np_run_head(sorted, i) ? 1u : 0u;
}

// pos: the exclusive scan of the flags.  ukeys[pos[i]] = sorted[i] and starts[pos[i]] = i at heads.
extern "C" __global__ void np_run_compact(const uint32_t* __restrict__ sorted, np_i64 n,
                                          const uint32_t* __restrict__ flags, const uint32_t* __restrict__ pos,
                                          uint32_t* __restrict__ ukeys, np_i64* __restrict__ starts) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (flags[i]) {
      ukeys[pos[i]] = sorted[i];
      starts[pos[i]] = i;
    }
  }
}
