"""`natprec rd` — R(D), R_SLB and codebook operating points for Gaussian/GGD sources (spec/10-rate-distortion.md).

``--table NAME`` prints one of the chapter's studies instead of a single point: Lloyd–Max
quantizers (DEF-RD-LLOYD), the entropy-coded uniform quantizer (DEF-RD-ECSQ), the price of
uniformity (DEF-RD-PRICE-UNIFORM), NF4's mismatch penalty (DEF-RD-NF4-MISMATCH), blockwise
absmax vs quantile scaling (DEF-RD-BLOCK-SCALING) and the seed-003 table (DEF-RD-CONTINUOUS,
"Seed 003 errata").  Every number in a table's JSON is what the reference function returns
for the same arguments.

``--json`` output is strict JSON, as in :mod:`natprec.cli`: NaN and ±Inf are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict

from natprec.reference import ggd
from natprec.reference import ratedistortion as rd
from natprec.reference.errors import InvalidParameterError, MissingDependencyError

__all__ = ["add_parser", "run", "TABLES", "D_REF", "SEED003_CLAIMS"]

TABLES = ("lloyd-max", "ecsq", "price-of-uniformity", "nf4-mismatch", "block-scaling", "seed003")
#: seed 003's β = 2 row has R_SLB = 3.19 bits, so for a unit-variance source D_ref = 2^(−2·3.19).
D_REF = 2.0 ** (-2.0 * 3.19)
#: seed 003's claimed R(D), R_SLB and gap (bits) at D_ref, per β.
SEED003_CLAIMS = {
    1.3: {"rate_bits": 3.37, "slb_bits": 3.04, "gap_bits": 0.34},
    1.7: {"rate_bits": 3.40, "slb_bits": 3.15, "gap_bits": 0.26},
    2.0: {"rate_bits": 3.41, "slb_bits": 3.19, "gap_bits": 0.22},
}
#: the seed prints two decimals: a claim holds when it is within this of our value (or bracket).
SEED_ROUNDING_BITS = 0.005
TABLE_BETAS = tuple(SEED003_CLAIMS)
DEFAULT_LEVELS = 16
MAX_LEVELS = 256  # Lloyd–Max needs ~1 s per β at 256 levels
DEFAULT_BLOCK_SIZES = (16, 64, 256, 1024, 4096)
MAX_BLOCK_SIZE = 1 << 16  # block_scaling_mse draws 2^16 values per block size
BETA_RANGE = (0.05, 50.0)  # the β search range of DEF-RD-GGD-FIT
MAX_ECSQ_CELLS = 200_000  # ~1e-5 s per cell per Brent step: keeps one ECSQ row near 2 s


def _list_of(kind, what: str):
    """An argparse type: one value or comma-separated values of ``kind``."""

    def parse(text: str) -> list:
        parts = [t.strip() for t in text.split(",")]
        try:
            if not all(parts):
                raise ValueError(text)
            return [kind(t) for t in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None

    return parse


_float_list = _list_of(float, "a number or comma-separated numbers")
_int_list = _list_of(int, "an integer or comma-separated integers")


def add_parser(subparsers):
    """Register the ``rd`` subcommand."""
    p = subparsers.add_parser(
        "rd",
        help="rate–distortion of a Gaussian/GGD source and formats' operating points",
        description="One point: --distortion D or --rate R (with --source/--beta, --format). "
                    "A study: --table NAME over unit-variance GGD(β), β from --beta (default 1.3, 1.7, 2.0).",
    )
    p.add_argument("--source", choices=("gaussian", "ggd"), default=None,
                   help="source (default: ggd when --beta is given, else gaussian); gaussian means β = 2 only")
    p.add_argument("--beta", type=_float_list, action="append", metavar="β",
                   help="GGD shape (implies --source ggd); with --table repeatable or comma-separated")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--distortion", type=float, help="MSE D of the unit-variance source (--table ecsq: default D_ref)")
    g.add_argument("--rate", type=float, help="rate R in bits (D from the Shannon lower bound, then R(D) at it)")
    p.add_argument("--format", action="append", default=[], help="element format name (repeatable)")
    p.add_argument("--table", choices=TABLES, help="print one rate–distortion study as a table (see spec/10)")
    p.add_argument("--levels", type=int, metavar="K",
                   help=f"codebook size for --table lloyd-max / price-of-uniformity (default {DEFAULT_LEVELS})")
    p.add_argument("--block-sizes", type=_int_list, action="append", metavar="N,N,...",
                   help="block sizes for --table block-scaling (default " + ",".join(map(str, DEFAULT_BLOCK_SIZES)) + ")")
    p.add_argument("--seed", type=int, help="Monte Carlo seed for --table block-scaling (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument("--plot", metavar="FILE.png", help="draw R(D), R_SLB and the operating points (needs matplotlib)")
    p.set_defaults(run=run)
    return p


def _codebook_for(name):
    from natprec.reference import get_format  # provided by the foundation

    fmt = get_format(name)
    cb = getattr(fmt, "codebook", None)
    if cb is None:
        raise InvalidParameterError(f"format {name!r} has no element codebook; only element formats have an operating point", name)
    return cb


def _report(args) -> dict:
    beta = 2.0 if args.source == "gaussian" else (args.beta[0] if args.beta else None)
    if beta is None:
        raise InvalidParameterError("--source ggd needs --beta", None)
    h = ggd.differential_entropy_bits(beta)
    if args.rate is not None:
        # Invert the SLB (exact for the Gaussian, within the BA bounds of it for GGD at these rates).
        d = 2.0 ** (2.0 * (h - args.rate)) / (2.0 * math.pi * math.e)
    else:
        d = args.distortion
    if beta == 2.0:
        r_bits = rd.gaussian_rate_bits(1.0, d)
        ba_gap = 0.0
        conv = True
    else:
        res = rd.rate_distortion_ggd(beta, d)
        r_bits, ba_gap, conv = res.rate_bits, res.ba_bound_gap_bits, res.converged
    slb = rd.slb_rate_bits(h, d)
    out = {
        "source": args.source,
        "beta": beta,
        "distortion": d,
        "rate_bits": r_bits,
        "slb_bits": slb,
        "gap_bits": r_bits - slb,
        "ba_bound_gap_bits": ba_gap,
        "converged": conv,
        "formats": {},
    }
    for name in args.format:
        op = rd.operating_point(_codebook_for(name), rd.GGDSource(beta), "mse")
        out["formats"][name] = {k: getattr(op, k) for k in op.__dataclass_fields__}
    return out


def _plot(out, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install natprec[plot]", path) from None
    import numpy as np

    h = ggd.differential_entropy_bits(out["beta"])
    ds = np.geomspace(1e-3, 0.9, 60)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ds, [h - 0.5 * math.log2(2 * math.pi * math.e * d) for d in ds], "--", label="R_SLB(D)")
    if out["beta"] == 2.0:
        ax.plot(ds, 0.5 * np.log2(1 / ds), label="R(D)")
    else:
        # The R(D) curve by Blahut–Arimoto on one grid, one point per slope, warm-started.
        src = rd.discretise_ggd(out["beta"])
        pts, log_q = [], None
        for slope in -np.geomspace(0.6, 400.0, 8):
            # 1e-3 bits is far below what the plot can show
            res = rd.blahut_arimoto(src.p, src.x, src.y, float(slope), tol_bits=1e-3, init_log_q=log_q)
            log_q = res.log_q
            if res.converged:
                pts.append((res.distortion, res.rate_bits))
        ax.plot(*zip(*sorted(pts)), "-", label="R(D) (Blahut–Arimoto)")
    ax.plot([out["distortion"]], [out["rate_bits"]], "ko", label="R(D) (this run)")
    for name, op in out["formats"].items():
        ax.plot([op["mse"]], [op["fixed_rate_bits"]], "s", label=f"{name} fixed rate")
        ax.plot([op["mse"]], [op["index_entropy_bits"]], "^", label=f"{name} index entropy")
    ax.set_xscale("log")
    ax.set_xlabel("MSE D (unit-variance source)")
    ax.set_ylabel("rate (bits)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _strict(obj):
    """``obj`` with every float made strict-JSON (``natprec.cli._jnum``: NaN/±Inf as strings)."""
    from natprec.cli import _jnum  # lazy: natprec.cli imports this module

    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float):  # numpy.float64 too (a float subclass)
        return _jnum(obj)
    return obj


def _emit_json(doc) -> None:
    from natprec.cli import _emit_json as emit  # json.dumps(allow_nan=False), as every natprec command

    emit(_strict(doc))


def _run_point(args) -> int:
    out = _report(args)
    if args.plot:
        _plot(out, args.plot)
    if args.json:
        _emit_json(out)
    else:
        print(f"source {out['source']} (beta={out['beta']:g}), D = {out['distortion']:.6g}")
        print(f"R(D)   = {out['rate_bits']:.5f} bits   R_SLB = {out['slb_bits']:.5f}   gap = {out['gap_bits']:.2e}")
        print(f"BA bound gap = {out['ba_bound_gap_bits']:.2e} bits, converged = {out['converged']}")
        for name, op in out["formats"].items():
            print(
                f"{name}: MSE {op['mse']:.4g} at scale {op['scale']:.4g}; fixed {op['fixed_rate_bits']:.3f} bits, "
                f"entropy {op['index_entropy_bits']:.3f} bits; entropy − R_SLB {op['gap_entropy_to_slb_bits']:.3f}"
            )
    return 0 if out["converged"] else 1


def run(args) -> int:
    """Run ``natprec rd``; returns 0, or 1 when Blahut–Arimoto or Lloyd–Max did not converge (named errors propagate)."""
    if args.table is not None:
        return _run_table(args)
    for opt, val in (("--levels", args.levels), ("--block-sizes", _flat(args.block_sizes) or None), ("--seed", args.seed)):
        if val is not None:
            raise InvalidParameterError(f"{opt} applies only with --table", val)
    if args.distortion is None and args.rate is None:
        raise InvalidParameterError("one of --distortion, --rate or --table is required", None)
    betas = _flat(args.beta)
    if len(betas) > 1:
        raise InvalidParameterError(f"one --beta without --table; got {len(betas)} values", betas)
    args.beta = betas or None
    if args.source is None:
        args.source = "ggd" if betas else "gaussian"
    elif args.source == "gaussian" and any(b != 2.0 for b in betas):
        raise InvalidParameterError(
            "--source gaussian is GGD(β = 2); use --source ggd (or no --source) for other --beta values", betas
        )
    return _run_point(args)


# ----------------------------------------------------------------------------- tables


def _flat(lists) -> list:
    return [v for group in (lists or []) for v in group]


def _table_betas(args) -> list[float]:
    betas = _flat(args.beta)
    if args.source == "gaussian":
        if any(b != 2.0 for b in betas):
            raise InvalidParameterError("--source gaussian is GGD(β = 2); use --source ggd for other --beta values", betas)
        betas = [2.0]
    elif not betas:
        betas = list(TABLE_BETAS)
    lo, hi = BETA_RANGE
    for b in betas:
        b = ggd.check_shape_scale(b)[0]  # NaN/Inf and β ≤ 0 raise the reference's named errors
        if not lo <= b <= hi:
            raise InvalidParameterError(f"--table needs β in [{lo:g}, {hi:g}]; got {b!r}", b)
    if args.table == "seed003":
        for b in betas:
            if b not in SEED003_CLAIMS:
                raise InvalidParameterError(
                    f"--table seed003 covers the seed's β ∈ {{{', '.join(f'{v:g}' for v in SEED003_CLAIMS)}}}; got {b!r}", b
                )
    return betas


def _check_table_options(args) -> None:
    t = args.table
    if args.rate is not None:
        raise InvalidParameterError(f"--rate does not apply to --table {t}", args.rate)
    if args.distortion is not None and t != "ecsq":
        raise InvalidParameterError(
            f"--distortion applies only to --table ecsq (seed003 uses the seed's D_ref = {D_REF:.6g})", args.distortion
        )
    if args.format:
        raise InvalidParameterError("--format does not apply with --table", args.format)
    if args.plot:
        raise InvalidParameterError("--plot does not apply with --table", args.plot)
    if args.levels is not None:
        if t not in ("lloyd-max", "price-of-uniformity"):
            raise InvalidParameterError("--levels applies only to --table lloyd-max or price-of-uniformity", args.levels)
        if not 2 <= args.levels <= MAX_LEVELS:
            raise InvalidParameterError(f"--levels must be between 2 and {MAX_LEVELS}; got {args.levels}", args.levels)
    if args.block_sizes is not None or args.seed is not None:
        if t != "block-scaling":
            opt = "--block-sizes" if args.block_sizes is not None else "--seed"
            raise InvalidParameterError(f"{opt} applies only to --table block-scaling", args.block_sizes or args.seed)
    for n in args.block_sizes or ():
        if not 1 <= n <= MAX_BLOCK_SIZE:
            raise InvalidParameterError(f"block sizes must be between 1 and {MAX_BLOCK_SIZE}; got {n}", n)
    if args.seed is not None and args.seed < 0:
        raise InvalidParameterError(f"--seed must be ≥ 0; got {args.seed}", args.seed)


def _lloyd_max_table(betas, levels):
    rows = []
    for b in betas:
        res = rd.lloyd_max(levels, rd.GGDSource(b))
        rate = math.log2(levels)
        slb = rd.slb_rate_bits(ggd.differential_entropy_bits(b), res.mse)
        rows.append({
            "beta": b, "levels": levels, "fixed_rate_bits": rate, "mse": res.mse, "slb_bits": slb,
            "gap_to_slb_bits": rate - slb, "iterations": res.iterations, "converged": res.converged,
            "codebook": [float(v) for v in res.codebook.values],
        })
    return {"levels": levels}, rows


def _ecsq_cells(d: float, b: float) -> float:
    """Cells ecsq_uniform sums at MSE d (step ≈ √(12d)): its cost."""
    return 2.0 * rd.ggd_quantile_abs(1e-16, b, ggd.unit_variance_alpha(b)) / math.sqrt(12.0 * d) + 3.0


def _ecsq_table(betas, distortion):
    d = D_REF if distortion is None else distortion
    rows = []
    for b in betas:
        if 0.0 < d < 1.0 and _ecsq_cells(d, b) > MAX_ECSQ_CELLS:
            raise InvalidParameterError(
                f"--table ecsq at D = {d:g} on GGD(β = {b:g}) needs ≈{_ecsq_cells(d, b):.3g} uniform cells "
                f"(limit {MAX_ECSQ_CELLS}); use a larger D or β", d
            )
        e = rd.ecsq_uniform_at_distortion(d, rd.GGDSource(b))
        rows.append({"beta": b, "distortion": d, **asdict(e)})
    return {"distortion": d, "high_rate_gap_bits": rd.ECSQ_HIGH_RATE_GAP_BITS}, rows


def _price_table(betas, levels):
    rows = []
    for b in betas:
        src = rd.GGDSource(b)
        rows.append({"beta": b, **rd.price_of_uniformity_bits(levels, src)})  # "converged": its Lloyd–Max run
    return {"levels": levels}, rows


def _nf4_table(betas):
    return {"levels": 16}, [rd.nf4_mismatch(b) for b in betas]


def _block_table(betas, sizes, seed):
    rows = []
    for b in betas:
        # One call per β: the reference draws every block size from one generator seeded by rng.
        rows += [{"beta": b, **asdict(r)} for r in rd.block_scaling_mse(b, sizes, rng=seed)]
    return {"block_sizes": list(sizes), "seed": seed, "n_values": 1 << 16, "codebook": "nf4"}, rows


def _claim(seed_value: float, lo: float, hi: float) -> str:
    """Whether a two-decimal seed number is consistent with our [lo, hi]."""
    return "holds" if lo - SEED_ROUNDING_BITS - 1e-12 <= seed_value <= hi + SEED_ROUNDING_BITS + 1e-12 else "does not hold"


def _seed003_table(betas):
    rows = []
    for b in betas:
        r = rd.rate_distortion_ggd(b, D_REF)
        e = rd.ecsq_uniform_at_distortion(D_REF, rd.GGDSource(b))
        claims = SEED003_CLAIMS[b]
        # Our R(D) is known to its BA bracket, widened by the last grid change (the discretisation estimate).
        lo, hi = r.rate_lower_bits - r.grid_change_bits, r.rate_upper_bits + r.grid_change_bits
        rows.append({
            "beta": b,
            "distortion": D_REF,
            "h_bits": ggd.differential_entropy_bits(b),
            "slb_bits": r.slb_bits,
            "rate_bits": r.rate_bits,
            "rate_lower_bits": r.rate_lower_bits,
            "rate_upper_bits": r.rate_upper_bits,
            "gap_bits": r.rate_bits - r.slb_bits,
            "ba_bound_gap_bits": r.ba_bound_gap_bits,
            "grid_change_bits": r.grid_change_bits,
            "grid": list(r.grid),
            "converged": r.converged,
            "ecsq_step": e.step,
            "ecsq_rate_bits": e.entropy_bits,
            "ecsq_gap_bits": e.gap_to_slb_bits,
            "seed": dict(claims),
            "verdict": {
                "slb_bits": _claim(claims["slb_bits"], r.slb_bits, r.slb_bits),
                "rate_bits": _claim(claims["rate_bits"], lo, hi),
                "gap_bits": _claim(claims["gap_bits"], lo - r.slb_bits, hi - r.slb_bits),
            },
        })
    params = {"distortion": D_REF, "seed_rounding_bits": SEED_ROUNDING_BITS, "high_rate_gap_bits": rd.ECSQ_HIGH_RATE_GAP_BITS}
    return params, rows


def _f(x, spec):
    return format(float(x), spec)


def _verdict_cell(v: dict) -> str:
    names = {"slb_bits": "R_SLB", "rate_bits": "R(D)", "gap_bits": "gap"}
    ok = [names[k] for k, s in v.items() if s == "holds"]
    bad = [names[k] for k, s in v.items() if s != "holds"]
    if not bad:
        return "all hold"
    return "; ".join(p for p in (("holds: " + ", ".join(ok)) if ok else "", "fails: " + ", ".join(bad)) if p)


def _render(table: str, params: dict, rows: list[dict]) -> str:
    from natprec.cli import _table  # lazy: natprec.cli imports this module

    lines = []
    if table == "lloyd-max":
        lines.append(f"Lloyd–Max fixed-rate quantizers, K = {params['levels']} levels, unit-variance GGD(β) (DEF-RD-LLOYD)")
        lines.append(_table(
            ["β", "K", "rate (bits)", "MSE", "R_SLB(MSE)", "rate − R_SLB", "largest codeword", "iterations", "converged"],
            [[f"{r['beta']:g}", r["levels"], _f(r["fixed_rate_bits"], ".4f"), _f(r["mse"], ".6g"), _f(r["slb_bits"], ".4f"),
              _f(r["gap_to_slb_bits"], ".4f"), _f(r["codebook"][-1], ".5f"), r["iterations"], r["converged"]] for r in rows],
            set(range(8)),
        ))
    elif table == "ecsq":
        lines.append(f"Entropy-coded uniform (mid-tread) quantizer at D = {params['distortion']:.6g}, unit-variance GGD(β) "
                     "(DEF-RD-ECSQ)")
        lines.append(_table(
            ["β", "step Δ", "MSE", "entropy (bits)", "R_SLB", "entropy − R_SLB"],
            [[f"{r['beta']:g}", _f(r["step"], ".6g"), _f(r["mse"], ".6g"), _f(r["entropy_bits"], ".4f"),
              _f(r["slb_bits"], ".4f"), _f(r["gap_to_slb_bits"], ".4f")] for r in rows],
            set(range(6)),
        ))
        lines.append(f"high-rate limit of entropy − R_SLB: ½log2(πe/6) = {params['high_rate_gap_bits']:.4f} bits (THM-RD-ECSQ-GAP)")
    elif table == "price-of-uniformity":
        lines.append(f"Price of uniformity at K = {params['levels']} levels (fixed rate {math.log2(params['levels']):.4g} bits), "
                     "unit-variance GGD(β) (DEF-RD-PRICE-UNIFORM)")
        lines.append(_table(
            ["β", "MSE uniform", "best step", "MSE Lloyd–Max", "price ρ (bits)", "Lloyd–Max converged"],
            [[f"{r['beta']:g}", _f(r["mse_uniform"], ".6g"), _f(r["uniform_step"], ".6g"), _f(r["mse_lloyd_max"], ".6g"),
              _f(r["price_bits"], ".4f"), r["converged"]] for r in rows],
            set(range(6)),
        ))
        lines.append("ρ = ½log2(MSE uniform / MSE Lloyd–Max): the rate the uniform grid costs at 6.02 dB per bit")
    elif table == "nf4-mismatch":
        lines.append("NF4 (MSE-optimal scale) on unit-variance GGD(β) vs 16-level Lloyd–Max and D_SLB(4 bits) "
                     "(DEF-RD-NF4-MISMATCH)")
        lines.append(_table(
            ["β", "scale", "MSE NF4", "MSE Lloyd–Max", "ratio", "penalty (bits)", "D_SLB(4 bits)", "ratio to D_SLB",
             "KL to Gaussian (bits)"],
            [[f"{r['beta']:g}", _f(r["scale"], ".5g"), _f(r["mse"], ".6g"), _f(r["mse_lloyd_max"], ".6g"),
              _f(r["ratio_to_lloyd_max"], ".4f"), _f(r["penalty_bits_vs_lloyd_max"], ".4f"), _f(r["mse_slb"], ".6g"),
              _f(r["ratio_to_slb"], ".4f"), _f(r["kl_to_gaussian_bits"], ".5f")] for r in rows],
            set(range(9)),
        ))
    elif table == "block-scaling":
        lines.append(f"Blockwise NF4 scaling on unit-variance GGD(β): absmax vs best quantile, Monte Carlo "
                     f"({params['n_values']} values per block size, seed {params['seed']}) (DEF-RD-BLOCK-SCALING)")
        lines.append(_table(
            ["β", "block n", "MSE absmax", "MSE quantile", "best q", "Ψ = absmax − quantile", "Ψ / MSE absmax"],
            [[f"{r['beta']:g}", r["block_size"], _f(r["mse_absmax"], ".6g"), _f(r["mse_quantile"], ".6g"),
              _f(r["quantile_level"], "g"), _f(r["difference"], ".3e"),
              f"{100.0 * r['difference'] / r['mse_absmax']:.2f}%" if r["mse_absmax"] > 0 else "-"] for r in rows],
            set(range(7)),
        ))
    else:  # seed003
        lines.append(f"Seed 003 at D_ref = 2^(−2·3.19) = {params['distortion']:.6g}, unit-variance GGD(β): "
                     "ours vs the seed's claims (DEF-RD-CONTINUOUS, spec/10 'Seed 003 errata')")
        lines.append(_table(
            ["β", "h (bits)", "R_SLB", "seed R_SLB", "R(D) [R_L, R_U]", "seed R(D)", "R − R_SLB", "seed gap",
             "ECSQ rate", "ECSQ − R_SLB", "verdict"],
            [[f"{r['beta']:g}", _f(r["h_bits"], ".4f"), _f(r["slb_bits"], ".4f"), _f(r["seed"]["slb_bits"], ".2f"),
              f"{r['rate_bits']:.5f} [{r['rate_lower_bits']:.5f}, {r['rate_upper_bits']:.5f}]",
              _f(r["seed"]["rate_bits"], ".2f"), _f(r["gap_bits"], ".1e"), _f(r["seed"]["gap_bits"], ".2f"),
              _f(r["ecsq_rate_bits"], ".4f"), _f(r["ecsq_gap_bits"], ".4f"), _verdict_cell(r["verdict"])] for r in rows],
            set(range(10)),
        ))
        lines.append(f"A seed number holds if it lies within {params['seed_rounding_bits']:g} bits (its rounding) of ours, "
                     "our R(D) taken as its BA bracket widened by the last grid change.")
        lines.append("The seed's R(D) and gap are close to the entropy-coded uniform quantizer's rate and its loss "
                     f"½log2(πe/6) = {params['high_rate_gap_bits']:.4f} bits, not the Shannon R(D) (which equals R_SLB here).")
    not_conv = [r["beta"] for r in rows if r.get("converged") is False]
    if not_conv:
        lines.append("not converged for β = " + ", ".join(f"{b:g}" for b in not_conv) + " (exit status 1)")
    return "\n".join(lines)


def _run_table(args) -> int:
    if args.block_sizes is not None:
        args.block_sizes = _flat(args.block_sizes)
    _check_table_options(args)
    betas = _table_betas(args)
    t = args.table
    levels = DEFAULT_LEVELS if args.levels is None else args.levels
    if t == "lloyd-max":
        params, rows = _lloyd_max_table(betas, levels)
    elif t == "ecsq":
        params, rows = _ecsq_table(betas, args.distortion)
    elif t == "price-of-uniformity":
        params, rows = _price_table(betas, levels)
    elif t == "nf4-mismatch":
        params, rows = _nf4_table(betas)
    elif t == "block-scaling":
        sizes = list(DEFAULT_BLOCK_SIZES) if args.block_sizes is None else args.block_sizes
        params, rows = _block_table(betas, sizes, 0 if args.seed is None else args.seed)
    else:
        params, rows = _seed003_table(betas)
    converged = all(r.get("converged", True) for r in rows)
    if args.json:
        _emit_json({"table": t, "betas": betas, **params, "rows": rows, "converged": converged})
    else:
        print(_render(t, params, rows))
    return 0 if converged else 1
