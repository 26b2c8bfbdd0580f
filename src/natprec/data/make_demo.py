"""Build ``demo.safetensors``, the tensor file ``natprec tensor`` analyses when given no FILE.

Run ``python src/natprec/data/make_demo.py``; the output is deterministic (fixed seed).
Three small tensors, each showing a different regime:

* ``weight`` — float16, 256×64, generalized Gaussian (β = 1.3, std ≈ 0.02, like a
  trained linear layer) with 8 outliers of ±(8…16)·std, so absmax-scaled formats
  lose resolution in the outliers' blocks.
* ``activation`` — bfloat16, 128×64, ReLU of a shifted Gaussian: about 60 % exact zeros.
* ``ternary`` — float32, 64×64, values in {−1, 0, +1} (BitNet-style); b* = 2 and
  every format with those three codewords is injective on it.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

from natprec.reference.ggd import sample, unit_variance_alpha

__all__ = ["SEED", "make_tensors", "main"]

SEED = 20240611


def make_tensors(seed: int = SEED) -> dict[str, np.ndarray]:
    """The demo tensors by name (safetensors stores them by dtype alignment, then name)."""
    rng = np.random.default_rng(seed)
    std = 0.02
    beta = 1.3
    w = sample(256 * 64, beta, std * unit_variance_alpha(beta), rng=rng).reshape(256, 64)
    out_idx = rng.choice(w.size, size=8, replace=False)
    w.flat[out_idx] = rng.choice([-1.0, 1.0], size=8) * rng.uniform(8, 16, size=8) * std
    act = np.maximum(rng.standard_normal((128, 64)) - 0.25, 0.0)
    ter = rng.choice([-1.0, 0.0, 1.0], size=(64, 64), p=[0.3, 0.4, 0.3])
    return {
        "weight": w.astype(np.float16),
        "activation": act.astype(ml_dtypes.bfloat16),
        "ternary": ter.astype(np.float32),
    }


def main() -> None:
    path = Path(__file__).with_name("demo.safetensors")
    save_file(make_tensors(), str(path), metadata={"made_by": "src/natprec/data/make_demo.py", "seed": str(SEED)})
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
