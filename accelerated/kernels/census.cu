// DEF-COLLISION-CENSUS / DEF-CENSUS-PAIRS for block formats on the device (issue 12 item 3): the
// (cell, value) pairs and their counts, from the block kernel's codes.  np_census_blocks: one
// thread per block sorts that block's 64-bit keys (encoding << 32 | value key) in place and
// flags the heads of its runs (np_census_block); the host runs an exclusive scan of the flags
// (PyCUDA's scan kernel); np_census_compact writes each pair's cell id (np_census_cell), its
// value key and its first position (counts: differences of the positions).  32-bit flags and
// positions: the host keeps n below 2**32.  All per-element work is natprec_scalar.cuh's,
// which the host harness runs serially.
#include "natprec_scalar.cuh"

extern "C" __global__ void np_census_blocks(const uint32_t* __restrict__ x, const uint16_t* __restrict__ codes,
                                            np_i64 rows, np_i64 ncols, np_i64 bs, uint32_t zero_sign,
                                            np_u64* __restrict__ keys, uint32_t* __restrict__ heads) {
  const np_i64 nb = (ncols + bs - 1) / bs;
  const np_i64 total = rows * nb;
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 j = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; j < total; j += stride) {
    np_i64 start, len;
    np_block_span(j, nb, ncols, bs, &start, &len);
    np_census_block(x + start, codes + start, len, zero_sign, keys + start, heads + start);
  }
}

// pos: the exclusive scan of heads.  At a head i: cells[pos[i]], vkeys[pos[i]] (the value's
// support key) and starts[pos[i]] = i.
extern "C" __global__ void np_census_compact(const np_u64* __restrict__ keys, np_i64 n,
                                             const uint32_t* __restrict__ heads, const uint32_t* __restrict__ pos,
                                             np_i64 ncols, np_i64 bs, int nbits, np_i64* __restrict__ cells,
                                             uint32_t* __restrict__ vkeys, np_i64* __restrict__ starts) {
  const np_i64 nb = (ncols + bs - 1) / bs;
  const np_i64 stride = (np_i64)blockDim.x * (np_i64)gridDim.x;
  for (np_i64 i = (np_i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (heads[i]) {
      const np_i64 p = (np_i64)pos[i];
      cells[p] = np_census_cell(i, ncols, bs, nb, nbits, keys[i]);
      vkeys[p] = (uint32_t)(keys[i] & 0xffffffffull);
      starts[p] = i;
    }
  }
}
