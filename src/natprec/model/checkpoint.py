"""DEF-OPERATIONAL-PRECISION-SITE — resumable runs: each finished site is kept, and a rerun of the same run reuses it.

A checkpoint is a text file of JSON lines: first ``{"settings": …}`` — everything a site's
result depends on, including a SHA-256 fingerprint of the model's parameters and of its float32
outputs on the calibration data — then one site record per line, appended as each site
finishes.  A rerun whose settings are equal reuses the records it finds (a last line cut short
by an interruption is ignored); any difference starts the file afresh.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from natprec import strictjson
from natprec.reference.errors import InputFileError

from .deps import require_torch

__all__ = ["fingerprint", "SiteCheckpoint"]


def fingerprint(model, outputs) -> str:
    """SHA-256 over the model's parameters and buffers (names, dtypes, shapes, bytes) and its float32 calibration outputs."""
    torch = require_torch()
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for o in outputs:
        h.update(o.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


class SiteCheckpoint:
    """DEF-OPERATIONAL-PRECISION-SITE — the finished sites of a run with ``settings``, read from and appended to ``path``."""

    def __init__(self, path, settings: dict):
        self.path = Path(path)
        self.settings = json.loads(strictjson.dumps(settings, indent=None))  # as it reads back
        self.records: dict[str, dict] = {}
        self.discarded = False
        lines = self._read()
        if lines and lines[0] == {"settings": self.settings}:
            self.records = {r["site"]: r for r in lines[1:] if isinstance(r, dict) and "site" in r}
            return
        self.discarded = bool(lines)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(strictjson.dumps({"settings": self.settings}, indent=None) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputFileError(f"checkpoint {self.path}: cannot write it ({exc})", value=str(self.path)) from None

    def _read(self) -> list:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"checkpoint {self.path}: cannot read it ({exc})", value=str(self.path)) from None
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by an interruption, and anything after it
        return out

    def append(self, record: dict) -> None:
        """Keep one finished site (a site that failed is measured again next time)."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(strictjson.dumps(record, indent=None) + "\n")
            f.flush()
