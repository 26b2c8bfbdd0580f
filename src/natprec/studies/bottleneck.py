"""DEF-BOTTLENECK-CAPACITY — seed 004's open problem on a small autoencoder: wider bottleneck or more precise one, per byte?

The study builds its own data and network (seeded, CPU, seconds): x = tanh(A z) in R^dim with a
latent z of ``latent`` dimensions whose standard deviations decay geometrically, an autoencoder
dim → hidden → w → hidden → dim (tanh hidden layers, linear code) trained in float32 for each
bottleneck width w, and the code rounded after training to each precision (post-training: the
network is not retrained per precision).  Each (w, precision) is a point (bytes of code per
example, test reconstruction MSE); from each point, the MSE gained per added byte by doubling the
width is compared with that gained by the next precision.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from natprec.model.deps import require_torch
from natprec.model.quantize import site_format
from natprec.reference import dequantize, quantize
from natprec.reference.errors import InvalidParameterError

from .epilogue import check_positive_int
from .plotting import save_figure
from .registry import Option, Steps, Study, claim_row

__all__ = ["BOTTLENECK_STUDY", "DEFAULT_PRECISIONS", "DEFAULT_WIDTHS", "bottleneck_data", "bottleneck_study",
           "bottleneck_lines", "bottleneck_plots", "check_learning_rate", "check_precisions", "check_widths", "code_bits",
           "pareto_front", "round_code", "train_autoencoder"]

DEFAULT_WIDTHS = (2, 4, 8, 16, 32)
#: intB: one absmax scale over the test codes (B bits per element; the scale is amortised and not counted);
#: bfloat16/float16: the code rounded unscaled; float32: the code as trained.
DEFAULT_PRECISIONS = ("int2", "int3", "int4", "int6", "int8", "bfloat16", "float16", "float32")


def code_bits(precision: str) -> int:
    """DEF-BOTTLENECK-CAPACITY — bits per code element of a precision name (intB → B, 16-bit floats 16, float32 32)."""
    if precision == "float32":
        return 32
    if precision in ("float16", "bfloat16"):
        return 16
    if precision.startswith("int") and precision[3:].isdigit() and 2 <= int(precision[3:]) <= 16:
        return int(precision[3:])
    raise InvalidParameterError(f"precision must be intB (2 ≤ B ≤ 16), bfloat16, float16 or float32; got {precision!r}",
                                value=precision)


def check_precisions(flag: str, v) -> tuple:
    """DEF-BOTTLENECK-CAPACITY — precision names :func:`code_bits` accepts (InvalidParameterError naming ``flag``)."""
    v = (v,) if isinstance(v, str) else tuple(v)
    if not v:
        raise InvalidParameterError(f"{flag}: no value", value=v)
    for p in v:
        try:
            code_bits(p)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{flag}: {exc}", value=p) from None
    return v


def check_widths(flag: str, v) -> tuple:
    """DEF-BOTTLENECK-CAPACITY — bottleneck widths: integers ≥ 1."""
    v = (v,) if isinstance(v, int) else tuple(v)
    if not v:
        raise InvalidParameterError(f"{flag}: no value", value=v)
    return tuple(check_positive_int(flag, w) for w in v)


def check_learning_rate(flag: str, v) -> float:
    """DEF-BOTTLENECK-CAPACITY — a finite learning rate > 0."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise InvalidParameterError(f"{flag} must be a finite number > 0; got {v!r}", value=v)
    return float(v)


def round_code(code, precision: str) -> np.ndarray:
    """DEF-BOTTLENECK-CAPACITY — the code rounded to ``precision`` (float32 array of ``code``'s shape)."""
    code_bits(precision)
    c = np.asarray(code, dtype=np.float32)
    if precision == "float32":
        return c
    if precision in ("float16", "bfloat16"):
        return dequantize(quantize(c, precision), precision).astype(np.float32)
    return site_format(precision).quantize_dequantize(c, per_channel=False)


def bottleneck_data(n: int, *, dim: int = 32, latent: int = 16, decay: float = 0.85, seed: int = 0, part: int = 0) -> np.ndarray:
    """DEF-BOTTLENECK-CAPACITY — n samples x = tanh(A z), z_i ~ N(0, decay^(2i)), A ~ N(0, 1/latent)^(dim×latent) (float32).

    ``seed`` fixes A (the data's geometry); the samples come from the generator ``[seed, part]``
    (part 0: training, 1: test), so the two sets are independent draws of the same source.
    """
    a = np.random.default_rng(seed).normal(0, 1 / math.sqrt(latent), (dim, latent))
    z = np.random.default_rng([seed, part]).normal(size=(n, latent)) * decay ** np.arange(latent)
    return np.tanh(z @ a.T).astype(np.float32)


def train_autoencoder(x, width: int, *, hidden: int = 64, steps: int = 1500, lr: float = 3e-3, seed: int = 0,
                      code_precision: str | None = None):
    """DEF-BOTTLENECK-CAPACITY — (encoder, decoder) trained by full-batch Adam on MSE (torch, float32, seeded).

    ``code_precision``: train with the code rounded (:func:`round_code`, on the batch) in the forward
    pass and the gradient passed straight through the rounding (quantization-aware training).
    """
    torch = require_torch()
    torch.manual_seed(seed)
    dim = x.shape[1]
    enc = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, width))
    dec = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, dim))
    xt = torch.from_numpy(np.asarray(x, np.float32))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
    for _ in range(int(steps)):
        opt.zero_grad()
        code = enc(xt)
        if code_precision is not None:
            rounded = torch.from_numpy(round_code(code.detach().numpy(), code_precision))
            code = code + (rounded - code).detach()
        loss = ((dec(code) - xt) ** 2).mean()
        loss.backward()
        opt.step()
    return enc.eval(), dec.eval()


def pareto_front(points: list[dict]) -> list[dict]:
    """DEF-BOTTLENECK-CAPACITY — the points no other point beats: none with ≤ bytes and < MSE (or < bytes and ≤ MSE)."""
    return [p for p in points if not any((q["bytes"] <= p["bytes"] and q["mse"] < p["mse"])
                                         or (q["bytes"] < p["bytes"] and q["mse"] <= p["mse"]) for q in points)]


def _gains(points: list[dict], widths, precisions) -> list[dict]:
    at = {(p["width"], p["precision"]): p for p in points}
    order = sorted(precisions, key=code_bits)
    out = []
    for p in points:
        w, pr = p["width"], p["precision"]
        wider = at.get((2 * w, pr))
        nxt = next((q for q in order if code_bits(q) > code_bits(pr)), None)
        finer = at.get((w, nxt)) if nxt else None
        row = {"width": w, "precision": pr}
        for key, q in (("widen", wider), ("finer", finer)):
            row[key] = None if q is None else {"to": [q["width"], q["precision"]], "added_bytes": q["bytes"] - p["bytes"],
                                               "mse_gain_per_byte": (p["mse"] - q["mse"]) / (q["bytes"] - p["bytes"])}
        out.append(row)
    return out


def _finer_wins(gains) -> str:
    """Where the next precision gains at least as much MSE per byte as doubling the width: "int2 (widths 2, 4), …"."""
    wins: dict[str, list] = {}
    for g in gains:
        if g["widen"] and g["finer"] and g["finer"]["mse_gain_per_byte"] >= g["widen"]["mse_gain_per_byte"]:
            wins.setdefault(g["precision"], []).append(str(g["width"]))
    return ", ".join(f"{pr} (widths {', '.join(ws)})" for pr, ws in wins.items()) or "no point"


def _verdicts(points, gains, qat: bool = False) -> list[dict]:
    at = {(p["width"], p["precision"]): p for p in points}
    claims = []
    ws = sorted({p["width"] for p in points})
    ratios = {pr: [at[(w, pr)]["mse"] / at[(w, "float32")]["mse"] for w in ws if (w, pr) in at and (w, "float32") in at]
              for pr in ("int8", "int4", "int2")}
    if ratios.get("int8") and ratios.get("int2"):
        claims.append(claim_row(
            "C-004-3-1",
            ("training with the code rounded" if qat else "rounding the trained code after training")
            + f" (widths {ws}): test MSE over float32's "
            + ", ".join(f"{pr} ×{min(r):.3g}–{max(r):.3g}" for pr, r in ratios.items() if r)
            + f" — 8 bits of code cost at most {max(ratios['int8']) - 1:.1%} of MSE, 2 bits at least ×{min(ratios['int2']):.3g}",
            "mixed" if max(ratios["int8"]) < 1.05 and max(ratios["int2"]) > 1.5 else
            "supported" if max(ratios["int8"]) >= 1.05 else "refuted"))
    if all(k in at for k in ((16, "float16"), (32, "float16"), (16, "float32"))):
        base, wide, fine = at[(16, "float16")], at[(32, "float16")], at[(16, "float32")]
        both = sum(1 for g in gains if g["widen"] and g["finer"])
        widen_wins = sum(1 for g in gains if g["widen"] and g["finer"]
                         and g["widen"]["mse_gain_per_byte"] > g["finer"]["mse_gain_per_byte"])
        claims.append(claim_row(
            "C-004-3-2",
            f"16 → 32 nodes at float16 (+32 bytes/example) takes MSE {base['mse']:.4g} → {wide['mse']:.4g}; float16 → float32 "
            f"at 16 nodes (+32 bytes) → {fine['mse']:.4g}; over all points with both moves, widening gains more MSE per byte "
            f"in {widen_wins} of {both}; the next precision wins from {_finer_wins(gains)}",
            "refuted" if (base["mse"] - fine["mse"]) < 0.1 * (base["mse"] - wide["mse"]) else "mixed"))
    return claims


def bottleneck_study(mm=None, *, widths=DEFAULT_WIDTHS, precisions=DEFAULT_PRECISIONS, dim: int = 32, latent: int = 16,
                     train: int = 4096, test: int = 2048, steps: int = 1500, hidden: int = 64, lr: float = 3e-3,
                     qat: bool = False, seed: int = 0, progress=False) -> dict:
    """DEF-BOTTLENECK-CAPACITY — train one autoencoder per width, round its test codes to each precision, measure MSE.

    ``qat``: also train one network per (width, intB) with the code rounded during training
    (:func:`train_autoencoder` ``code_precision``); its test MSE is the point's ``mse`` and the
    post-training one stays as ``mse_post_training``.
    """
    widths = check_widths("--widths", widths)
    precisions = check_precisions("--precisions", precisions)
    dim, latent, train, test, steps, hidden = (check_positive_int(f, v) for f, v in (
        ("--dim", dim), ("--latent", latent), ("--train", train), ("--test", test), ("--steps", steps), ("--hidden", hidden)))
    seed = int(seed)
    lr = check_learning_rate("--lr", lr)
    torch = require_torch()
    t0 = time.perf_counter()
    xtr = bottleneck_data(train, dim=dim, latent=latent, seed=seed)
    xte = bottleneck_data(test, dim=dim, latent=latent, seed=seed, part=1)
    points, train_mse, errors = [], {}, []
    aware = [pr for pr in precisions if pr.startswith("int")] if qat else []
    steps_ = Steps("bottleneck", len(widths) * (1 + len(aware)), progress)
    with torch.random.fork_rng():
        for w in widths:
            enc, dec = train_autoencoder(xtr, w, hidden=hidden, steps=steps, lr=lr, seed=seed + w)
            with torch.no_grad():
                xt = torch.from_numpy(xte)
                code = enc(xt).numpy()
                train_mse[str(w)] = float(((dec(enc(torch.from_numpy(xtr))) - torch.from_numpy(xtr)) ** 2).mean())
                if not (math.isfinite(train_mse[str(w)]) and np.isfinite(code).all()):
                    errors.append({"what": f"width {w}", "error": f"training diverged (train MSE {train_mse[str(w)]!r})"})
                    for _ in range(1 + len(aware)):
                        steps_.step(f"width {w}")
                    continue
                for pr in precisions:
                    rec = dec(torch.from_numpy(round_code(code, pr))).numpy().astype(np.float64)
                    points.append({"width": w, "precision": pr, "bits": code_bits(pr), "bytes": w * code_bits(pr) / 8,
                                   "mse": float(np.mean((rec - xte) ** 2))})
            steps_.step(f"width {w}")
            for pr in aware:
                point = next(p for p in points if p["width"] == w and p["precision"] == pr)
                enc_q, dec_q = train_autoencoder(xtr, w, hidden=hidden, steps=steps, lr=lr, seed=seed + w, code_precision=pr)
                with torch.no_grad():
                    code_q = round_code(enc_q(torch.from_numpy(xte)).numpy(), pr)
                    mse = float(np.mean((dec_q(torch.from_numpy(code_q)).numpy().astype(np.float64) - xte) ** 2))
                if math.isfinite(mse):
                    point["mse_post_training"], point["mse"] = point["mse"], mse
                else:
                    errors.append({"what": f"width {w} {pr} (aware)", "error": f"training diverged (test MSE {mse!r})"})
                steps_.step(f"width {w} {pr}")
    gains = _gains(points, widths, precisions)
    front = pareto_front(points)
    return {"study": "bottleneck", "spec": "DEF-BOTTLENECK-CAPACITY", "model": "its own autoencoder (seeded, CPU)",
            "settings": {"widths": list(widths), "precisions": list(precisions), "dim": dim, "latent": latent, "train": train,
                         "test": test, "steps": steps, "hidden": hidden, "lr": lr, "seed": seed,
                         "qat": bool(qat),
                         "quantization": ("intB: trained with the rounded code (straight-through)" if qat else "post-training")
                         + "; intB one absmax scale over the codes of a batch (not counted in bytes)"},
            "results": {"data_variance": float(np.var(xte)), "train_mse": train_mse, "points": points, "gains": gains,
                        "pareto": [[p["width"], p["precision"]] for p in sorted(front, key=lambda p: p["bytes"])]},
            "claims": _verdicts(points, gains, qat), "timing": {"total": time.perf_counter() - t0}, "errors": errors}


def bottleneck_lines(doc: dict) -> list[str]:
    """DEF-BOTTLENECK-CAPACITY — the test MSE per width × precision, the Pareto front, the verdicts."""
    pts = doc["results"]["points"]
    precs = doc["settings"]["precisions"]
    at = {(p["width"], p["precision"]): p for p in pts}
    front = {tuple(x) for x in doc["results"]["pareto"]}
    out = [f"test reconstruction MSE (data variance {doc['results']['data_variance']:.4g}); * = on the bytes–MSE Pareto front",
           f"{'width':>5} " + " ".join(f"{p:>11}" for p in precs)]
    for w in doc["settings"]["widths"]:
        out.append(f"{w:>5} " + " ".join(f"{at[(w, p)]['mse']:>10.4g}{'*' if (w, p) in front else ' '}" for p in precs))
    out.append("")
    out += [f"{c['id']} {c['verdict']}: {c['measured']}" for c in doc["claims"]]
    return out


def bottleneck_plots(doc: dict, out_dir: Path) -> list[Path]:
    """DEF-BOTTLENECK-CAPACITY — test MSE against code bytes per example, one line per width, the Pareto front marked."""
    from natprec.model.deps import require_matplotlib

    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pts = doc["results"]["points"]
    for w in doc["settings"]["widths"]:
        ps = sorted((p for p in pts if p["width"] == w), key=lambda p: p["bytes"])
        ax.plot([p["bytes"] for p in ps], [p["mse"] for p in ps], marker="o", ms=3, label=f"width {w}")
    front = sorted((p for p in pts if [p["width"], p["precision"]] in doc["results"]["pareto"]), key=lambda p: p["bytes"])
    ax.plot([p["bytes"] for p in front], [p["mse"] for p in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bytes of code per example (width × bits / 8)")
    ax.set_ylabel("test reconstruction MSE")
    ax.set_title("Bottleneck: wider or more precise?")
    ax.legend(fontsize=7)
    return [save_figure(plt, fig, out_dir, "bottleneck.png")]


BOTTLENECK_STUDY = Study(
    name="bottleneck",
    summary="a small autoencoder: capacity per byte from a wider vs a more precise bottleneck (seed 004, spec/12)",
    spec="DEF-BOTTLENECK-CAPACITY",
    run=bottleneck_study,
    lines=bottleneck_lines,
    plots=bottleneck_plots,
    needs_model=False,
    claims=("C-004-3-1", "C-004-3-2"),
    options=(
        Option("widths", "ints", DEFAULT_WIDTHS, "bottleneck widths (one network trained per width)", check_widths),
        Option("precisions", "strs", DEFAULT_PRECISIONS, "code precisions: intB, bfloat16, float16, float32", check_precisions),
        Option("dim", "int", 32, "data dimension", check_positive_int),
        Option("latent", "int", 16, "latent dimension of the data", check_positive_int),
        Option("train", "int", 4096, "training samples", check_positive_int),
        Option("test", "int", 2048, "test samples", check_positive_int),
        Option("steps", "int", 1500, "full-batch Adam steps per network", check_positive_int),
        Option("hidden", "int", 64, "hidden layer width", check_positive_int),
        Option("lr", "float", 3e-3, "Adam learning rate", check_learning_rate),
        Option("qat", "flag", False, "also train one network per width and intB with the rounded code (slower)"),
        Option("seed", "int", 0, "seed of the data and the networks"),
    ),
)
