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
// Every element goes through np_quantize_element with the tables the kernel builds: the
// +Inf-padded compare-count table when there are at most NP_CC thresholds.
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
  float s_pad[NP_CC], s_mpad[NP_CC];
  np_pad_thresholds(u, nu, s_pad);
  np_pad_thresholds(mu, nmu, s_mpad);
  const bool split_mu = mu != u;
  const float* pad = nu <= NP_CC ? s_pad : nullptr;
  const float* mpad = split_mu ? (nmu <= NP_CC ? s_mpad : nullptr) : pad;
  const bool want_margin = margin != nullptr || min_key != nullptr;
  for (np_i64 i = 0; i < n; ++i) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    const np_qelem e = np_quantize_element(kind, b, u, nu, pad, enc, r, split_mu ? mu : u, nmu, mpad, v, gaps, k,
                                           want_margin);
    if (codes) codes[i] = (uint16_t)e.code;
    if (hist) hist[e.bin] += 1ull;
    if (margin) margin[i] = e.margin;
    if (min_key && !e.nan) {
      const np_u64 key = np_margin_min_key(e.margin);
      if (key < *min_key) *min_key = key;
    }
  }
}

// The same loop with the binary search forced (pad = null) for tables of any size: the
// compare-count and the search must agree (tests/test_accelerated_host.py).
void hh_index_both(const float* u, np_i64 nu, const float* x, np_i64 n, np_i64* by_count, np_i64* by_search) {
  float pad[NP_CC];
  np_pad_thresholds(u, nu, pad);
  for (np_i64 i = 0; i < n; ++i) {
    by_count[i] = np_quantize_index(u, nu, pad, x[i]);
    by_search[i] = np_quantize_index(u, nu, nullptr, x[i]);
  }
}

// The support kernel's two passes, serially, with `nblocks` per-block partial counts (uint32)
// summed into counts[65536] as np_support16_pass + np_support16_reduce do.
void hh_support16_passes(const uint16_t* x, np_i64 n, int kind, int by_value, int omit_nan, int nblocks,
                         uint32_t* partial, np_u64* counts) {
  for (uint32_t base = 0; base < 65536u; base += NP_SUPPORT_PASS) {
    for (np_i64 w = 0; w < (np_i64)nblocks * NP_SUPPORT_PASS; ++w) partial[w] = 0u;
    const np_i64 per = (n + nblocks - 1) / nblocks;
    for (int blk = 0; blk < nblocks; ++blk) {
      const np_i64 lo = (np_i64)blk * per, hi = lo + per < n ? lo + per : n;
      for (np_i64 i = lo; i < hi; ++i) {
        const uint32_t s = np_support_slot(kind, x[i], by_value != 0, omit_nan != 0, base);
        if (s != NP_NO_SLOT) partial[(np_i64)blk * NP_SUPPORT_PASS + s] += 1u;
      }
    }
    for (uint32_t s = 0; s < NP_SUPPORT_PASS; ++s) {
      np_u64 t = 0;
      for (int blk = 0; blk < nblocks; ++blk) t += partial[(np_i64)blk * NP_SUPPORT_PASS + s];
      counts[base + s] += t;
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

// Block formats, serially: the tensor's max |x| bits, the NVFP4 tensor scales, and every block
// through np_block_quantize_one with np_block_span's indexing, as block.cu.
uint32_t hh_tensor_amax(int kind, const void* x, np_i64 n) {
  uint32_t m = 0u;
  for (np_i64 i = 0; i < n; ++i) {
    const uint32_t b = (kind == NP_F32) ? ((const uint32_t*)x)[i] : (uint32_t)((const uint16_t*)x)[i];
    const uint32_t a = np_f32_bits(np_to_f32(kind, b)) & 0x7fffffffu;
    m = a > m ? a : m;
  }
  return m;
}

void hh_nvfp4_scales(uint32_t amax_bits, float* tensor3) {
  const np_nvfp4_tensor t = np_nvfp4_tensor_scales(np_f32_from_bits(amax_bits));
  tensor3[0] = t.s_enc;
  tensor3[1] = t.s_dec;
  tensor3[2] = t.factor;
}

void hh_block_quantize(int kind, const void* x, np_i64 rows, np_i64 ncols, np_i64 bs, int family, int flat,
                       const float* u, np_i64 nu, const double* u64, const uint16_t* enc, uint32_t flags,
                       uint32_t zero_code, uint32_t sign_code, uint32_t nan_code, uint32_t code_mask,
                       int emax_elem, double max_finite, const float* us, np_i64 nus, const uint16_t* encs,
                       const double* vs, const float* tensor3, uint16_t* codes, uint32_t* scales) {
  float s_pad[NP_CC];
  if (u) np_pad_thresholds(u, nu, s_pad);
  np_block_params p;
  p.family = family;
  p.u = u;
  p.pad = (u && nu <= NP_CC) ? s_pad : nullptr;
  p.u64 = u64;
  p.nu = nu;
  p.enc = enc;
  p.rule.flags = flags;
  p.rule.zero_code = zero_code;
  p.rule.sign_code = sign_code;
  p.rule.nan_code = nan_code;
  p.rule.code_mask = code_mask;
  p.emax_elem = emax_elem;
  p.max_finite = max_finite;
  p.us = us;
  p.nus = nus;
  p.encs = encs;
  p.vs = vs;
  p.t.s_enc = tensor3 ? tensor3[0] : 1.0f;
  p.t.s_dec = tensor3 ? tensor3[1] : 1.0f;
  p.t.factor = tensor3 ? tensor3[2] : 1.0f;
  p.divide_below = flat ? bs : 0;
  const np_i64 nb = (ncols + bs - 1) / bs;
  for (np_i64 j = 0; j < rows * nb; ++j) {
    np_i64 start, len;
    np_block_span(j, nb, ncols, bs, &start, &len);
    if (kind == NP_F32)
      scales[j] = np_block_quantize_one<uint32_t>(kind, (const uint32_t*)x + start, len, p, codes + start);
    else
      scales[j] = np_block_quantize_one<uint16_t>(kind, (const uint16_t*)x + start, len, p, codes + start);
  }
}

// float32 support, serially, with the sort kernels' functions and layout: keys, 4 radix passes
// over tiles (counts digit-major, exclusive scan, stable tile scatter), run heads and starts.
// ukeys/starts hold up to n entries; returns the number of runs.  work: 2 n + 256 ntiles words.
np_i64 hh_support32(const uint32_t* x, np_i64 n, int by_value, uint32_t* work, uint32_t* ukeys, np_i64* starts) {
  uint32_t* a = work;
  uint32_t* b = work + n;
  const np_i64 ntiles = (n + NP_RADIX_TILE - 1) / NP_RADIX_TILE;
  uint32_t* counts = work + 2 * n;
  for (np_i64 i = 0; i < n; ++i) a[i] = np_support_key32(x[i], by_value != 0);
  for (int shift = 0; shift < 32; shift += 8) {
    for (np_i64 t = 0; t < ntiles; ++t) {
      uint32_t cnt[NP_RADIX_DIGITS] = {0};
      const np_i64 lo = t * NP_RADIX_TILE, len = lo + NP_RADIX_TILE <= n ? NP_RADIX_TILE : n - lo;
      np_radix_tile_count(a + lo, len, shift, cnt);
      for (int d = 0; d < NP_RADIX_DIGITS; ++d) counts[(np_i64)d * ntiles + t] = cnt[d];
    }
    uint32_t run = 0;  // exclusive scan (the device uses PyCUDA's scan kernel)
    for (np_i64 w = 0; w < NP_RADIX_DIGITS * ntiles; ++w) {
      const uint32_t c = counts[w];
      counts[w] = run;
      run += c;
    }
    for (np_i64 t = 0; t < ntiles; ++t) {
      uint32_t off[NP_RADIX_DIGITS];
      for (int d = 0; d < NP_RADIX_DIGITS; ++d) off[d] = counts[(np_i64)d * ntiles + t];
      const np_i64 lo = t * NP_RADIX_TILE, len = lo + NP_RADIX_TILE <= n ? NP_RADIX_TILE : n - lo;
      np_radix_tile_scatter(a + lo, len, shift, off, b);
    }
    uint32_t* tmp = a;
    a = b;
    b = tmp;
  }
  np_i64 m = 0;
  for (np_i64 i = 0; i < n; ++i) {
    if (np_run_head(a, i)) {
      ukeys[m] = a[i];
      starts[m] = i;
      ++m;
    }
  }
  return m;
}

// Block-format census pairs, serially, with the census kernels' functions and layout: every block
// sorted by np_census_block, the heads scanned (exclusive), np_census_cell at each head.  x: float32
// bits, codes: the block kernel's codes, both n = rows * ncols.  keys (n words of 64 bits) and heads
// (n) are work space; cells, vkeys and starts hold up to n entries.  Returns the number of pairs.
np_i64 hh_census_blocks(const uint32_t* x, const uint16_t* codes, np_i64 rows, np_i64 ncols, np_i64 bs,
                        uint32_t zero_sign, int nbits, np_u64* keys, uint32_t* heads, np_i64* cells, uint32_t* vkeys,
                        np_i64* starts) {
  const np_i64 nb = (ncols + bs - 1) / bs;
  for (np_i64 j = 0; j < rows * nb; ++j) {
    np_i64 start, len;
    np_block_span(j, nb, ncols, bs, &start, &len);
    np_census_block(x + start, codes + start, len, zero_sign, keys + start, heads + start);
  }
  np_i64 m = 0;  // the exclusive scan of heads at i (the device uses PyCUDA's scan kernel)
  for (np_i64 i = 0; i < rows * ncols; ++i) {
    if (heads[i]) {
      cells[m] = np_census_cell(i, ncols, bs, nb, nbits, keys[i]);
      vkeys[m] = (uint32_t)(keys[i] & 0xffffffffull);
      starts[m] = i;
      ++m;
    }
  }
  return m;
}

}  // extern "C"
