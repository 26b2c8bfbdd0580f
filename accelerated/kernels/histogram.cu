// DEF-HISTOGRAM: bin indices k = floor((x − o)/Δ) (float64, as the reference), their range,
// the list of "near an integer" elements the host decides exactly with rationals, and a
// dense 64-bit count over [kmin, kmax].
#include "natprec_scalar.cuh"

extern "C" __global__ void np_hist_bins(const void* __restrict__ x, int kind, np_i64 n, double origin,
                                        double delta, np_i64* __restrict__ k_out,
                                        np_i64* __restrict__ kmin, np_i64* __restrict__ kmax,
                                        np_u64* __restrict__ n_near, np_i64* __restrict__ near_idx,
                                        np_u64* __restrict__ n_bad) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  np_i64 lo = 0x7fffffffffffffffll, hi = -0x7fffffffffffffffll - 1;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    np_i64 k;
    const int st = np_hist_bin((double)np_to_f32(kind, b), origin, delta, &k);
    if (st == 2) {
      atomicAdd(n_bad, 1ull);
      continue;
    }
    if (st == 1) near_idx[atomicAdd(n_near, 1ull)] = i;
    k_out[i] = k;
    lo = k < lo ? k : lo;
    hi = k > hi ? k : hi;
  }
  atomicMin((long long*)kmin, (long long)lo);
  atomicMax((long long*)kmax, (long long)hi);
}

extern "C" __global__ void np_hist_count(const np_i64* __restrict__ k, np_i64 n, np_i64 kmin,
                                         np_u64* __restrict__ counts) {
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    atomicAdd(&counts[k[i] - kmin], 1ull);
}
