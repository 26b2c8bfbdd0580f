// natprec_scalar.cuh — the per-element arithmetic of natprec's accelerated tier.
//
// Every function here is `__host__ __device__` under nvcc and a plain `static inline`
// function under a host C++ compiler, so the exact same source is
//   * compiled into the CUDA kernels (accelerated/kernels/*.cu, nvcc --fmad=false), and
//   * compiled with g++ -O2 -ffp-contract=off into accelerated/host_harness.cpp, which
//     tests/test_accelerated_host.py compares bit for bit against natprec.reference.
//
// Rules (issue 4): no FMA contraction, no fast-math, no flush-to-zero.  Every float
// operation below is a single IEEE operation in round-to-nearest-even; nothing relies on
// the hardware's float16/bfloat16 conversion (done with integer bit operations), on
// min/max intrinsics (NaN and signed-zero behaviour is spelled out), or on libm.
//
// The definitions mirrored here (see the reference for the normative text):
//   DEF-QUANTIZE   reference/codebook.py   idx = searchsorted(u, x, side='left')
//   DEF-FORMAT-ELEMENT reference/formats.py ElementFormat.quantize (signed zero, NaN codes)
//   DEF-MARGIN     reference/margin.py     γ = far-side gap, or (c'−x)−(x−c) rounded once
//   DEF-SUPPORT-*  reference/support.py    total-order keys, by value / by bits
//   DEF-HISTOGRAM  reference/entropy.py    k = floor((x−o)/Δ) with the "near integer" test
#ifndef NATPREC_SCALAR_CUH
#define NATPREC_SCALAR_CUH

#if defined(__CUDACC__)
#define NP_HD __host__ __device__ __forceinline__
#else
#include <cstring>
#include <math.h>
#define NP_HD static inline
#endif

#include <stdint.h>

typedef unsigned long long np_u64;
typedef long long np_i64;

// ---------------------------------------------------------------------------------------
// Bit casts and IEEE classification (integer-only: immune to FTZ/DAZ and to NaN compares).
// ---------------------------------------------------------------------------------------

NP_HD float np_f32_from_bits(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}

NP_HD uint32_t np_f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}

NP_HD double np_f64_from_bits(np_u64 b) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double((long long)b);
#else
  double f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}

NP_HD np_u64 np_f64_bits(double f) {
#if defined(__CUDA_ARCH__)
  return (np_u64)__double_as_longlong(f);
#else
  np_u64 b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}

// Input kinds (the `kind` argument of the harness and the kernel entry points).
enum { NP_F16 = 0, NP_BF16 = 1, NP_F32 = 2 };

// binary16 bits -> float32, exactly (subnormals normalised by shifting; NaN payload kept).
NP_HD float np_f16_to_f32(uint16_t h) {
  uint32_t s = ((uint32_t)h & 0x8000u) << 16;
  uint32_t e = ((uint32_t)h >> 10) & 0x1fu;
  uint32_t m = (uint32_t)h & 0x3ffu;
  uint32_t bits;
  if (e == 0x1fu) {
    bits = s | 0x7f800000u | (m << 13);
  } else if (e == 0u) {
    if (m == 0u) {
      bits = s;
    } else {
      uint32_t sh = 0;
      while ((m & 0x400u) == 0u) {
        m <<= 1;
        ++sh;
      }
      bits = s | ((113u - sh) << 23) | ((m & 0x3ffu) << 13);
    }
  } else {
    bits = s | ((e + 112u) << 23) | (m << 13);
  }
  return np_f32_from_bits(bits);
}

// bfloat16 bits -> float32, exactly.
NP_HD float np_bf16_to_f32(uint16_t h) { return np_f32_from_bits((uint32_t)h << 16); }

// Element of kind `kind` at raw bits `b` (16-bit kinds use the low half) -> float32, exactly.
NP_HD float np_to_f32(int kind, uint32_t b) {
  if (kind == NP_F16) return np_f16_to_f32((uint16_t)b);
  if (kind == NP_BF16) return np_bf16_to_f32((uint16_t)b);
  return np_f32_from_bits(b);
}

// NaN from bits (as reference/_domain.py nan_mask: |bits| > inf bits).
NP_HD bool np_is_nan_bits(int kind, uint32_t b) {
  if (kind == NP_F16) return (b & 0x7fffu) > 0x7c00u;
  if (kind == NP_BF16) return (b & 0x7fffu) > 0x7f80u;
  return (b & 0x7fffffffu) > 0x7f800000u;
}

NP_HD bool np_sign_bit(int kind, uint32_t b) {
  if (kind == NP_F32) return (b >> 31) != 0u;
  return ((b >> 15) & 1u) != 0u;
}

NP_HD bool np_is_finite_f64(double v) {
  return (np_f64_bits(v) & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
}

// ---------------------------------------------------------------------------------------
// DEF-QUANTIZE: numpy.searchsorted(u, x, side='left') = number of thresholds < x.
// u is ascending, NaN-free (thresholds are ±Inf or finite).  numpy orders NaN after every
// number, so a NaN x gets n (its index is then overwritten by the NaN rules anyway).
// Comparisons are IEEE `<` on exact float32 (or float64) values: −0.0 == +0.0, as numpy.
// ---------------------------------------------------------------------------------------

template <typename T>
NP_HD np_i64 np_search_left(const T* u, np_i64 n, T x) {
  if (x != x) return n;
  np_i64 lo = 0, hi = n;
  while (lo < hi) {
    np_i64 mid = lo + ((hi - lo) >> 1);
    if (u[mid] < x) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// The same index by a branchless compare-count (issue 12): for ascending, NaN-free u,
// searchsorted(u, x, 'left') = #{j : u[j] < x}.  Tables of at most NP_CC thresholds are
// padded with +Inf to NP_CC entries (+Inf < x is never true), so every element does the
// same NP_CC comparisons with no branch and no dependent load.  The kernels keep the padded
// table in shared memory; the host harness pads it with the same function.
#define NP_CC 16

#if defined(__CUDACC__)
#define NP_UNROLL _Pragma("unroll")
#else
#define NP_UNROLL
#endif

NP_HD void np_pad_thresholds(const float* u, np_i64 nu, float* pad) {
  const float inf = np_f32_from_bits(0x7f800000u);
  for (int j = 0; j < NP_CC; ++j) pad[j] = (j < nu) ? u[j] : inf;
}

NP_HD np_i64 np_count_less(const float* pad, float x) {
  int c = 0;
  NP_UNROLL
  for (int j = 0; j < NP_CC; ++j) c += (pad[j] < x) ? 1 : 0;
  return (np_i64)c;
}

// The kernels' index of one element: compare-count when a padded table is given (nu <= NP_CC),
// else the binary search.  NaN -> nu, as np_search_left.
NP_HD np_i64 np_quantize_index(const float* u, np_i64 nu, const float* pad, float x) {
  if (x != x) return nu;
  if (pad) return np_count_less(pad, x);
  return np_search_left<float>(u, nu, x);
}

// DEF-FORMAT-ELEMENT: the encoding of one element, given its codebook index.
//   enc[idx]                     (encodings already cast to the format's code dtype)
//   | sign  if signed zero, the input's sign bit is set and the code is the zero code
//   NaN input: nan_code, | sign when the input's sign bit is set
// `flags`: bit 0 signed_zero (and a zero codeword exists), bit 1 nan_code valid.
struct np_code_rule {
  uint32_t flags;
  uint32_t zero_code;
  uint32_t sign_code;  // 1 << sign_bit in the code dtype (0 if none)
  uint32_t nan_code;
  uint32_t code_mask;  // 0xff or 0xffff: the code dtype's width
};

NP_HD uint32_t np_element_code(np_i64 idx, bool sign, bool nan, const uint16_t* enc, np_code_rule r) {
  if (nan) {
    uint32_t c = r.nan_code & r.code_mask;
    return sign ? ((c | r.sign_code) & r.code_mask) : c;
  }
  uint32_t c = (uint32_t)enc[idx] & r.code_mask;
  if ((r.flags & 1u) && sign && c == (r.zero_code & r.code_mask)) c = (c | r.sign_code) & r.code_mask;
  return c;
}

// ---------------------------------------------------------------------------------------
// DEF-MARGIN, exactly as reference/margin.py computes it (float64):
//   far side of c (x <= c toward a larger neighbour, x >= c toward a smaller one): the
//   exact gap |c' − c| rounded once (precomputed on the host from rationals);
//   otherwise a_hi − b_hi when both TwoSum differences are exact and finite (the same
//   float64 operation as the reference, so the same bits, signed zeros included), else the
//   correctly rounded value of the exact real (c' − x) − (x − c), which the reference gets
//   from Fractions: here a correctly rounded sum of three doubles (c', c, −2x) by
//   Boldo–Melquiond's rounding-to-odd algorithm (exact zero -> +0.0, as float(Fraction(0))).
// ---------------------------------------------------------------------------------------

struct np_dd {
  double hi, lo;
};

// a − b = hi + lo (Knuth TwoSum on a and −b), operation for operation as _two_diff.
NP_HD np_dd np_two_diff(double a, double b) {
  double s = a - b;
  double bb = s - a;
  double lo = (a - (s - bb)) + (-b - bb);
  np_dd r;
  r.hi = s;
  r.lo = lo;
  return r;
}

// Knuth TwoSum: a + b = s + e exactly (no overflow).
NP_HD np_dd np_two_sum(double a, double b) {
  double s = a + b;
  double bb = s - a;
  double e = (a - (s - bb)) + (b - bb);
  np_dd r;
  r.hi = s;
  r.lo = e;
  return r;
}

// a + b rounded to odd (emulated: RN sum, then step to the odd neighbour if inexact).
NP_HD double np_add_round_odd(double a, double b) {
  np_dd t = np_two_sum(a, b);
  if (t.lo == 0.0) return t.hi;
  np_u64 bits = np_f64_bits(t.hi);
  if ((bits & 1ull) != 0ull) return t.hi;
  bool away = (t.lo > 0.0) == (t.hi > 0.0);  // the exact sum lies farther from zero than hi
  return np_f64_from_bits(away ? bits + 1ull : bits - 1ull);
}

// RN(a + b + c) for finite doubles whose partial sums do not overflow.
NP_HD double np_sum3_rn(double a, double b, double c) {
  np_dd u = np_two_sum(b, c);
  np_dd t = np_two_sum(a, u.hi);
  double v = np_add_round_odd(t.lo, u.lo);
  double z = t.hi + v;
  return z == 0.0 ? 0.0 : z;
}

// One side of γ: neighbour cn of c; `toward_up`: cn > c.
NP_HD double np_margin_side(double x, double c, double cn, double gap, bool toward_up) {
  bool far = toward_up ? (x <= c) : (x >= c);
  if (far) return gap;
  np_dd a, b;
  if (toward_up) {
    a = np_two_diff(cn, x);  // cn − x
    b = np_two_diff(x, c);   // x − c
  } else {
    a = np_two_diff(x, cn);  // x − cn
    b = np_two_diff(c, x);   // c − x
  }
  double near_v = a.hi - b.hi;
  bool exact = a.lo == 0.0 && b.lo == 0.0 && np_is_finite_f64(a.hi) && np_is_finite_f64(b.hi);
  if (exact) return near_v;
  double x2 = x + x;  // exact: x is a float16/bfloat16/float32 value (no overflow in float64)
  return toward_up ? np_sum3_rn(cn, c, -x2) : np_sum3_rn(x2, -cn, -c);
}

// γ(x) for codebook index idx (k values v, k−1 gaps).  NaN x -> NaN; k == 1 -> +Inf.
// The two sides combine as numpy.minimum(γ_up, γ_dn) does for non-NaN operands.
NP_HD double np_margin(double x, np_i64 idx, const double* v, const double* gaps, np_i64 k) {
  if (x != x) return np_f64_from_bits(0x7ff8000000000000ull);
  double inf = np_f64_from_bits(0x7ff0000000000000ull);
  if (k <= 1) return inf;
  double c = v[idx];
  double g = inf;
  if (idx < k - 1) g = np_margin_side(x, c, v[idx + 1], gaps[idx], true);
  if (idx > 0) {
    double gd = np_margin_side(x, c, v[idx - 1], gaps[idx - 1], false);
    g = (g <= gd) ? g : gd;
  }
  return g;
}

// One element of the fused element-format kernel (quantize.cu), as the kernels and the host
// harness both run it: code, histogram bin (cells, NaN last) and, when wanted, the margin.
// u/pad: quantizing thresholds (pad non-null iff nu <= NP_CC); mu/mpad: the base codebook's
// thresholds for margins (mu == u when the quantizing codebook is the base one).
struct np_qelem {
  uint32_t code;
  uint32_t bin;
  bool nan;
  double margin;
};

NP_HD np_qelem np_quantize_element(int kind, uint32_t b, const float* u, np_i64 nu, const float* pad,
                                   const uint16_t* enc, np_code_rule r, const float* mu, np_i64 nmu,
                                   const float* mpad, const double* v, const double* gaps, np_i64 k,
                                   bool want_margin) {
  np_qelem e;
  e.nan = np_is_nan_bits(kind, b);
  const float xf = np_to_f32(kind, b);
  const np_i64 idx = np_quantize_index(u, nu, pad, xf);
  e.code = np_element_code(idx, np_sign_bit(kind, b), e.nan, enc, r);
  e.bin = e.nan ? (uint32_t)(nu + 1) : (uint32_t)idx;
  e.margin = 0.0;
  if (want_margin) {
    const np_i64 midx = (mu == u) ? idx : np_quantize_index(mu, nmu, mpad, xf);
    e.margin = np_margin((double)xf, e.nan ? 0 : midx, v, gaps, k);
  }
  return e;
}

// Order-preserving key of a non-negative, non-NaN margin (for an atomicMin on uint64):
// −0.0 and +0.0 share the key of +0.0.
NP_HD np_u64 np_margin_min_key(double g) {
  np_u64 b = np_f64_bits(g);
  return (b == 0x8000000000000000ull) ? 0ull : b;
}

// ---------------------------------------------------------------------------------------
// DEF-TOTAL-ORDER / DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS for 16-bit dtypes.
// key = bits ^ (negative ? 0xffff : 0x8000).  By value: −0.0 joins +0.0 and every NaN joins
// the canonical quiet +NaN (inf_bits | top mantissa bit, sign clear).
// Returns a key in [0, 65535]; `nan` elements are handled by the caller's nan_policy.
// ---------------------------------------------------------------------------------------

NP_HD uint32_t np_total_order_key16(uint32_t bits) {
  bits &= 0xffffu;
  return (bits & 0x8000u) ? (bits ^ 0xffffu) : (bits ^ 0x8000u);
}

NP_HD uint32_t np_support_key16(int kind, uint32_t bits, bool by_value) {
  uint32_t key = np_total_order_key16(bits);
  if (!by_value) return key;
  if (key == 0x7fffu) key = 0x8000u;  // −0.0 -> +0.0
  if (np_is_nan_bits(kind, bits)) {
    uint32_t qnan = (kind == NP_F16) ? (0x7c00u | 0x200u) : (0x7f80u | 0x40u);
    key = qnan | 0x8000u;
  }
  return key;
}

// The support kernel's pass structure (issue 12): 65536 keys in two passes of 32768, each
// counted in one block's shared memory.  The slot of an element in pass `base` (0 or 32768),
// or NP_NO_SLOT when it belongs to the other pass or is an omitted NaN.
#define NP_SUPPORT_PASS 32768u
#define NP_NO_SLOT 0xffffffffu

NP_HD uint32_t np_support_slot(int kind, uint32_t bits, bool by_value, bool omit_nan, uint32_t base) {
  if (omit_nan && np_is_nan_bits(kind, bits)) return NP_NO_SLOT;
  const uint32_t key = np_support_key16(kind, bits, by_value);
  const uint32_t s = key - base;  // unsigned: keys below base wrap to large values
  return s < NP_SUPPORT_PASS ? s : NP_NO_SLOT;
}

// ---------------------------------------------------------------------------------------
// DEF-HISTOGRAM: k = floor((x − o)/Δ) in float64 and the reference's "near an integer" test
// |r − rint(r)| <= 8·spacing(max(|r|, 1)); near elements are decided by the host with
// rationals (reference/entropy.py _exact_floor_div).  Returns 1 if near, 2 if r is not
// finite or |r| >= 2**53 (the reference then raises), else 0.
// ---------------------------------------------------------------------------------------

NP_HD double np_spacing_pos(double v) {  // numpy.spacing for finite v > 0
  return np_f64_from_bits(np_f64_bits(v) + 1ull) - v;
}

NP_HD int np_hist_bin(double x, double origin, double delta, np_i64* k_out) {
  double r = (x - origin) / delta;
  double ar = r < 0.0 ? -r : r;
  if (!np_is_finite_f64(r) || ar >= 9007199254740992.0) {
    *k_out = 0;
    return 2;
  }
  double k = floor(r);
  double ri = rint(r);
  double d = r - ri;
  double ad = d < 0.0 ? -d : d;
  double m = ar >= 1.0 ? ar : 1.0;
  *k_out = (np_i64)k;
  return (ad <= 8.0 * np_spacing_pos(m)) ? 1 : 0;
}

// ---------------------------------------------------------------------------------------
// DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS for float32 (issue 12): total-order keys, an LSD radix
// sort of them (4 passes of 8 bits) and run lengths.  The sort is tile-serial: each tile of
// NP_RADIX_TILE keys is counted and scattered in order by one thread, so it is stable by
// construction, and the host harness runs the very same tile functions serially.
// ---------------------------------------------------------------------------------------

#define NP_RADIX_TILE 4096
#define NP_RADIX_DIGITS 256

// The support key of float32 bits: total order; by value −0.0 joins +0.0 and every NaN joins
// the canonical quiet +NaN (0x7fc00000), as the reference's canonical keys.
NP_HD uint32_t np_support_key32(uint32_t b, bool by_value) {
  uint32_t key = (b & 0x80000000u) ? ~b : (b ^ 0x80000000u);
  if (!by_value) return key;
  if (key == 0x7fffffffu) key = 0x80000000u;
  if ((b & 0x7fffffffu) > 0x7f800000u) key = 0x7fc00000u | 0x80000000u;
  return key;
}

NP_HD uint32_t np_radix_digit(uint32_t key, int shift) { return (key >> shift) & 0xffu; }

// cnt[d] += number of keys in k[0..len) whose digit at `shift` is d.
NP_HD void np_radix_tile_count(const uint32_t* k, np_i64 len, int shift, uint32_t* cnt) {
  for (np_i64 i = 0; i < len; ++i) cnt[np_radix_digit(k[i], shift)] += 1u;
}

// Stable scatter of one tile: off[d] is where the tile's next key with digit d goes.
NP_HD void np_radix_tile_scatter(const uint32_t* k, np_i64 len, int shift, uint32_t* off, uint32_t* out) {
  for (np_i64 i = 0; i < len; ++i) {
    const uint32_t key = k[i];
    out[off[np_radix_digit(key, shift)]++] = key;
  }
}

// Whether sorted key i starts a run (the first key, or one that differs from its predecessor).
NP_HD bool np_run_head(const uint32_t* k, np_i64 i) { return i == 0 || k[i] != k[i - 1]; }

// ---------------------------------------------------------------------------------------
// Block formats (issue 12): DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-MX, DEF-FORMAT-NVFP4, as
// reference/formats.py computes them.  One block is processed by np_block_quantize_one, which
// the kernel (block.cu) runs once per block and the host harness runs serially.  Inputs are
// finite (the reference's prepare_block_input has checked them).
// ---------------------------------------------------------------------------------------

NP_HD float np_abs_f32(float x) { return np_f32_from_bits(np_f32_bits(x) & 0x7fffffffu); }

NP_HD float np_f32_max_finite() { return np_f32_from_bits(0x7f7fffffu); }

// numpy.minimum(a, b) for non-NaN a, b (the reference's clamps to FLT_MAX).
NP_HD float np_min_f32(float a, float b) { return b < a ? b : a; }

// 2**k as a double for -1022 <= k <= 1023 (exact; no libm).
NP_HD double np_pow2_f64(int k) { return np_f64_from_bits((np_u64)(k + 1023) << 52); }

// floor(log2 a) for a positive finite float32 (subnormals included), exactly.
NP_HD int np_floor_log2_f32(float a) {
  const uint32_t b = np_f32_bits(a) & 0x7fffffffu;
  const int e = (int)(b >> 23);
  if (e != 0) return e - 127;
  uint32_t m = b & 0x7fffffu;
  int p = -1;
  while (m != 0u) {
    m >>= 1;
    ++p;
  }
  return p - 149;
}

// floor(log2 m) for a positive finite normal double.
NP_HD int np_floor_log2_f64(double m) { return (int)((np_f64_bits(m) >> 52) & 0x7ffu) - 1023; }

// DEF-FORMAT-MX: the shared exponent e of a block with max |x| = amax (float32, >= 0).
// floor: e = floor(log2 amax) - emax_elem; rceil: the smallest e with amax <= m * 2**e;
// clamped to [-127, 127]; amax = 0 gives -127.  (m * 2**e is exact in float64.)
NP_HD int np_mx_exponent(float amax, bool rceil, int emax_elem, double max_finite) {
  if (!(amax > 0.0f)) return -127;
  int e;
  if (!rceil) {
    e = np_floor_log2_f32(amax) - emax_elem;
  } else {
    const double a = (double)amax;
    e = np_floor_log2_f32(amax) - np_floor_log2_f64(max_finite);
    if (a > max_finite * np_pow2_f64(e)) e += 1;
    if (a <= max_finite * np_pow2_f64(e - 1)) e -= 1;
  }
  return e < -127 ? -127 : (e > 127 ? 127 : e);
}

// The NVFP4 tensor scales from the tensor's max |x| A (float32), each step in float32:
// S_enc = min(fl32(2688 / A), FLT_MAX), or 1 when A = 0 or S_enc = 0; S_dec = fl32(1 / S_enc);
// factor = fl32(S_enc * fl32(1/6)).
struct np_nvfp4_tensor {
  float s_enc, s_dec, factor;
};

NP_HD np_nvfp4_tensor np_nvfp4_tensor_scales(float A) {
  np_nvfp4_tensor t;
  const float big = np_f32_max_finite();
  float s_enc = 1.0f;
  if (A > 0.0f) s_enc = np_min_f32(2688.0f / A, big);
  if (s_enc == 0.0f) s_enc = 1.0f;
  t.s_enc = s_enc;
  t.s_dec = 1.0f / s_enc;
  const float sixth = 1.0f / 6.0f;
  t.factor = s_enc * sixth;
  return t;
}

enum { NP_BLOCK_ABSMAX = 0, NP_BLOCK_MX_FLOOR = 1, NP_BLOCK_MX_RCEIL = 2, NP_BLOCK_NVFP4 = 3 };

struct np_block_params {
  int family;
  // element codebook: float32 thresholds (absmax, NVFP4; pad when <= NP_CC) or float64 (MX)
  const float* u;
  const float* pad;
  const double* u64;
  np_i64 nu;
  const uint16_t* enc;
  np_code_rule rule;
  // MX
  int emax_elem;
  double max_finite;
  // NVFP4: the E4M3 scale codebook (float32 thresholds for ties to even, encodings, values)
  const float* us;
  np_i64 nus;
  const uint16_t* encs;
  const double* vs;
  np_nvfp4_tensor t;
  // absmax, DEF-BLOCK-LAYOUT: a block shorter than this is normalised by division, y = fl32(x / s) —
  // the flat layout's partial last block, as bitsandbytes (the block size there; 0 in the last-axis
  // layout, whose partial blocks multiply as its full ones)
  np_i64 divide_below;
};

// Block j of a (rows x ncols) array in blocks of bs along the last axis (nb blocks per row):
// its first element's flat index and its length (the last block of a row may be partial).  The
// flat layout (DEF-BLOCK-LAYOUT) is rows = 1, ncols = n: its last block has n mod bs elements.
NP_HD void np_block_span(np_i64 j, np_i64 nb, np_i64 ncols, np_i64 bs, np_i64* start, np_i64* len) {
  const np_i64 r = j / nb, b = j - r * nb;
  *start = r * ncols + b * bs;
  *len = (b + 1) * bs <= ncols ? bs : ncols - b * bs;
}

// Element j of a block: raw bits -> float32 (kind: NP_F16, NP_BF16, NP_F32).
template <typename B>
NP_HD float np_block_x(int kind, const B* x, np_i64 j) {
  return np_to_f32(kind, (uint32_t)x[j]);
}

// The code of a float32 value y of the element format (saturating; y is not NaN).
NP_HD uint32_t np_element_code_f32(float y, const np_block_params& p) {
  const np_i64 idx = np_quantize_index(p.u, p.nu, p.pad, y);
  return np_element_code(idx, (np_f32_bits(y) >> 31) != 0u, false, p.enc, p.rule);
}

// One block of `len` elements: writes their codes, returns the block's scale as stored
// (absmax: the float32 bits of s; MX: the E8M0 code e + 127; NVFP4: the E4M3 code).
template <typename B>
NP_HD uint32_t np_block_quantize_one(int kind, const B* x, np_i64 len, const np_block_params& p,
                                     uint16_t* codes) {
  float amax = 0.0f;
  for (np_i64 j = 0; j < len; ++j) {
    const float a = np_abs_f32(np_block_x(kind, x, j));
    amax = a > amax ? a : amax;
  }
  if (p.family == NP_BLOCK_ABSMAX) {
    // y = fl32(x * fl32(1/s)); s = 0: y = x * 0 (= the reference's x / 1 in the flat layout: ±0 either
    // way); fl32(1/s) = Inf, or the flat layout's partial last block (len < divide_below): y = fl32(x / s).
    const float s = amax;
    const float r = s > 0.0f ? 1.0f / s : 0.0f;
    const bool divide = s > 0.0f && ((np_f32_bits(r) & 0x7fffffffu) == 0x7f800000u || len < p.divide_below);
    for (np_i64 j = 0; j < len; ++j) {
      const float xj = np_block_x(kind, x, j);
      const float y = divide ? xj / s : xj * r;
      codes[j] = (uint16_t)np_element_code_f32(y, p);
    }
    return np_f32_bits(s);
  }
  if (p.family == NP_BLOCK_MX_FLOOR || p.family == NP_BLOCK_MX_RCEIL) {
    // y = x * 2**-e, exact in float64; the element decision on float64 thresholds.
    const int e = np_mx_exponent(amax, p.family == NP_BLOCK_MX_RCEIL, p.emax_elem, p.max_finite);
    const double sc = np_pow2_f64(-e);
    for (np_i64 j = 0; j < len; ++j) {
      const float xj = np_block_x(kind, x, j);
      const double y = (double)xj * sc;
      const np_i64 idx = np_search_left<double>(p.u64, p.nu, y);
      codes[j] = (uint16_t)np_element_code(idx, (np_f32_bits(xj) >> 31) != 0u, false, p.enc, p.rule);
    }
    return (uint32_t)(e + 127);
  }
  // NVFP4: s = e4m3(min(fl32(a * factor), FLT_MAX)) (ties to even, saturating);
  // k = min(fl32(1 / fl32(s * S_dec)), FLT_MAX); code = e2m1(fl32(x * k)).
  const float big = np_f32_max_finite();
  const float pre = np_min_f32(amax * p.t.factor, big);
  const np_i64 sidx = np_search_left<float>(p.us, p.nus, pre);
  const float s = (float)p.vs[sidx];
  const float k = np_min_f32(1.0f / (s * p.t.s_dec), big);
  for (np_i64 j = 0; j < len; ++j) {
    const float y = np_block_x(kind, x, j) * k;
    codes[j] = (uint16_t)np_element_code_f32(y, p);
  }
  return (uint32_t)p.encs[sidx];
}

// ---------------------------------------------------------------------------------------
// DEF-COLLISION-CENSUS / DEF-CENSUS-PAIRS for block formats: a cell is (block, encoding).
// Each block (at most NP_CENSUS_SEG elements) is sorted in place by one 64-bit key per element,
// (encoding << 32) | the float32 value's support key by value (−0.0 as +0.0), where the
// encoding of an element equal to 0 is taken without its sign bit (`zero_sign`), as the
// reference's CellPairs; a key that differs from its predecessor in the block starts a
// (cell, value) pair.  A segmented sort: one thread per block, insertion sort (blocks are
// 16, 32 or 64 elements), so no key needs the block index and no sort crosses a block.
// ---------------------------------------------------------------------------------------

#define NP_CENSUS_SEG 64

// The census key of one element: float32 bits (finite: the block input was checked) and its code.
NP_HD np_u64 np_census_key(uint32_t xbits32, uint32_t code, uint32_t zero_sign) {
  const bool zero = (xbits32 & 0x7fffffffu) == 0u;
  const uint32_t c = zero ? (code & ~zero_sign) : code;
  return ((np_u64)c << 32) | (np_u64)np_support_key32(xbits32, true);
}

// k[0..len) ascending (insertion sort; len <= NP_CENSUS_SEG).
NP_HD void np_census_sort_segment(np_u64* k, np_i64 len) {
  for (np_i64 i = 1; i < len; ++i) {
    const np_u64 v = k[i];
    np_i64 j = i - 1;
    while (j >= 0 && k[j] > v) {
      k[j + 1] = k[j];
      --j;
    }
    k[j + 1] = v;
  }
}

// One block of len <= NP_CENSUS_SEG elements: its keys sorted into out[0..len), and heads[i] = 1
// where out[i] starts a (cell, value) pair (the block's first key, or one unequal to its predecessor).
NP_HD void np_census_block(const uint32_t* x, const uint16_t* codes, np_i64 len, uint32_t zero_sign, np_u64* out,
                           uint32_t* heads) {
  np_u64 k[NP_CENSUS_SEG];
  for (np_i64 i = 0; i < len; ++i) k[i] = np_census_key(x[i], codes[i], zero_sign);
  np_census_sort_segment(k, len);
  for (np_i64 i = 0; i < len; ++i) {
    out[i] = k[i];
    heads[i] = (i == 0 || k[i] != k[i - 1]) ? 1u : 0u;
  }
}

// The cell id of the pair whose sorted key `key` is at flat position i of a (rows x ncols) array in
// blocks of bs along its rows (nb per row): (block << nbits) + encoding, block = row * nb + column / bs.
NP_HD np_i64 np_census_cell(np_i64 i, np_i64 ncols, np_i64 bs, np_i64 nb, int nbits, np_u64 key) {
  const np_i64 r = i / ncols, b = (i - r * ncols) / bs;
  return ((r * nb + b) << nbits) + (np_i64)(key >> 32);
}

#endif  // NATPREC_SCALAR_CUH
