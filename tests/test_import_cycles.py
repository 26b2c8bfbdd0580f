"""No import cycles in natprec: the graph of every module-level and function-level import is acyclic.

The graph is drawn from the files (AST), not from ``sys.modules``, so an import inside a function
counts as much as one at the top: a cycle that only works because one side imports lazily is still
a cycle.  A package's own ``__init__`` importing its submodules is not an edge back from them: a
submodule's import of ``natprec.x.y`` is an edge to ``natprec.x.y`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Folder → the package it is (as pyproject.toml's package-dir maps them).
PACKAGE_ROOTS = {
    ROOT / "src" / "natprec": "natprec",
    ROOT / "reference": "natprec.reference",
    ROOT / "accelerated": "natprec.accelerated",
    ROOT / "conformance": "natprec.conformance",
}


def modules(roots: dict[Path, str]) -> dict[str, tuple[Path, bool]]:
    """Module name → (file, is a package ``__init__``), for every ``.py`` file under the roots."""
    out = {}
    for folder, package in roots.items():
        for f in sorted(folder.rglob("*.py")):
            parts = list(f.relative_to(folder).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts.pop()
            out[".".join([package, *parts])] = (f, is_pkg)
    return out


def _known(name: str, known) -> str | None:
    """The longest prefix of dotted ``name`` that is a known module (``a.b.c`` of a function ``c`` is ``a.b``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in known:
            return prefix
    return None


def imports_of(name: str, path: Path, is_pkg: bool, known) -> set[str]:
    """The known modules that module ``name`` imports anywhere in its file."""
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod.
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            m = _known(t, known)
            if m is not None and m != name:
                out.add(m)
    return out


def import_graph(roots: dict[Path, str]) -> dict[str, set[str]]:
    mods = modules(roots)
    return {name: imports_of(name, path, is_pkg, mods) for name, (path, is_pkg) in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, …, a], or None when the graph is acyclic (iterative depth-first search)."""
    state = {}  # absent: unvisited; 1: on the current path; 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_natprec_has_no_import_cycle():
    graph = import_graph(PACKAGE_ROOTS)
    assert {"natprec.cli", "natprec.reference", "natprec.accelerated", "natprec.conformance"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_cycle_finder_finds_a_synthetic_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .sub.b import f\n")
    (pkg / "sub" / "__init__.py").write_text("")
    # The cycle closes only inside a function, through a relative import two levels up.
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import g\n    return g\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph({pkg: "pkg"})
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(), "pkg.sub.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph({pkg: "pkg"})) is None
