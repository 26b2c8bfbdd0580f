// Element-format quantization, fused: codes + cell histogram + per-element margin + min margin.
// One pass over x (float16 / bfloat16 / float32 bits).  64-bit indices and counters throughout.
// Arithmetic: natprec_scalar.cuh (compiled with --fmad=false; no fast-math, no FTZ).
#include "natprec_scalar.cuh"

#define NP_SHARED_BINS 4096  // cell histograms up to this many bins use 32-bit shared counters

template <int KIND, typename B>
__device__ __forceinline__ void np_quantize_body(
    const B* __restrict__ x, np_i64 n,
    const float* __restrict__ u, np_i64 nu,            // quantization thresholds (float32-exact)
    const uint16_t* __restrict__ enc, np_code_rule rule,
    uint16_t* __restrict__ codes,                       // nullable
    np_u64* __restrict__ hist,                          // nullable: nu + 2 bins (cells, then NaN)
    const float* __restrict__ mu, np_i64 nmu,           // margin thresholds (may equal u)
    const double* __restrict__ v, const double* __restrict__ gaps, np_i64 k,
    double* __restrict__ margin,                        // nullable
    np_u64* __restrict__ min_key) {                     // nullable: atomicMin of margin keys
  extern __shared__ unsigned int sh_hist[];
  const np_i64 nbins = nu + 2;
  const bool use_shared = hist != 0 && nbins <= NP_SHARED_BINS;
  if (use_shared) {
    for (np_i64 b = threadIdx.x; b < nbins; b += blockDim.x) sh_hist[b] = 0u;
    __syncthreads();
  }
  np_u64 local_min = ~0ull;
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint32_t b = (uint32_t)x[i];
    const bool nan = np_is_nan_bits(KIND, b);
    const float xf = np_to_f32(KIND, b);
    const np_i64 idx = np_search_left<float>(u, nu, xf);
    if (codes) codes[i] = (uint16_t)np_element_code(idx, np_sign_bit(KIND, b), nan, enc, rule);
    if (hist) {
      const np_i64 bin = nan ? nu + 1 : idx;
      if (use_shared) atomicAdd(&sh_hist[bin], 1u);
      else atomicAdd(&hist[bin], 1ull);
    }
    if (margin || min_key) {
      const np_i64 midx = (mu == u) ? idx : np_search_left<float>(mu, nmu, xf);
      const double g = np_margin((double)xf, nan ? 0 : midx, v, gaps, k);
      if (margin) margin[i] = g;
      if (!nan) {
        const np_u64 key = np_margin_min_key(g);
        local_min = key < local_min ? key : local_min;
      }
    }
  }
  if (min_key) {
    for (int off = 16; off > 0; off >>= 1) {
      const np_u64 o = __shfl_down_sync(0xffffffffu, local_min, off);
      local_min = o < local_min ? o : local_min;
    }
    if ((threadIdx.x & 31) == 0 && local_min != ~0ull) atomicMin(min_key, local_min);
  }
  if (use_shared) {
    __syncthreads();
    for (np_i64 b = threadIdx.x; b < nbins; b += blockDim.x)
      if (sh_hist[b]) atomicAdd(&hist[b], (np_u64)sh_hist[b]);
  }
}

#define NP_QUANTIZE_ENTRY(NAME, KIND, B)                                                        \
  extern "C" __global__ void NAME(                                                            \
      const B* x, np_i64 n, const float* u, np_i64 nu, const uint16_t* enc, uint32_t flags,    \
      uint32_t zero_code, uint32_t sign_code, uint32_t nan_code, uint32_t code_mask,            \
      uint16_t* codes, np_u64* hist, const float* mu, np_i64 nmu, const double* v,             \
      const double* gaps, np_i64 k, double* margin, np_u64* min_key) {                         \
    np_code_rule rule;                                                                        \
    rule.flags = flags;                                                                       \
    rule.zero_code = zero_code;                                                               \
    rule.sign_code = sign_code;                                                               \
    rule.nan_code = nan_code;                                                                 \
    rule.code_mask = code_mask;                                                               \
    np_quantize_body<KIND, B>(x, n, u, nu, enc, rule, codes, hist, mu, nmu, v, gaps, k, margin, \
                              min_key);                                                       \
  }

NP_QUANTIZE_ENTRY(np_quantize_f16, NP_F16, uint16_t)
NP_QUANTIZE_ENTRY(np_quantize_bf16, NP_BF16, uint16_t)
NP_QUANTIZE_ENTRY(np_quantize_f32, NP_F32, uint32_t)
