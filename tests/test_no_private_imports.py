"""Nothing outside reference/ reaches into a private name of natprec.reference.

An AST scan of every .py file in src/, accelerated/, conformance/, tests/, bench/ and
proofs_lean/ flags, with file:line:

* an import of an underscore module: ``from natprec.reference._domain import …``,
  ``import natprec.reference._domain``, ``from ..reference._domain import …``;
* an import of an underscore name: ``from natprec.reference.formats import _resolve``;
* an attribute path that lands on one: ``natprec.reference.formats._resolve``,
  ``ref.formats._resolve`` or ``_fmts._resolve`` where the name is bound to (part of)
  natprec.reference by an import in the same file;
* in a file that imports from natprec.reference, an attribute named like a private member
  of a reference class (``f._extended``, ``fmt._scale``, ``cb._key``): the scan cannot type
  ``f``, so the name decides.

Dunder names (``__all__``, ``__file__``) are not private.  What the tiers and tests need is
public in natprec.reference (see spec/00-conventions.md: prepare/execute plans).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "accelerated", "conformance", "tests", "bench", "proofs_lean")
#: folder → the package its modules belong to (pyproject's package-dir); other folders hold scripts.
PACKAGES = {"accelerated": "natprec.accelerated", "conformance": "natprec.conformance", "src": ""}


def _reference_private_members() -> frozenset[str]:
    """Private members of the reference's classes: methods, class attributes, slots and ``self._x`` assignments."""
    names = set()
    for f in (ROOT / "reference").glob("*.py"):
        for cls in (n for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.ClassDef)):
            for n in ast.walk(cls):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(n.name)
                elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
                    names.add(n.attr)
                elif isinstance(n, ast.Name):
                    names.add(n.id)
                elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
                    names.add(n.value)  # __slots__ entries
    return frozenset(n for n in names if _is_private(n))


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _private_ref(path: str) -> bool:
    parts = path.split(".")
    return parts[:2] == ["natprec", "reference"] and any(_is_private(p) for p in parts[2:])


PRIVATE_MEMBERS = _reference_private_members()


def _package_of(rel: Path) -> list[str] | None:
    """The package (as parts) that relative imports in file ``rel`` start from; None for scripts."""
    top = rel.parts[0]
    if top not in PACKAGES:
        return None
    base = PACKAGES[top].split(".") if PACKAGES[top] else []
    return base + list(rel.parts[1:-1])


def _absolute(node: ast.ImportFrom, package: list[str] | None) -> str | None:
    if node.level == 0:
        return node.module
    if package is None or node.level - 1 > len(package):
        return None
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _dotted(node: ast.AST) -> tuple[str, list[str]] | None:
    """``a.b.c`` → ("a", ["b", "c"]); None when the chain does not start at a name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, attrs[::-1]) if isinstance(node, ast.Name) else None


def private_uses(source: str, package: list[str] | None = None) -> list[tuple[int, str]]:
    """(line, what) for every reach into a private name of natprec.reference in ``source``."""
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> the dotted path it stands for
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _private_ref(a.name):
                    hits.append((node.lineno, f"import {a.name}"))
                if a.asname:
                    bound[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node, package)
            if mod is None:
                continue
            if _private_ref(mod):
                hits.append((node.lineno, f"from {mod} import …"))
            for a in node.names:
                full = f"{mod}.{a.name}"
                if _is_private(a.name) and _private_ref(full):
                    hits.append((node.lineno, f"from {mod} import {a.name}"))
                bound[a.asname or a.name] = full
    uses_reference = any(p.split(".")[:2] == ["natprec", "reference"] for p in bound.values())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            d = _dotted(node)
            path = ".".join([bound[d[0]], *d[1]]) if d and d[0] in bound else None
            if path and _private_ref(path):
                hits.append((node.lineno, f"{ast.unparse(node)} (= {path})"))
            elif uses_reference and node.attr in PRIVATE_MEMBERS:
                hits.append((node.lineno, f"{ast.unparse(node)} (a private member of a reference class)"))
    return sorted(hits)


def _files():
    for top in SCANNED:
        for f in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in f.parts:
                yield f.relative_to(ROOT)


def test_nothing_outside_reference_imports_a_private_reference_name():
    found = [f"{rel}:{line}: {what}" for rel in _files()
             for line, what in private_uses((ROOT / rel).read_text(), _package_of(rel))]
    assert not found, "private natprec.reference names used outside reference/:\n" + "\n".join(found)


def test_the_scan_covers_the_tiers_the_cli_and_the_tests():
    scanned = {rel.parts[0] for rel in _files()}
    assert {"src", "accelerated", "conformance", "tests", "bench"} <= scanned
    assert Path("tests/test_no_private_imports.py") in set(_files())
    assert {"_extended", "_zero_index", "_valid", "_decode", "_scale_blocks"} <= PRIVATE_MEMBERS


BAD = [
    ("from natprec.reference._domain import nan_mask", None),
    ("from natprec.reference.formats import _resolve", None),
    ("from natprec.reference import _domain", None),
    ("import natprec.reference._domain", None),
    ("import natprec.reference._domain as d", None),
    ("import natprec.reference as r\nr.formats._resolve(1)", None),
    ("from natprec.reference import formats as _fmts\n_fmts._resolve('x')", None),
    ("import natprec\nnatprec.reference.formats._resolve", None),
    ("import natprec.accelerated\nnatprec.reference._domain.nan_mask", None),
    ("from natprec import reference\nreference._domain.layout_of", None),
    ("def f():\n    from natprec.reference import formats\n    return formats.get_format('x')._extended", None),
    ("from ..reference._domain import nan_mask", ["natprec", "conformance"]),
    ("from .. import reference as r\nr._domain", ["natprec", "conformance"]),
]
GOOD = [
    ("from natprec.reference import nan_mask, prepare_quantize", None),
    ("from natprec.reference.codebook import exact_gaps", None),
    ("import natprec.reference as ref\nref.__all__, ref.formats.__file__", None),
    ("import numpy as np\nnp._NoValue", None),
    ("from natprec.accelerated import device\ndevice._OVERRIDE", None),
    ("import numpy as np\nx = np.zeros(3)\nx._extended", None),  # no natprec.reference import: not a reference object
    ("from .plans import _x", ["natprec", "accelerated"]),
]


@pytest.mark.parametrize("source, package", BAD, ids=[b[0].splitlines()[-1] for b in BAD])
def test_the_scan_flags_a_private_use(source, package):
    hits = private_uses(source, package)
    assert hits and all(line >= 1 for line, _ in hits)


@pytest.mark.parametrize("source, package", GOOD, ids=[g[0].splitlines()[-1] for g in GOOD])
def test_the_scan_passes_public_uses(source, package):
    assert private_uses(source, package) == []
