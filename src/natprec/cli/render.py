"""How every ``natprec`` command presents its results: aligned text tables, numbers, strict JSON on stdout."""

from __future__ import annotations

from natprec.strictjson import dumps

__all__ = ["emit_json", "fnum", "table", "kv", "wrap"]


def emit_json(doc, *, indent: int = 2) -> None:
    """Print ``doc`` as strict JSON (NaN and ±Inf as the strings ``"nan"``, ``"inf"``, ``"-inf"``)."""
    print(dumps(doc, indent=indent))


def fnum(x, spec: str | None = ".6g") -> str:
    """A float for tables (``"nan"`` etc. too); ``spec=None`` gives the shortest repr that round-trips, ``None`` gives "-"."""
    if x is None:
        return "-"
    f = float(x)
    return repr(f) if spec is None else format(f, spec)


def table(headers: list[str], rows: list[list], right: set[int] = frozenset()) -> str:
    """Aligned plain-text table; columns in ``right`` are right-aligned (numbers)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def kv(pairs: list[tuple[str, str]]) -> str:
    """``key  value`` lines, the keys padded to one width."""
    w = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in pairs)


def wrap(items: list[str], width: int = 96, indent: str = "    ") -> str:
    """``items`` space-separated on indented lines of at most ``width`` characters."""
    lines, cur = [], indent
    for it in items:
        if len(cur) + len(it) + 1 > width and cur.strip():
            lines.append(cur.rstrip())
            cur = indent
        cur += it + " "
    lines.append(cur.rstrip())
    return "\n".join(lines)
