// Host build of natprec_scalar.cuh for tests/test_accelerated_host.py (called through ctypes).
// Build: g++ -std=c++17 -O2 -ffp-contract=off -fno-fast-math -shared -fPIC -I kernels
//        host_harness.cpp -o libnatprec_host.so
// `__host__ __device__` is defined away (NP_HD = static inline) when not compiled by nvcc,
// so these loops run the very functions the kernels run, element by element.
#include "natprec_scalar.cuh"

#if defined(__FAST_MATH__) || defined(__FP_FAST_FMA)
#error "host_harness.cpp must be built without fast-math and without FMA contraction"
#endif

extern "C" {

// Kernel np_quantize_* for one input kind, serially: codes, cell histogram, margins.
// x: raw bits (uint16 for 16-bit kinds, uint32 for float32).  Nullable outputs as the kernel.
void hh_quantize(int kind, const void* x, np_i64 n, const float* u, np_i64 nu, const uint16_t* enc,
                 uint32_t flags, uint32_t zero_code, uint32_t sign_code, uint32_t nan_code,
                 uint32_t code_mask, uint16_t* codes, np_u64* hist, const float* mu, np_i64 nmu,
                 const double* v, const double* gaps, np_i64 k, double* margin, np_u64* min_key) {
  np_code_rule r;
  r.flags = flags;
  r.zero_code = zero_code;
  r.sign_code = sign_code;
  r.nan_code = nan_code;
  r.code_mask = code_mask;
  for (np_i64 i = 0; i < n; ++i) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    const bool nan = np_is_nan_bits(kind, b);
    const float xf = np_to_f32(kind, b);
    const np_i64 idx = np_search_left<float>(u, nu, xf);
    if (codes) codes[i] = (uint16_t)np_element_code(idx, np_sign_bit(kind, b), nan, enc, r);
    if (hist) hist[nan ? nu + 1 : idx] += 1ull;
    if (margin || min_key) {
      const np_i64 midx = (mu == u) ? idx : np_search_left<float>(mu, nmu, xf);
      const double g = np_margin((double)xf, nan ? 0 : midx, v, gaps, k);
      if (margin) margin[i] = g;
      if (min_key && !nan) {
        const np_u64 key = np_margin_min_key(g);
        if (key < *min_key) *min_key = key;
      }
    }
  }
}

// float16/bfloat16/float32 bits -> float32 (the kernels' exact conversion).
void hh_to_f32(int kind, const void* x, np_i64 n, float* out) {
  for (np_i64 i = 0; i < n; ++i) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    out[i] = np_to_f32(kind, b);
  }
}

// searchsorted(u, x, 'left') and γ on float64 x (any float64: the margin function is general).
void hh_margin_f64(const double* x, np_i64 n, const double* u, np_i64 nu, const double* v,
                   const double* gaps, np_i64 k, double* out) {
  for (np_i64 i = 0; i < n; ++i) {
    const np_i64 idx = np_search_left<double>(u, nu, x[i]);
    out[i] = np_margin(x[i], x[i] != x[i] ? 0 : idx, v, gaps, k);
  }
}

// RN(a + b + c) (the margin's slow path), for testing against Fractions.
double hh_sum3(double a, double b, double c) { return np_sum3_rn(a, b, c); }

// np_support16 serially: counts[65536] += ...
void hh_support16(const uint16_t* x, np_i64 n, int kind, int by_value, int omit_nan, np_u64* counts) {
  for (np_i64 i = 0; i < n; ++i) {
    const uint32_t b = x[i];
    if (omit_nan && np_is_nan_bits(kind, b)) continue;
    counts[np_support_key16(kind, b, by_value != 0)] += 1ull;
  }
}

// np_hist_bins serially: status (0 ok, 1 near, 2 bad) and floor k per element.
void hh_hist_bins(int kind, const void* x, np_i64 n, double origin, double delta, np_i64* k,
                  int32_t* status) {
  for (np_i64 i = 0; i < n; ++i) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    status[i] = np_hist_bin((double)np_to_f32(kind, b), origin, delta, &k[i]);
  }
}

}  // extern "C"
