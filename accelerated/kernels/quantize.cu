// Element-format quantization, fused: codes + cell histogram + per-element margin + min margin.
// One pass over x (float16 / bfloat16 / float32 bits).  64-bit indices and counters throughout.
// Arithmetic: natprec_scalar.cuh (compiled with --fmad=false; no fast-math, no FTZ); every
// element goes through np_quantize_element, the function the host harness runs too.
//
// Layout for speed (issue 12; the decisions are the same comparisons as before):
//   * thresholds and encodings in shared memory (tables of <= NP_TAB_SHARED thresholds);
//     <= NP_CC thresholds: padded with +Inf and searched by a branchless compare-count;
//   * 16-byte vector loads (4 float32 or 8 float16/bfloat16 per load) when x is 16-byte
//     aligned, vector code stores when the code array is aligned too; a scalar tail;
//   * the cell histogram privatized: per-thread shared counters (no atomics) for
//     nbins <= NP_HIST_THREAD_MAX, per-warp shared counters for nbins <= NP_HIST_WARP_MAX,
//     global 64-bit atomics beyond; flushed once per block;
//   * the min margin reduced per thread, per warp (shuffles), one atomicMin per warp.
// The host (accelerated/device.py) chooses hist_mode/tab_shared and the dynamic shared size
// with the same constants (np_quantize_smem below is the formula).
#include "natprec_scalar.cuh"

#define NP_QBLOCK 256
#define NP_TAB_SHARED 2048
#define NP_HIST_THREAD_MAX 32
#define NP_HIST_WARP_MAX 512

enum { NP_HIST_NONE = 0, NP_HIST_THREAD = 1, NP_HIST_WARP = 2, NP_HIST_GLOBAL = 3 };

template <typename B>
struct np_vec;  // one 16-byte load
template <>
struct np_vec<uint32_t> {
  static const int N = 4;
};
template <>
struct np_vec<uint16_t> {
  static const int N = 8;
};

template <int KIND, typename B, bool MARGIN>
__device__ __forceinline__ void np_quantize_body(
    const B* __restrict__ x, np_i64 n, const float* __restrict__ u, np_i64 nu,
    const uint16_t* __restrict__ enc, np_code_rule rule, uint16_t* __restrict__ codes,
    np_u64* __restrict__ hist, const float* __restrict__ mu, np_i64 nmu,
    const double* __restrict__ v, const double* __restrict__ gaps, np_i64 k,
    double* __restrict__ margin, np_u64* __restrict__ min_key, int hist_mode, int tab_shared) {
  extern __shared__ __align__(16) unsigned char np_smem[];
  __shared__ float s_pad[NP_CC];
  __shared__ float s_mpad[NP_CC];
  const int tid = threadIdx.x;
  const int nthreads = blockDim.x;
  const np_i64 nbins = nu + 2;
  // Dynamic shared memory: [histogram counters][u][mu][enc] (np_quantize_smem's order).
  unsigned int* s_hist = (unsigned int*)np_smem;
  np_i64 hist_words = 0;
  if (hist_mode == NP_HIST_THREAD) hist_words = nbins * nthreads;
  if (hist_mode == NP_HIST_WARP) hist_words = nbins * (nthreads >> 5);
  float* s_u = (float*)(s_hist + hist_words);
  const bool split_mu = mu != u;
  float* s_mu = s_u + (tab_shared ? nu : 0);
  uint16_t* s_enc = (uint16_t*)(s_mu + ((tab_shared && split_mu) ? nmu : 0));
  for (np_i64 w = tid; w < hist_words; w += nthreads) s_hist[w] = 0u;
  if (tab_shared) {
    for (np_i64 j = tid; j < nu; j += nthreads) s_u[j] = u[j];
    if (split_mu)
      for (np_i64 j = tid; j < nmu; j += nthreads) s_mu[j] = mu[j];
    for (np_i64 j = tid; j <= nu; j += nthreads) s_enc[j] = enc[j];
  }
  if (tid == 0) {
    np_pad_thresholds(u, nu, s_pad);
    np_pad_thresholds(mu, nmu, s_mpad);
  }
  __syncthreads();
  const float* tu = tab_shared ? s_u : u;
  const float* tmu = split_mu ? (tab_shared ? s_mu : mu) : tu;
  const uint16_t* tenc = tab_shared ? s_enc : enc;
  const float* pad = nu <= NP_CC ? s_pad : (const float*)0;
  const float* mpad = split_mu ? (nmu <= NP_CC ? s_mpad : (const float*)0) : pad;
  const bool want_margin = MARGIN && (margin != 0 || min_key != 0);
  np_u64 local_min = ~0ull;
  unsigned int* my_hist = s_hist;
  np_i64 hist_stride = 1;
  if (hist_mode == NP_HIST_THREAD) {
    my_hist = s_hist + tid;
    hist_stride = nthreads;
  } else if (hist_mode == NP_HIST_WARP) {
    my_hist = s_hist + (np_i64)(tid >> 5) * nbins;
  }

#define NP_ONE(IDX, BITS, CODE_OUT)                                                               \
  do {                                                                                          \
    const np_qelem e = np_quantize_element(KIND, (BITS), tu, nu, pad, tenc, rule, tmu, nmu, mpad, v, \
                                           gaps, k, want_margin);                                \
    CODE_OUT = (uint16_t)e.code;                                                                \
    if (hist_mode == NP_HIST_THREAD) my_hist[(np_i64)e.bin * hist_stride] += 1u;                \
    else if (hist_mode == NP_HIST_WARP) atomicAdd(&my_hist[e.bin], 1u);                         \
    else if (hist_mode == NP_HIST_GLOBAL) atomicAdd(&hist[e.bin], 1ull);                        \
    if (MARGIN && margin) margin[(IDX)] = e.margin;                                             \
    if (MARGIN && min_key && !e.nan) {                                                                  \
      const np_u64 key = np_margin_min_key(e.margin);                                           \
      local_min = key < local_min ? key : local_min;                                            \
    }                                                                                           \
  } while (0)

  const int VN = np_vec<B>::N;
  const np_i64 gtid = (np_i64)blockIdx.x * nthreads + tid;
  const np_i64 gstride = (np_i64)nthreads * (np_i64)gridDim.x;
  const bool x_aligned = (((size_t)x) & 15u) == 0u;
  const bool c_aligned = codes == 0 || (((size_t)codes) & (size_t)(2 * VN - 1)) == 0u;
  const np_i64 nvec = x_aligned ? n / VN : 0;
  for (np_i64 iv = gtid; iv < nvec; iv += gstride) {
    const uint4 raw = __ldg((const uint4*)x + iv);
    const B* xb = (const B*)&raw;
    uint16_t c[np_vec<B>::N];
    NP_UNROLL
    for (int j = 0; j < VN; ++j) {
      NP_ONE(iv * VN + j, (uint32_t)xb[j], c[j]);
    }
    if (codes) {
      if (c_aligned) {
        if (VN == 4) {
          uint2 w;
          w.x = (uint32_t)c[0] | ((uint32_t)c[1] << 16);
          w.y = (uint32_t)c[2] | ((uint32_t)c[3] << 16);
          *((uint2*)(codes + iv * VN)) = w;
        } else {
          uint4 w;
          w.x = (uint32_t)c[0] | ((uint32_t)c[1] << 16);
          w.y = (uint32_t)c[2] | ((uint32_t)c[3] << 16);
          w.z = (uint32_t)c[4 % VN] | ((uint32_t)c[5 % VN] << 16);
          w.w = (uint32_t)c[6 % VN] | ((uint32_t)c[7 % VN] << 16);
          *((uint4*)(codes + iv * VN)) = w;
        }
      } else {
        for (int j = 0; j < VN; ++j) codes[iv * VN + j] = c[j];
      }
    }
  }
  for (np_i64 i = nvec * VN + gtid; i < n; i += gstride) {  // tail (or everything, unaligned)
    uint16_t c0;
    NP_ONE(i, (uint32_t)x[i], c0);
    if (codes) codes[i] = c0;
  }
#undef NP_ONE

  if (MARGIN && min_key) {
    for (int off = 16; off > 0; off >>= 1) {
      const np_u64 o = __shfl_down_sync(0xffffffffu, local_min, off);
      local_min = o < local_min ? o : local_min;
    }
    if ((tid & 31) == 0 && local_min != ~0ull) atomicMin(min_key, local_min);
  }
  if (hist_mode == NP_HIST_THREAD || hist_mode == NP_HIST_WARP) {
    __syncthreads();
    const np_i64 copies = hist_mode == NP_HIST_THREAD ? nthreads : (nthreads >> 5);
    for (np_i64 bin = tid; bin < nbins; bin += nthreads) {
      np_u64 s = 0;
      for (np_i64 c = 0; c < copies; ++c)
        s += hist_mode == NP_HIST_THREAD ? s_hist[bin * nthreads + c] : s_hist[c * nbins + bin];
      if (s) atomicAdd(&hist[bin], s);
    }
  }
}

#define NP_QUANTIZE_ENTRY(NAME, KIND, B, MARGIN)                                                       \
  extern "C" __global__ void __launch_bounds__(NP_QBLOCK) NAME(                               \
      const B* x, np_i64 n, const float* u, np_i64 nu, const uint16_t* enc, uint32_t flags,    \
      uint32_t zero_code, uint32_t sign_code, uint32_t nan_code, uint32_t code_mask,            \
      uint16_t* codes, np_u64* hist, const float* mu, np_i64 nmu, const double* v,             \
      const double* gaps, np_i64 k, double* margin, np_u64* min_key, int hist_mode,            \
      int tab_shared) {                                                                         \
    np_code_rule rule;                                                                        \
    rule.flags = flags;                                                                       \
    rule.zero_code = zero_code;                                                               \
    rule.sign_code = sign_code;                                                               \
    rule.nan_code = nan_code;                                                                 \
    rule.code_mask = code_mask;                                                               \
    np_quantize_body<KIND, B, MARGIN>(x, n, u, nu, enc, rule, codes, hist, mu, nmu, v, gaps, k, margin, \
                              min_key, hist_mode, tab_shared);                                 \
  }

// With margins (per element and/or the min) and without (codes and histogram only: fewer
// registers, higher occupancy; margin and min_key must be null).
NP_QUANTIZE_ENTRY(np_quantize_f16, NP_F16, uint16_t, true)
NP_QUANTIZE_ENTRY(np_quantize_bf16, NP_BF16, uint16_t, true)
NP_QUANTIZE_ENTRY(np_quantize_f32, NP_F32, uint32_t, true)
NP_QUANTIZE_ENTRY(np_quantize_codes_f16, NP_F16, uint16_t, false)
NP_QUANTIZE_ENTRY(np_quantize_codes_bf16, NP_BF16, uint16_t, false)
NP_QUANTIZE_ENTRY(np_quantize_codes_f32, NP_F32, uint32_t, false)
