"""DEF-SCAN — ``natprec scan``: a checkpoint's tensors measured chunk by chunk on Dask, merged exactly (spec/14).

A checkpoint (one ``.safetensors`` file, a folder of shards, or a ``model.safetensors.index.json``)
is planned into chunks: (shard, tensor, element range).  Each chunk is read from the shard with
``numpy.fromfile`` at its byte offset (memory: the chunk) and reduced to its **value table**
(DEF-SCAN-TABLE): the distinct bit patterns with their counts (a dense 65,536-bin count for
16-bit dtypes).  Tables merge by adding counts, so a tensor's merged table is the table of the
whole tensor whatever the chunking, and every statistic of ``natprec tensor`` that depends on
the tensor only through its multiset of values is computed from it (DEF-SCAN-MERGE): support
and b*, the histogram, H_Δ, its bootstrap interval, each element format's census and δ, the
minimum margin, and the GGD fit.  Dask runs the chunk, merge and finish tasks: its local
threaded or multi-process scheduler, or an existing ``dask.distributed`` cluster.
"""

from __future__ import annotations

import fnmatch
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np
from scipy import optimize, stats

from natprec.analysis import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    DEFAULT_MAX_COLLISIONS,
    DELTA_STD_DIVISOR,
    EntropyEstimate,
    FormatAnalysis,
    GGDSummary,
    TensorAnalysis,
)
from natprec.reference import (
    ElementFormat,
    InjectivityReport,
    InputFileError,
    InvalidParameterError,
    NaNInputError,
    NatprecError,
    NonFiniteInputError,
    collision_probability,
    entropy_bits_from_counts,
    entropy_bootstrap_interval_from_counts,
    get_format,
    ggd,
    histogram_bins,
    min_voronoi_margin,
    natural_precision,
)
from natprec.reference.injectivity import Collision
from natprec.strictjson import to_strict

__all__ = [
    "ValueTable",
    "ChunkSpec",
    "TensorEntry",
    "CheckpointPlan",
    "TensorScan",
    "ScanResult",
    "SCAN_DTYPES",
    "DEFAULT_SCAN_FORMATS",
    "DEFAULT_CHUNK_ELEMENTS",
    "plan_checkpoint",
    "chunk_specs",
    "read_chunk",
    "chunk_table",
    "merge_tables",
    "table_of",
    "tensor_statistics",
    "fit_ml_table",
    "scan_checkpoint",
]

#: safetensors dtype → (NumPy float dtype, unsigned integer of the same width).
SCAN_DTYPES = {
    "F16": (np.dtype(np.float16), np.dtype(np.uint16)),
    "BF16": (np.dtype(ml_dtypes.bfloat16), np.dtype(np.uint16)),
    "F32": (np.dtype(np.float32), np.dtype(np.uint32)),
    "F64": (np.dtype(np.float64), np.dtype(np.uint64)),
}
#: The element formats of ``natprec tensor``'s default set (block formats are not scanned: spec/14).
DEFAULT_SCAN_FORMATS = ("nf4", "fp4_bnb", "float8_e4m3fn", "int8")
#: Elements per chunk (16 Mi elements: 32 MiB of bfloat16).
DEFAULT_CHUNK_ELEMENTS = 1 << 24
_OP_NOT_SCANNED = "not computed by scan: the MSE-optimal scale is a float optimisation over all elements (spec/14)"


# ----------------------------------------------------------------------------------------------- value tables


@dataclass(frozen=True)
class ValueTable:
    """DEF-SCAN-TABLE — distinct bit patterns (``keys``, ascending unsigned ints) of one float dtype and their counts.

    16-bit dtypes keep the dense form: ``keys`` is None and ``counts`` has 65,536 entries.
    """

    dtype: str  # safetensors dtype string
    keys: np.ndarray | None
    counts: np.ndarray

    def patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, counts) of the patterns that occur, keys ascending."""
        if self.keys is None:
            k = np.flatnonzero(self.counts)
            return k.astype(SCAN_DTYPES[self.dtype][1]), self.counts[k]
        return self.keys, self.counts

    @property
    def n(self) -> int:
        return int(self.counts.sum(dtype=np.int64))


def table_of(bits: np.ndarray, dtype: str) -> ValueTable:
    """DEF-SCAN-TABLE — the value table of an array of bit patterns (the unsigned view of the floats)."""
    if dtype not in SCAN_DTYPES:
        raise InvalidParameterError(f"dtype {dtype!r} is not one of {', '.join(SCAN_DTYPES)}", value=dtype)
    bits = np.asarray(bits).ravel()
    uint = SCAN_DTYPES[dtype][1]
    if bits.dtype != uint:
        bits = bits.view(uint) if bits.dtype.itemsize == uint.itemsize else bits.astype(uint)
    if uint.itemsize == 2:
        counts = np.zeros(1 << 16, dtype=np.int64)
        for i in range(0, bits.size, 1 << 16):  # bincount copies to intp: blocks keep that copy in cache
            counts += np.bincount(bits[i:i + (1 << 16)], minlength=1 << 16)
        return ValueTable(dtype, None, counts)
    k, c = np.unique(bits, return_counts=True)
    return ValueTable(dtype, k, c.astype(np.int64))


def merge_tables(a: ValueTable, b: ValueTable) -> ValueTable:
    """DEF-SCAN-MERGE — the table of the union of two multisets: counts of a pattern present in both add."""
    if a.dtype != b.dtype:
        raise InvalidParameterError(f"cannot merge tables of dtypes {a.dtype} and {b.dtype}", value=(a.dtype, b.dtype))
    if a.keys is None:
        return ValueTable(a.dtype, None, a.counts + b.counts)
    k = np.concatenate((a.keys, b.keys))
    c = np.concatenate((a.counts, b.counts))
    order = np.argsort(k, kind="stable")
    k, c = k[order], c[order]
    if k.size == 0:
        return ValueTable(a.dtype, k, c)
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    return ValueTable(a.dtype, k[starts], np.add.reduceat(c, starts))


# ----------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a shard: where its bytes are (``offset`` from the file start) and what they are."""

    name: str
    shard: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    elements: int


@dataclass(frozen=True)
class ChunkSpec:
    """DEF-SCAN — elements [start, stop) of one tensor: what a chunk task reads."""

    shard: str
    name: str
    dtype: str
    offset: int
    start: int
    stop: int


@dataclass(frozen=True)
class CheckpointPlan:
    """The tensors of a checkpoint, the tensors skipped for their dtype, and the shards that could not be read."""

    source: str
    shards: tuple[str, ...]
    tensors: tuple[TensorEntry, ...]
    skipped: tuple[dict, ...]
    shard_errors: tuple[dict, ...]  # {"shard", "error"}


def _shard_entries(path: Path) -> tuple[list[TensorEntry], list[dict]]:
    """The tensors of one shard from its header, every data range checked against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes: shorter than a safetensors header")
        n = struct.unpack("<Q", head)[0]
        if n > size - 8:
            raise ValueError(f"header length {n} exceeds the file size {size}")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    base = 8 + n
    entries, skipped = [], []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (b0, b1) = meta["dtype"], tuple(int(s) for s in meta["shape"]), meta["data_offsets"]
        if base + int(b1) > size:
            raise ValueError(f"tensor {name!r} needs bytes up to {base + int(b1)} but the file has {size} (truncated?)")
        if dt not in SCAN_DTYPES:
            skipped.append({"name": name, "dtype": dt, "shape": list(shape), "shard": path.name,
                            "reason": f"dtype {dt} is not one of {', '.join(SCAN_DTYPES)}"})
            continue
        elements = math.prod(shape)
        if elements * SCAN_DTYPES[dt][0].itemsize != int(b1) - int(b0):
            raise ValueError(f"tensor {name!r}: shape {list(shape)} of {dt} does not fill data_offsets [{b0}, {b1})")
        entries.append(TensorEntry(name, str(path), dt, shape, base + int(b0), elements))
    entries.sort(key=lambda e: e.offset)
    return entries, skipped


def plan_checkpoint(checkpoint, patterns=None) -> CheckpointPlan:
    """DEF-SCAN — the shards of ``checkpoint`` and their float tensors; a shard that cannot be read is listed, not raised.

    ``checkpoint``: a ``.safetensors`` file, a folder (its ``*.safetensors`` files, sorted), or a
    ``*.index.json`` (the shards its ``weight_map`` names, in first-mention order).  ``patterns``:
    shell-style patterns (``fnmatch``); only the tensors matching one are planned (default: all).
    """
    path = Path(checkpoint)
    if path.is_dir():
        shards = sorted(path.glob("*.safetensors"))
        if not shards:
            raise InputFileError(f"{path} holds no .safetensors file", value=str(path))
    elif path.name.endswith(".json"):
        try:
            weight_map = json.loads(path.read_text())["weight_map"]
            names = list(dict.fromkeys(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputFileError(f"cannot read {path} as a safetensors index (weight_map): {exc}", value=str(path)) from None
        shards = [path.parent / n for n in names]
    elif path.is_file():
        shards = [path]
    else:
        raise InputFileError(f"no checkpoint at {path}", value=str(path))
    tensors, skipped, errors = [], [], []
    for s in shards:
        try:
            e, k = _shard_entries(s)
        except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            errors.append({"shard": s.name, "error": str(exc) if not isinstance(exc, OSError) else (exc.strerror or str(exc))})
            continue
        tensors += e
        skipped += k
    if patterns is not None:
        pats = [patterns] if isinstance(patterns, str) else list(patterns)
        tensors = [t for t in tensors if any(fnmatch.fnmatchcase(t.name, p) for p in pats)]
    return CheckpointPlan(str(path), tuple(str(s) for s in shards), tuple(tensors), tuple(skipped), tuple(errors))


def chunk_specs(entry: TensorEntry, chunk_elements: int) -> list[ChunkSpec]:
    """The chunks of one tensor: [0, c), [c, 2c), … (one empty chunk for an empty tensor)."""
    c = int(chunk_elements)
    return [ChunkSpec(entry.shard, entry.name, entry.dtype, entry.offset, a, min(a + c, entry.elements))
            for a in range(0, max(entry.elements, 1), c)]


def read_chunk(spec: ChunkSpec) -> np.ndarray:
    """The bit patterns of one chunk, read at its byte offset (memory: the chunk)."""
    uint = SCAN_DTYPES[spec.dtype][1]
    count = spec.stop - spec.start
    bits = np.fromfile(spec.shard, dtype=uint.newbyteorder("<"), count=count, offset=spec.offset + spec.start * uint.itemsize)
    if bits.size != count:
        raise InputFileError(f"{Path(spec.shard).name}: tensor {spec.name!r} elements [{spec.start}, {spec.stop}) "
                             f"are past the end of the file", value=spec.shard)
    return bits.astype(uint, copy=False)


@dataclass(frozen=True)
class _Failed:
    """What a chunk or merge task returns when its chunk could not be read: the message travels to the tensor."""

    error: str


def chunk_table(spec: ChunkSpec):
    """DEF-SCAN-TABLE — the value table of one chunk (or a _Failed carrying why it could not be read)."""
    try:
        return table_of(read_chunk(spec), spec.dtype)
    except (OSError, NatprecError) as exc:
        return _Failed(str(exc))


def _merge_task(*parts):
    failed = [p for p in parts if isinstance(p, _Failed)]
    if failed:
        return failed[0]
    out = parts[0]
    for p in parts[1:]:
        out = merge_tables(out, p)
    return out


# ----------------------------------------------------------------------------------------------- statistics


def _table_sum(a: np.ndarray) -> float:
    """Σ a in table order: NumPy sums of fixed 2**18-element blocks, added with ``math.fsum`` (as ``ggd.fit_ml`` sums).

    A function of the array alone, so of the table alone, on one NumPy build (spec/14: on a cluster
    every worker runs the same build).
    """
    return math.fsum(float(np.sum(a[i:i + (1 << 18)])) for i in range(0, a.size, 1 << 18))


def _log_mean_pow_table(beta: float, logs: np.ndarray, counts: np.ndarray, n: int) -> float:
    mx = beta * float(np.max(logs))
    return mx + math.log(_table_sum(counts * np.exp(beta * logs - mx)) / n)


def _profile_loglik_table(beta: float, logs, counts, n: int) -> float:
    log_alpha = (math.log(beta) + _log_mean_pow_table(beta, logs, counts, n)) / beta
    return n * (math.log(beta) - math.log(2.0) - math.lgamma(1.0 / beta) - log_alpha - 1.0 / beta)


def fit_ml_table(values: np.ndarray, counts: np.ndarray, confidence: float = 0.95) -> ggd.GGDFit:
    """DEF-SCAN-MERGE, DEF-RD-GGD-FIT — the ML GGD fit of the multiset {value: count}, as :func:`ggd.fit_ml` of the expanded sample.

    The sufficient statistic of the profile likelihood at β is Σ|x|^β; here it is Σ_v n_v |v|^β over
    the distinct values, summed in table order (:func:`_table_sum`), so the fit is a function of the
    table alone.  It equals ``fit_ml`` of the whole tensor up to the rounding of that
    sum (``fit_ml`` sums element by element in chunks): spec/14 states the agreement measured.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(counts, dtype=np.int64)
    if c.sum() == 0:
        raise InvalidParameterError("a GGD fit of an empty table", value=0)
    if not np.all(np.isfinite(v)):
        bad = float(v[~np.isfinite(v)][0])
        raise NonFiniteInputError(f"samples contains a non-finite value {bad!r}", value=bad)
    nz = v != 0
    if int(c[nz].sum()) < 2:
        raise InvalidParameterError(f"a GGD fit needs at least 2 non-zero samples; got {int(c[nz].sum())}", value=int(c.sum()))
    ggd.check_sample_range(v)
    n = int(c.sum())
    logs = np.log(np.abs(v[nz]))
    cw = c[nz].astype(np.float64)
    lo_b, hi_b = 0.05, 50.0  # ggd's BETA_FIT_RANGE

    def negll(t):
        return -_profile_loglik_table(math.exp(t), logs, cw, n)

    res = optimize.minimize_scalar(negll, bounds=(math.log(lo_b), math.log(hi_b)), method="bounded", options={"xatol": 1e-10})
    beta_hat, ll_max = math.exp(res.x), -res.fun
    cut = ll_max - 0.5 * stats.chi2.ppf(float(confidence), 1)

    def excess(t):
        return _profile_loglik_table(math.exp(t), logs, cw, n) - cut

    def end(bound):
        tb = math.log(bound)
        if excess(tb) >= 0:
            return bound
        return math.exp(optimize.brentq(excess, min(res.x, tb), max(res.x, tb), xtol=1e-12))

    ci = (end(lo_b), end(hi_b))
    alpha_hat = math.exp((math.log(beta_hat) + _log_mean_pow_table(beta_hat, logs, cw, n)) / beta_hat)
    return ggd.GGDFit(beta_hat, alpha_hat, ci, float(confidence), "ml-profile-likelihood", n, float(ll_max))


def _ggd_summary(values, counts) -> GGDSummary:
    try:
        fit = fit_ml_table(values, counts)
    except NatprecError as exc:
        return GGDSummary(None, None, str(exc))
    if any(math.isclose(fit.beta, b, rel_tol=1e-3) for b in (0.05, 50.0)):
        return GGDSummary(fit, None, f"ML fit reached the β range bound {fit.beta:g} (data with atoms or few values is not GGD-like)")
    return GGDSummary(fit, ggd.differential_entropy_bits(fit.beta, fit.alpha), None)


def _census(f: ElementFormat, uv: np.ndarray, uc: np.ndarray, support_value: int, max_collisions: int) -> InjectivityReport:
    """DEF-COLLISION-CENSUS from the by-value table (values ascending, ±0 one value): a cell is a run of values."""
    q = np.where(uv == 0, np.zeros_like(uv), uv)
    cells = f.quantize(q, tie="even", saturate=True).astype(np.int64)
    n = int(uc.sum())
    starts = np.flatnonzero(np.concatenate(([True], cells[1:] != cells[:-1])))
    distinct = np.diff(starts, append=cells.size)
    elements = np.add.reduceat(uc, starts)
    multi = np.flatnonzero(distinct > 1)
    ids = cells[starts[multi]]
    pick = np.lexsort((ids, -elements[multi]))[:max_collisions]
    collisions = []
    for j in pick.tolist():
        a, k = int(starts[multi[j]]), int(distinct[multi[j]])
        code = int(ids[j])
        cw = float(f.dequantize(np.asarray([code], dtype=f.code_dtype))[0])
        collisions.append(Collision(cell=(code,), codeword=cw, values=uv[a:a + k].copy(), counts=uc[a:a + k].copy()))
    size = len(f.codebook) + (1 if f.signed_zero and f.zero_index >= 0 else 0)
    colliding = int(distinct[multi].sum())
    return InjectivityReport(format=f.name, n_elements=n, support_size=support_value, codebook_size=size,
                             cells_used=int(starts.size), injective=colliding == 0,
                             corollary=bool(size >= support_value and colliding == 0), collisions=collisions,
                             colliding_values=colliding, delta=collision_probability(uc, cells))


def _std(uv64: np.ndarray, uc: np.ndarray, n: int) -> float:
    """√(Σ n_v (v − m)² / N), m = Σ n_v v / N, each sum in table order (:func:`_table_sum`): a function of the table."""
    with np.errstate(invalid="ignore", over="ignore"):
        m = _table_sum(uc * uv64) / n
        return math.sqrt(_table_sum(uc * (uv64 - m) ** 2) / n) if math.isfinite(m) else math.nan


def tensor_statistics(table: ValueTable, formats=DEFAULT_SCAN_FORMATS, *, name: str = "tensor", shape=None,
                      delta: float | None = None, nan_policy: str = "raise", max_collisions: int = DEFAULT_MAX_COLLISIONS,
                      n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> TensorAnalysis:
    """DEF-SCAN-MERGE — ``natprec tensor``'s statistics of a tensor from its value table alone.

    Support by value and by bits, b*, the histogram at Δ, H_Δ (plug-in and Miller–Madow), the
    bootstrap interval, per element format the census, δ and min γ, and the GGD fit.  Δ is
    std/256 with std computed from the table (:func:`_std`), or ``delta``.  The operating point is
    not computed (its MSE-optimal scale is not a function of a mergeable summary of bounded size).
    """
    fmts = [get_format(x) for x in ((formats,) if isinstance(formats, str) else formats)]
    for f in fmts:
        if not isinstance(f, ElementFormat):
            raise InvalidParameterError(f"scan measures element formats only; {f.name} is a block format (spec/14)", value=f.name)
    if nan_policy not in ("raise", "omit"):
        raise InvalidParameterError(f"nan_policy must be 'raise' or 'omit'; got {nan_policy!r}", value=nan_policy)
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise InvalidParameterError(f"--delta must be finite and > 0; got {delta!r}", value=delta)
    fdt = SCAN_DTYPES[table.dtype][0]
    keys, counts = table.patterns()
    native = keys.view(fdt)
    v64 = native.astype(np.float64)
    nan = np.isnan(v64)
    nan_omitted = int(counts[nan].sum())
    elements = int(counts.sum())
    if nan_omitted and nan_policy == "raise":
        raise NaNInputError(f"tensor {name!r} has {nan_omitted} NaN elements (nan_policy='raise')", value=nan_omitted)
    native, v64, counts = native[~nan], v64[~nan], counts[~nan]
    n = int(counts.sum())
    support_bits = int(native.size)
    order = np.argsort(v64, kind="stable")
    sv64, snat, sc = v64[order], native[order], counts[order]
    first = np.flatnonzero(np.concatenate(([True], sv64[1:] != sv64[:-1]))) if sv64.size else np.zeros(0, np.intp)
    uv, uv64 = snat[first].copy(), sv64[first]
    uv[uv64 == 0] = 0  # the zero value is reported as +0.0, as the reference's support does
    uc = np.add.reduceat(sc, first) if sc.size else sc
    support_value = int(first.size)
    b_star = natural_precision(support_size=support_value)
    std = _std(uv64, uc, n)
    if delta is None:
        d = std / DELTA_STD_DIVISOR
        d, rule = (d, f"std/{DELTA_STD_DIVISOR} (std of the merged table)") if math.isfinite(d) and d > 0 else (
            1.0, f"fallback 1: std/{DELTA_STD_DIVISOR} is not a positive finite number")
    else:
        d, rule = float(delta), "--delta"
    bins = histogram_bins(uv, d)  # exact ⌊v/Δ⌋, non-decreasing in v
    bstart = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    hcounts = np.add.reduceat(uc, bstart).astype(np.int64)
    ci = entropy_bootstrap_interval_from_counts(hcounts, n_resamples=int(n_resamples), seed=int(seed))
    entropy = EntropyEstimate(d, rule, std, entropy_bits_from_counts(hcounts),
                              entropy_bits_from_counts(hcounts, correction="miller-madow"), ci, int(seed))
    fit = _ggd_summary(uv64, uc)
    fa = tuple(FormatAnalysis(f, _census(f, uv, uc, support_value, max_collisions), min_voronoi_margin(native, f),
                              "element", None, _OP_NOT_SCANNED) for f in fmts)
    return TensorAnalysis(name=name, dtype=str(fdt), shape=tuple(shape) if shape is not None else (elements,),
                          elements=elements, nan_omitted=nan_omitted, support_size_value=support_value,
                          support_size_bits=support_bits, natural_precision_bits=b_star, entropy=entropy, ggd=fit, formats=fa)


def _finish_task(merged, entry: TensorEntry, kw: dict):
    if isinstance(merged, _Failed):
        return TensorScan(entry, None, merged.error)
    try:
        return TensorScan(entry, tensor_statistics(merged, name=entry.name, shape=entry.shape, **kw), None)
    except NatprecError as exc:
        return TensorScan(entry, None, str(exc))


# ----------------------------------------------------------------------------------------------- the scan


@dataclass(frozen=True)
class TensorScan:
    """One tensor of a scan: its analysis, or the error that stopped it."""

    entry: TensorEntry
    analysis: TensorAnalysis | None
    error: str | None

    def to_dict(self) -> dict:
        d = {"name": self.entry.name, "shard": Path(self.entry.shard).name}
        if self.error is not None:
            return {**d, "dtype": self.entry.dtype, "shape": list(self.entry.shape), "error": self.error}
        return {**d, **self.analysis.to_dict()}


@dataclass(frozen=True)
class ScanResult:
    """DEF-SCAN — every tensor of a checkpoint, the shards that failed, and the model summary."""

    plan: CheckpointPlan
    tensors: tuple[TensorScan, ...]
    chunk_elements: int
    scheduler: str
    formats: tuple[str, ...]
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.plan.shard_errors and all(t.error is None for t in self.tensors)

    def to_dict(self) -> dict:
        return to_strict({
            "source": self.plan.source, "shards": [Path(s).name for s in self.plan.shards], "scheduler": self.scheduler,
            "chunk_elements": self.chunk_elements, "formats": list(self.formats), "ok": self.ok,
            "shard_errors": list(self.plan.shard_errors), "skipped": list(self.plan.skipped),
            "summary": self.summary, "tensors": [t.to_dict() for t in self.tensors],
        })


def _summary(tensors: tuple[TensorScan, ...], formats) -> dict:
    """The model summary: element-weighted means and extremes over the tensors measured."""
    good = [t.analysis for t in tensors if t.analysis is not None]
    n = sum(a.elements - a.nan_omitted for a in good)
    out = {"tensors_measured": len(good), "tensors_failed": sum(t.error is not None for t in tensors), "elements": n}
    if not good:
        return out
    out["max_natural_precision_bits"] = max(a.natural_precision_bits for a in good)
    out["max_support_size_value"] = max(a.support_size_value for a in good)
    out["mean_plugin_bits"] = math.fsum((a.elements - a.nan_omitted) * a.entropy.plugin_bits for a in good) / n
    per = {}
    for i, name in enumerate(formats):
        rs = [a.formats[i] for a in good]
        per[name] = {"injective_tensors": sum(r.injectivity.injective for r in rs),
                     "colliding_values": sum(r.injectivity.colliding_values for r in rs),
                     "min_margin": min(r.min_margin for r in rs)}
    out["formats"] = per
    return out


def _graph(plan: CheckpointPlan, chunk_elements: int, kw: dict):
    import dask

    out = []
    for e in plan.tensors:
        parts = [dask.delayed(chunk_table, pure=True)(s) for s in chunk_specs(e, chunk_elements)]
        while len(parts) > 1:  # a binary tree of merges (addition of counts: any order gives the same table)
            parts = [dask.delayed(_merge_task, pure=True)(*parts[i:i + 2]) for i in range(0, len(parts), 2)]
        out.append(dask.delayed(_finish_task, pure=True)(parts[0], e, kw))
    return out


def _run(tasks, scheduler, progress):
    import dask

    if not isinstance(scheduler, str) or scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        from distributed import Client, as_completed

        client = scheduler if not isinstance(scheduler, str) else Client(scheduler, set_as_default=False)
        try:
            with client.as_current():
                futures = client.compute(tasks)
                for i, _ in enumerate(as_completed(futures), 1):
                    if progress:
                        progress(i, len(futures))
                return client.gather(futures)
        finally:
            if isinstance(scheduler, str):
                client.close()
    if scheduler not in ("threads", "processes", "synchronous"):
        raise InvalidParameterError(f"--scheduler must be threads, processes, synchronous or a tcp:// address; got {scheduler!r}",
                                    value=scheduler)
    from dask.callbacks import Callback

    state = {"done": 0, "total": 0}

    def start_state(dsk, st):
        state["total"] = len(dsk)

    def post(key, result, dsk, st, worker_id):
        state["done"] += 1
        if progress:
            progress(state["done"], max(state["total"], state["done"]))

    with Callback(start_state=start_state, posttask=post):
        return list(dask.compute(*tasks, scheduler=scheduler))


def scan_checkpoint(checkpoint, formats=DEFAULT_SCAN_FORMATS, *, scheduler="threads", chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
                    delta: float | None = None, nan_policy: str = "raise", max_collisions: int = DEFAULT_MAX_COLLISIONS,
                    n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, tensors=None, progress=None) -> ScanResult:
    """DEF-SCAN — every float tensor of a checkpoint, measured chunk by chunk on Dask and merged exactly.

    ``scheduler``: ``"threads"`` / ``"processes"`` / ``"synchronous"`` (Dask's local schedulers), a
    ``tcp://HOST:PORT`` address of a running ``dask.distributed`` scheduler, or a ``distributed.Client``.
    ``tensors``: shell-style name patterns (default: every float tensor).  ``progress(done, total)``
    is called as tasks finish.  A shard that cannot be read is listed in
    ``plan.shard_errors`` and a tensor whose chunk cannot be read carries ``error``; the rest is measured.
    """
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, (int, np.integer)) or chunk_elements < 1:
        raise InvalidParameterError(f"--chunk-elements must be an integer >= 1; got {chunk_elements!r}", value=chunk_elements)
    names = tuple(get_format(f).name for f in ((formats,) if isinstance(formats, str) else formats))
    for f in names:
        if not isinstance(get_format(f), ElementFormat):
            raise InvalidParameterError(f"scan measures element formats only; {f} is a block format (spec/14)", value=f)
    plan = plan_checkpoint(checkpoint, tensors)
    kw = {"formats": names, "delta": delta, "nan_policy": nan_policy, "max_collisions": int(max_collisions),
          "n_resamples": int(n_resamples), "seed": int(seed)}
    tensors = tuple(_run(_graph(plan, int(chunk_elements), kw), scheduler, progress)) if plan.tensors else ()
    label = scheduler if isinstance(scheduler, str) else f"distributed:{scheduler.scheduler.address}"
    return ScanResult(plan, tensors, int(chunk_elements), label, names, _summary(tensors, names))
