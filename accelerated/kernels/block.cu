// Block formats (DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-MX, DEF-FORMAT-NVFP4): per-block scales and
// element codes.  Blocks run along the last axis of a (rows x ncols) array, the last block of a
// row partial (as the reference's zero padding: zeros never raise a block's max).  The flat
// layout (DEF-BLOCK-LAYOUT, absmax only) is launched as rows = 1, ncols = n with `flat` set: its
// partial last block is normalised by division, as bitsandbytes (np_block_params.divide_below).
// One thread per block runs np_block_quantize_one (natprec_scalar.cuh), the function the host harness runs.
// NVFP4 first needs the tensor's max |x|: np_tensor_amax (an atomicMax on the float bits, which
// order as unsigned integers for non-negative floats), then np_nvfp4_scales (one thread).
#include "natprec_scalar.cuh"

template <typename B>
__device__ __forceinline__ void np_block_body(const B* __restrict__ x, int kind, np_i64 rows, np_i64 ncols,
                                              np_i64 bs, const np_block_params& p,
                                              uint16_t* __restrict__ codes, uint32_t* __restrict__ scales) {
  const np_i64 nb = (ncols + bs - 1) / bs;
  const np_i64 total = rows * nb;
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 j = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; j < total; j += stride) {
    np_i64 start, len;
    np_block_span(j, nb, ncols, bs, &start, &len);
    scales[j] = np_block_quantize_one<B>(kind, x + start, len, p, codes + start);
  }
}

#define NP_BLOCK_ENTRY(NAME, B)                                                                   \
  extern "C" __global__ void NAME(                                                              \
      const B* x, int kind, np_i64 rows, np_i64 ncols, np_i64 bs, int family, int flat,          \
      const float* u, np_i64 nu, const double* u64, const uint16_t* enc, uint32_t flags,         \
      uint32_t zero_code, uint32_t sign_code, uint32_t nan_code, uint32_t code_mask,             \
      int emax_elem, double max_finite,                                                          \
      const float* us, np_i64 nus, const uint16_t* encs, const double* vs, const float* tensor3,   \
      uint16_t* codes, uint32_t* scales) {                                                        \
    __shared__ float s_pad[NP_CC];                                                              \
    if (threadIdx.x == 0 && u != 0) np_pad_thresholds(u, nu, s_pad);                            \
    __syncthreads();                                                                            \
    np_block_params p;                                                                          \
    p.family = family;                                                                          \
    p.u = u;                                                                                    \
    p.pad = (u != 0 && nu <= NP_CC) ? s_pad : (const float*)0;                                  \
    p.u64 = u64;                                                                                \
    p.nu = nu;                                                                                  \
    p.enc = enc;                                                                                \
    p.rule.flags = flags;                                                                       \
    p.rule.zero_code = zero_code;                                                               \
    p.rule.sign_code = sign_code;                                                               \
    p.rule.nan_code = nan_code;                                                                 \
    p.rule.code_mask = code_mask;                                                               \
    p.emax_elem = emax_elem;                                                                    \
    p.max_finite = max_finite;                                                                  \
    p.us = us;                                                                                  \
    p.nus = nus;                                                                                \
    p.encs = encs;                                                                              \
    p.vs = vs;                                                                                  \
    p.t.s_enc = tensor3 ? tensor3[0] : 1.0f;                                                    \
    p.t.s_dec = tensor3 ? tensor3[1] : 1.0f;                                                    \
    p.t.factor = tensor3 ? tensor3[2] : 1.0f;                                                   \
    p.divide_below = flat ? bs : 0;                                                             \
    np_block_body<B>(x, kind, rows, ncols, bs, p, codes, scales);                               \
  }

NP_BLOCK_ENTRY(np_block_quantize16, uint16_t)
NP_BLOCK_ENTRY(np_block_quantize32, uint32_t)

// max |x| over the tensor as float32 bits (out must start at 0).
extern "C" __global__ void np_tensor_amax(const void* __restrict__ x, int kind, np_i64 n,
                                          uint32_t* __restrict__ out) {
  uint32_t m = 0u;
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    const uint32_t a = np_f32_bits(np_to_f32(kind, b)) & 0x7fffffffu;
    m = a > m ? a : m;
  }
  for (int off = 16; off > 0; off >>= 1) {
    const uint32_t o = __shfl_down_sync(0xffffffffu, m, off);
    m = o > m ? o : m;
  }
  if ((threadIdx.x & 31) == 0 && m) atomicMax(out, m);
}

// tensor3 = {S_enc, S_dec, factor} from the amax bits (one thread).
extern "C" __global__ void np_nvfp4_scales(const uint32_t* __restrict__ amax_bits, float* __restrict__ tensor3) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    const np_nvfp4_tensor t = np_nvfp4_tensor_scales(np_f32_from_bits(*amax_bits));
    tensor3[0] = t.s_enc;
    tensor3[1] = t.s_dec;
    tensor3[2] = t.factor;
  }
}
