"""`natprec rd` — R(D), R_SLB and codebook operating points for Gaussian/GGD sources (spec/10-rate-distortion.md)."""

from __future__ import annotations

import json
import math

from natprec.reference import ggd
from natprec.reference import ratedistortion as rd
from natprec.reference.errors import InvalidParameterError, MissingDependencyError

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``rd`` subcommand."""
    p = subparsers.add_parser("rd", help="rate–distortion of a Gaussian/GGD source and formats' operating points")
    p.add_argument("--source", choices=("gaussian", "ggd"), default="gaussian")
    p.add_argument("--beta", type=float, default=None, help="GGD shape (required for --source ggd)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--distortion", type=float, help="MSE D of the unit-variance source")
    g.add_argument("--rate", type=float, help="rate R in bits (D from the Shannon lower bound, then R(D) at it)")
    p.add_argument("--format", action="append", default=[], help="element format name (repeatable)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", metavar="FILE.png")
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
    beta = 2.0 if args.source == "gaussian" else args.beta
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


def run(args) -> int:
    """Run ``natprec rd``; returns 0, or 1 when Blahut–Arimoto did not converge (named errors propagate)."""
    out = _report(args)
    if args.plot:
        _plot(out, args.plot)
    if args.json:
        print(json.dumps(out, indent=2))
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
