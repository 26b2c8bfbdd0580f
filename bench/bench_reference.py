"""Reference-tier speed, as ratios against the plain NumPy (or torch) computation each definition reduces to.

Run: ``python -m pytest bench/bench_reference.py --benchmark-only --benchmark-json=FILE`` and
``python bench/perf_table.py --json FILE`` (or ``python bench/perf_table.py``, which runs it): the README's
performance table is generated from that JSON.

Every benchmark group pairs natprec's call(s) with at least one **baseline**: a function named
``test_baseline_*`` in the same group (``bench/perf_table.py`` fails on a group without one, and
``tests/test_perf_table.py`` checks this file).  All rows run on the same 2**24 float32 standard normals
in one run; the table reports the ratio of minimum times to each baseline.  ``benchmark.extra_info["label"]``
is the row's text in the table.  Targets (issues 2 and 17): quantize to a 16-entry codebook ≤ 1.5× one
``np.searchsorted`` pass; support count ≤ 1.5× ``np.sort``; min_voronoi_margin ≤ 1.5× plain float64 NumPy;
discretized_entropy_bits and discretized_histogram ≤ 2× plain NumPy; ``injectivity_report`` ≤ 2× a plain
vectorized census (``census_numpy``) on 2**22 elements, groups ``census-<format>``, each asserting that both give
the same counts and δ.
"""

import os
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import natprec.reference as ref

N = 1 << 24
DELTA = 0.01


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _label(benchmark, text: str) -> None:
    benchmark.extra_info["label"] = text


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal(N).astype(np.float32)


@pytest.fixture(scope="module")
def nf4():
    fmt = ref.get_format("nf4")
    ref.quantize(np.zeros(1 << 16, np.float32), fmt)  # thresholds and tables built once, outside the timing
    return fmt


@pytest.mark.benchmark(group="quantize-16")
def test_baseline_searchsorted(benchmark, x, nf4):
    _label(benchmark, "`np.searchsorted(u, x)`, 15 float32 thresholds, 1 thread")
    u = ref.thresholds(nf4.codebook, "even", np.float32)
    benchmark(np.searchsorted, u, x)


@pytest.mark.benchmark(group="quantize-16")
def test_baseline_torch_bucketize(benchmark, x, nf4):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(_cores())  # the threads natprec's chunks use
    _label(benchmark, f"`torch.bucketize(x, u, out_int32=True)`, {_cores()} threads")
    u = torch.from_numpy(np.array(ref.thresholds(nf4.codebook, "even", np.float32)))
    xt = torch.from_numpy(x)
    benchmark(torch.bucketize, xt, u, out_int32=True)


@pytest.mark.benchmark(group="quantize-16")
def test_quantize_nf4(benchmark, x, nf4):
    _label(benchmark, '`quantize(x, "nf4")` (16 codewords, exact ties)')
    codes = benchmark(ref.quantize, x, nf4)
    assert codes.dtype == np.uint8 and codes.shape == x.shape


@pytest.mark.benchmark(group="support")
def test_baseline_sort(benchmark, x):
    _label(benchmark, "`np.sort(x)`")
    benchmark(np.sort, x)


@pytest.mark.benchmark(group="support")
def test_support_size(benchmark, x):
    _label(benchmark, "`support_size(x)`")
    assert benchmark(ref.support_size, x) > 0


@pytest.mark.benchmark(group="support")
def test_realized_support_with_counts(benchmark, x):
    _label(benchmark, "`realized_support(x)` with counts (high cardinality)")
    assert benchmark(ref.realized_support, x).counts.sum() == N


@pytest.fixture(scope="module")
def h(x):
    return x.astype(np.float16)


@pytest.mark.benchmark(group="support-float16")
def test_baseline_unique_float16(benchmark, h):
    _label(benchmark, "`np.unique(h).size` (float16)")
    benchmark(lambda: np.unique(h).size)


@pytest.mark.benchmark(group="support-float16")
def test_support_float16_bincount(benchmark, h):
    _label(benchmark, "`support_size(h)`, h = x as float16 (65536-bin count)")
    assert benchmark(ref.support_size, h) > 0


def _plain_margins(x, values):
    """γ of every element the textbook way, in float64: nearest codeword by float64 midpoints, then
    min over the two neighbours of |x − c'| − |x − c| (no exact ties, no rationals)."""
    v = np.asarray(values, dtype=np.float64)
    k = v.size
    x64 = x.astype(np.float64)
    i = np.searchsorted((v[1:] + v[:-1]) / 2, x64)
    d = np.abs(x64 - v[i])
    up = np.where(i < k - 1, np.abs(x64 - v[np.minimum(i + 1, k - 1)]) - d, np.inf)
    dn = np.where(i > 0, np.abs(x64 - v[np.maximum(i - 1, 0)]) - d, np.inf)
    return np.minimum(up, dn)


@pytest.mark.benchmark(group="margin")
def test_baseline_margins_float64(benchmark, x, nf4):
    _label(benchmark, "plain float64 NumPy γ of every element (2²² elements)")
    benchmark.pedantic(_plain_margins, args=(x[: 1 << 22], nf4.codebook.values), rounds=3)


@pytest.mark.benchmark(group="margin")
def test_voronoi_margin_nf4(benchmark, x, nf4):
    _label(benchmark, '`voronoi_margin(x[:2**22], "nf4")` (every γ, float64)')
    benchmark.pedantic(ref.voronoi_margin, args=(x[: 1 << 22], nf4), rounds=3)


def _plain_entropy(x, delta):
    """H_Δ the textbook way: np.floor(x/Δ) → np.unique counts → −Σ p log2 p (no exact floors)."""
    _, c = np.unique(np.floor(x / delta), return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


@pytest.mark.benchmark(group="entropy")
def test_baseline_entropy_plain(benchmark, x):
    _label(benchmark, "`np.floor(x/Δ)` → `np.unique` counts → −Σ p log2 p")
    benchmark(_plain_entropy, x, DELTA)


@pytest.mark.benchmark(group="entropy")
def test_discretized_entropy(benchmark, x):
    _label(benchmark, "`discretized_entropy_bits(x, 0.01)` (exact floors, 113-bit sum)")
    h = benchmark(ref.discretized_entropy_bits, x, DELTA)
    assert abs(h - _plain_entropy(x, DELTA)) < 1e-6


@pytest.mark.benchmark(group="entropy")
def test_discretized_histogram(benchmark, x):
    _label(benchmark, "`discretized_histogram(x, 0.01)`")
    assert benchmark(ref.discretized_histogram, x, DELTA).n == N


# ---- issue 17: casts, margins' minimum (these groups stay above the census and block-format groups) ----

CASTS = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
}


def _grouped(prefix: str, names):
    """Parameters each in its own benchmark group ``prefix-NAME``."""
    return [pytest.param(n, id=n, marks=pytest.mark.benchmark(group=f"{prefix}-{n}")) for n in names]


@pytest.mark.parametrize("fmt", _grouped("cast", CASTS))
def test_baseline_cast(benchmark, x, fmt):
    _label(benchmark, f"`x.astype({CASTS[fmt]})` ({'NumPy' if fmt == 'float16' else 'ml_dtypes'})")
    benchmark(x.astype, CASTS[fmt])


@pytest.mark.parametrize("fmt", _grouped("cast", CASTS))
def test_quantize_cast(benchmark, x, fmt):
    _label(benchmark, f'`quantize(x, "{fmt}")` (codes)')
    f = ref.get_format(fmt)
    codes = benchmark(ref.quantize, x, f)
    assert codes.shape == x.shape


MARGIN_FORMATS = ["nf4", "float8_e4m3fn"]


@pytest.mark.parametrize("fmt", _grouped("min-margin", MARGIN_FORMATS))
def test_baseline_min_margin_float64(benchmark, x, fmt):
    _label(benchmark, "plain float64 NumPy: min of every γ")
    values = ref.get_format(fmt).codebook.values
    benchmark(lambda: float(_plain_margins(x, values).min()))


@pytest.mark.parametrize("fmt", _grouped("min-margin", MARGIN_FORMATS))
def test_min_voronoi_margin(benchmark, x, fmt):
    _label(benchmark, f'`min_voronoi_margin(x, "{fmt}")`')
    f = ref.get_format(fmt)
    ref.min_voronoi_margin(x[: 1 << 17], f)  # tables built once, outside the timing
    g = benchmark(ref.min_voronoi_margin, x, f)
    assert 0.0 <= g <= float(_plain_margins(x[: 1 << 16], f.codebook.values).min()) + 1e-12  # a subset's minimum bounds it


# The collision census (issue 17): injectivity_report beside a plain vectorized NumPy census of the same
# 2**22 float32 elements — quantize, a cell id per element, one np.unique over packed (cell, value) keys.
CENSUS_N = 1 << 22
CENSUS_FORMATS = ["nf4", "float8_e4m3fn", "int4", "nf4_absmax64", "mxfp4", "nvfp4"]


def census_numpy(x: np.ndarray, fmt: str) -> tuple[int, int, int]:
    """(δ numerator, cells used, colliding values) of DEF-COLLISION-CENSUS for a 1-D float32 x, the plain way.

    Every element gets its cell id (the saturating encoding; for a block format (block << bits) + encoding)
    after −0.0 → +0.0; the pair (cell, value bits) is packed into one uint64 and np.unique counts the pairs.
    """
    f = ref.get_format(fmt)
    v = np.where(x == 0, np.float32(0), x)  # by value: −0.0 is +0.0
    if isinstance(f, ref.ElementFormat):
        cell = ref.quantize(v, f, saturate=True).astype(np.uint64)
    else:
        codes = ref.quantize(v, f).codes.astype(np.uint64)
        cell = (np.arange(v.size, dtype=np.uint64) // np.uint64(f.block_size) << np.uint64(f.element.nbits)) + codes
    pairs, counts = np.unique((cell << np.uint64(32)) | v.view(np.uint32), return_counts=True)
    pair_cell = pairs >> np.uint64(32)
    starts = np.flatnonzero(np.concatenate(([True], pair_cell[1:] != pair_cell[:-1])))
    values_per_cell = np.diff(starts, append=pair_cell.size)
    per_cell = np.add.reduceat(counts, starts)
    num = int(np.dot(per_cell, per_cell)) - int(np.dot(counts, counts))
    return num, int(starts.size), int(values_per_cell[values_per_cell > 1].sum())


def _census_group(fmt):
    return pytest.mark.benchmark(group=f"census-{fmt}")


def _agree(rep, census) -> None:
    """The equality check of a census group: the report's counts and δ are the plain census's."""
    num, cells_used, colliding = census
    assert (rep.n_elements, rep.delta, rep.cells_used, rep.colliding_values) == (
        CENSUS_N, Fraction(num, CENSUS_N**2), cells_used, colliding)


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=_census_group(f)) for f in CENSUS_FORMATS])
def test_baseline_census_numpy(benchmark, x, fmt):
    _label(benchmark, "plain census: packed (cell, value) keys, one `np.unique` (2**22)")
    xs = x[:CENSUS_N]
    _agree(ref.injectivity_report(xs, fmt), benchmark.pedantic(census_numpy, args=(xs, fmt), rounds=3))


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=_census_group(f)) for f in CENSUS_FORMATS])
def test_census_injectivity_report(benchmark, x, fmt):
    _label(benchmark, f'`injectivity_report(x, "{fmt}")` (default listing, 2**22)')
    xs = x[:CENSUS_N]
    _agree(benchmark.pedantic(ref.injectivity_report, args=(xs, fmt), rounds=3), census_numpy(xs, fmt))


# ---------------------------------------------------------------------------------------------------------------------
# Block formats beside their peers (issue 17 items 2 and 5): natprec against bitsandbytes 0.50.2 (nf4_absmax64) and
# torchao 0.18.0 (MX floor and RCEIL, NVFP4) on the same 2**24 float32 normals, as 4096 rows of 4096, where the two
# layouts (bitsandbytes blocks the flattened tensor, natprec the last axis) give the same blocks. The peers run on CPU
# with torch's threads set to the cores this process may use, as natprec's map_chunks does. Each peer test checks, after
# timing, that its codes and scales equal ours where the conventions match (spec/07 "Where we differ from
# implementations"); a peer that does not import is skipped. Targets: nf4_absmax64 ≤ 1× bitsandbytes, MX and NVFP4
# within 2× torchao.
# ---------------------------------------------------------------------------------------------------------------------

BLOCK_COLS = 4096
#: the float32 y = x/absmax that bitsandbytes' NF4 thresholds code differently from ours with tie="down" (spec/07,
#: tests/test_07_oracle_bitsandbytes.py::test_bnb_cpu_thresholds); these 2**24 normals hold two of them
BNB_NF4_DOWN = [-0.8480964, -0.6106329, -0.33967942, -0.2346074, 0.50166345, 0.86147845]


@pytest.fixture(scope="module")
def xb(x):
    return x.reshape(-1, BLOCK_COLS)


def _torch_peer(name: str):
    """torch with its threads set to the cores this process may use (as natprec's map_chunks), and the peer module, or skip."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return torch, pytest.importorskip(name, reason=f"{name} is not installed (pip install natprec[oracles])")


@pytest.mark.benchmark(group="block-nf4_absmax64")
def test_block_nf4_absmax64(benchmark, xb):
    _label(benchmark, '`quantize(x, "nf4_absmax64")` (4096 × 4096)')
    q = benchmark(ref.quantize, xb, "nf4_absmax64")
    assert q.codes.shape == xb.shape


@pytest.mark.benchmark(group="block-nf4_absmax64")
def test_block_nf4_absmax64_flat_down(benchmark, xb):
    """bitsandbytes' conventions exactly: its blocks (layout="flat", DEF-BLOCK-LAYOUT) and its ties (down)."""
    _label(benchmark, '`quantize(x, get_format("nf4_absmax64", layout="flat"), tie="down")`')
    fmt = ref.get_format("nf4_absmax64", layout="flat")
    q = benchmark(ref.quantize, xb, fmt, tie="down")
    assert q.scales.shape == (xb.size // 64,)


@pytest.mark.benchmark(group="block-nf4_absmax64")
def test_baseline_block_nf4_absmax64_bitsandbytes(benchmark, xb):
    _label(benchmark, "bitsandbytes `quantize_4bit(t, blocksize=64, quant_type='nf4')` (CPU)")
    torch, _ = _torch_peer("bitsandbytes")
    import bitsandbytes.functional as bnbf

    t = torch.from_numpy(xb)
    packed, state = benchmark(bnbf.quantize_4bit, t, blocksize=64, quant_type="nf4")
    p = packed.numpy().ravel()
    codes = np.empty(2 * p.size, np.uint8)
    codes[0::2], codes[1::2] = p >> 4, p & 0xF
    q = ref.quantize(xb, "nf4_absmax64", tie="down")  # bnb's CPU convention (spec/07): equal bit for bit except
    differ = codes != q.codes.ravel()  # at the six float32 y where its rounded thresholds and our exact ones straddle y
    y = ref.get_format("nf4_absmax64").scaled(xb).ravel()[differ]
    assert np.isin(y, np.array(BNB_NF4_DOWN, np.float32)).all(), y
    np.testing.assert_array_equal(state.absmax.numpy().view(np.uint32), q.scales.ravel().view(np.uint32))


MX_PEERS = {"mxfp4": "float4_e2m1fn_x2", "mxfp6_e2m3": "fp6_e2m3", "mxfp8_e4m3": "float8_e4m3fn"}


def _mx_case(name: str, rule: str):
    return pytest.param(name, rule, marks=pytest.mark.benchmark(group=f"block-{name}" + ("-rceil" if rule == "rceil" else "")),
                        id=f"{name}-{rule}")


MX_CASES = [_mx_case(n, r) for n in MX_PEERS for r in ("floor", "rceil")]


@pytest.mark.parametrize(("name", "rule"), MX_CASES)
def test_block_mx(benchmark, xb, name, rule):
    _label(benchmark, f'`quantize(x, get_format("{name}", scale_rule="{rule}"))`')
    fmt = ref.get_format(name, scale_rule=rule)
    q = benchmark(ref.quantize, xb, fmt)
    assert q.scales.shape == (xb.shape[0], BLOCK_COLS // 32)


@pytest.mark.parametrize(("name", "rule"), MX_CASES)
def test_baseline_block_mx_torchao(benchmark, xb, name, rule):
    _label(benchmark, f"torchao `to_mx(t, {MX_PEERS[name]}, 32, {rule.upper()})` (CPU)")
    torch, _ = _torch_peer("torchao")
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.kernels import unpack_uint4
    from torchao.prototype.mx_formats.mx_tensor import to_mx

    elem = MX_PEERS[name]
    elem = getattr(torch, elem) if hasattr(torch, elem) else elem
    mode = ScaleCalculationMode.FLOOR if rule == "floor" else ScaleCalculationMode.RCEIL
    scale, data = benchmark(to_mx, torch.from_numpy(xb), elem, 32, mode)
    codes = unpack_uint4(data.contiguous()).numpy() if name == "mxfp4" else data.view(torch.uint8).numpy()
    q = ref.quantize(xb, ref.get_format(name, scale_rule=rule))
    # Normals: no block has e = -127 and every RCEIL amax/max_elem lies where torchao's float32 log2 is exact (spec/07).
    np.testing.assert_array_equal(scale.view(torch.uint8).numpy().ravel(), q.scales.ravel())
    np.testing.assert_array_equal(codes.ravel(), q.codes.ravel())


@pytest.mark.benchmark(group="block-nvfp4")
def test_block_nvfp4(benchmark, xb):
    _label(benchmark, '`quantize(x, "nvfp4")`')
    q = benchmark(ref.quantize, xb, "nvfp4")
    assert q.scales.shape == (xb.shape[0], BLOCK_COLS // 16)


@pytest.mark.benchmark(group="block-nvfp4")
def test_baseline_block_nvfp4_torchao(benchmark, xb):
    _label(benchmark, "torchao `nvfp4_quantize(t, 16, per-tensor scale)` (CPU)")
    torch, _ = _torch_peer("torchao")
    from torchao.prototype.mx_formats.kernels import unpack_uint4
    from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize, per_tensor_amax_to_scale

    t = torch.from_numpy(xb)
    scales, data = benchmark(lambda: nvfp4_quantize(t, 16, per_tensor_amax_to_scale(t.abs().max())))
    # torchao's operation order differs from TE's (spec/07): codes agree on most random data, not on all; count them.
    q = ref.quantize(xb, "nvfp4")
    diff_scales = int((scales.view(torch.uint8).numpy().ravel() != q.scales.ravel()).sum())
    diff_codes = int((unpack_uint4(data.contiguous()).numpy().ravel() != q.codes.ravel()).sum())
    benchmark.extra_info.update(differing_scale_codes=diff_scales, differing_element_codes=diff_codes)
    assert diff_scales <= q.scales.size // 1000 and diff_codes <= q.codes.size // 1000
