"""Lint of proofs_lean/ and of the index's Lean status (spec/index.toml: ``lean``, ``lean_file``).

No Lean toolchain exists where this project is built or tested, so the Lean files are never
compiled here (proofs_lean/README.md). This lint keeps them honest without one:

* every ``.lean`` file is imported, directly or not, from the root ``NatPrec.lean``;
* no ``sorry``/``admit``/``native_decide`` and no ``axiom`` (nor ``unsafe``/``implemented_by``) outside comments,
  no Mathlib import;
* ``lean-toolchain`` pins a concrete Lean 4 release;
* every THM has a ``lean`` status; ``"checked"`` only with ``proofs_lean/lake-build.log`` recording a
  successful ``lake build``; a ``lean_file`` exists, is a Thm/ file and states a theorem whose docstring
  starts with the ID; every theorem docstring's ID is indexed with that file.

The lint is run on the real tree and, to show it can fail, on mutated copies.
"""

import re
import shutil
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEAN = ROOT / "proofs_lean"
INDEX = tomllib.loads((ROOT / "spec" / "index.toml").read_text())
STATUSES = {"none", "written, not checked", "checked"}
FORBIDDEN = re.compile(r"\b(sorry|admit|native_decide|axiom|unsafe|implemented_by|extern)\b")
DOC_THEOREM = re.compile(r"/--\s*((?:DEF|THM)-[A-Z0-9-]+)(?:(?!-/).)*-/\s*theorem\s", re.S)


def _strip_comments(text: str) -> str:
    """Lean source without its comments (nested block comments, doc comments and line comments)."""
    out, i, depth = [], 0, 0
    while i < len(text):
        if text.startswith("/-", i):
            depth, i = depth + 1, i + 2
        elif depth and text.startswith("-/", i):
            depth, i = depth - 1, i + 2
        elif not depth and text.startswith("--", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def _module(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def lean_problems(root: Path) -> list[str]:
    """Everything wrong with the Lean package at ``root`` (empty: it passes the lint)."""
    problems = []
    files = {_module(f, root): f for f in root.rglob("*.lean") if f.name != "lakefile.lean" and ".lake" not in f.parts}
    if "NatPrec" not in files:
        return ["no root NatPrec.lean"]
    seen, todo = set(), ["NatPrec"]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        if mod not in files:
            problems.append(f"import of {mod}, which has no file")
            continue
        for imp in re.findall(r"(?m)^import\s+(\S+)", files[mod].read_text()):
            if imp.split(".")[0] in ("Mathlib", "Batteries", "Std", "Aesop"):
                problems.append(f"{mod} imports {imp}: core Lean 4 only")
            elif imp.split(".")[0] == "NatPrec":
                todo.append(imp)
    problems += [f"{files[m].relative_to(root)} is not imported from NatPrec.lean" for m in sorted(set(files) - seen)]
    for _mod, f in sorted(files.items()):
        for m in FORBIDDEN.finditer(_strip_comments(f.read_text())):
            problems.append(f"{f.relative_to(root)}: forbidden '{m.group(1)}'")
        if "NOT MACHINE-CHECKED" not in f.read_text():
            problems.append(f"{f.relative_to(root)} does not say it is not machine-checked")
    tc = (root / "lean-toolchain").read_text().strip() if (root / "lean-toolchain").is_file() else ""
    if not re.fullmatch(r"leanprover/lean4:v\d+\.\d+\.\d+", tc):
        problems.append(f"lean-toolchain {tc!r} is not a pinned Lean 4 release")
    if not ((root / "lakefile.toml").is_file() or (root / "lakefile.lean").is_file()):
        problems.append("no lakefile")
    return problems


def index_problems(index: dict, root: Path) -> list[str]:
    """Inconsistencies between the index's ``lean``/``lean_file`` fields and the Lean files at ``root``."""
    problems = []
    stated = {}  # ID -> files whose theorem docstrings start with it
    for f in sorted((root / "NatPrec" / "Thm").rglob("*.lean")):
        for m in DOC_THEOREM.finditer(f.read_text()):
            stated.setdefault(m.group(1), set()).add(f.relative_to(root.parent).as_posix())
    built = root / "lake-build.log"
    for sid, e in index.items():
        status = e.get("lean")
        if sid.startswith("THM") and status is None:
            problems.append(f"{sid} has no lean status")
        if status is None:
            if sid in stated:
                problems.append(f"{sid} is stated in {sorted(stated[sid])} but has no lean status")
            continue
        if status not in STATUSES:
            problems.append(f"{sid}: lean = {status!r}")
            continue
        if status == "none":
            if "lean_file" in e or sid in stated:
                problems.append(f"{sid}: lean = 'none' but a Lean file states it")
            continue
        if status == "checked" and not (built.is_file() and "Build completed successfully" in built.read_text()):
            problems.append(f"{sid}: lean = 'checked' without a successful build log at {built.relative_to(root.parent)}")
        if e.get("lean_file") not in stated.get(sid, set()):
            problems.append(f"{sid}: lean_file {e.get('lean_file')!r} states no theorem with a docstring starting {sid}")
    problems += [f"{sid} (stated in Lean) is not in the index" for sid in stated if sid not in index]
    return problems


def test_lean_package_passes_the_lint():
    assert lean_problems(LEAN) == []


def test_index_lean_status_matches_the_files():
    assert index_problems(INDEX, LEAN) == []
    assert not (LEAN / "lake-build.log").exists() or "checked" in {e.get("lean") for e in INDEX.values()}


@pytest.fixture
def copy(tmp_path):
    dst = tmp_path / "proofs_lean"
    shutil.copytree(LEAN, dst, ignore=shutil.ignore_patterns("checks", ".lake", "__pycache__"))
    return dst


def test_lint_fails_on_an_unimported_file(copy):
    (copy / "NatPrec" / "Thm" / "Stray.lean").write_text("-- NOT MACHINE-CHECKED\ntheorem t : 1 = 1 := rfl\n")
    assert any("Stray.lean is not imported" in p for p in lean_problems(copy))


@pytest.mark.parametrize("bad", ["theorem t : 1 = 2 := by sorry", "axiom ax : False", "theorem t : 1 = 1 := by native_decide"])
def test_lint_fails_on_sorry_axiom_native_decide(copy, bad):
    f = copy / "NatPrec" / "Thm" / "Margin.lean"
    f.write_text(f.read_text() + "\n" + bad + "\n")
    assert any("forbidden" in p for p in lean_problems(copy))
    # …but the words in comments are fine.
    f2 = copy / "NatPrec" / "Thm" / "Epilogue.lean"
    f2.write_text(f2.read_text() + "\n-- no sorry here, no axiom\n/- nor admit /- nested -/ -/\n")
    assert not any("Epilogue.lean: forbidden" in p for p in lean_problems(copy))


def test_index_check_fails_on_a_false_status(copy):
    idx = {k: dict(v) for k, v in INDEX.items()}
    idx["THM-MARGIN-ROBUST"]["lean"] = "checked"
    assert any("without a successful build log" in p for p in index_problems(idx, copy))
    idx = {k: dict(v) for k, v in INDEX.items()}
    idx["THM-FREE-BOUNDARY"] = {k: v for k, v in idx["THM-FREE-BOUNDARY"].items() if k != "lean_file"} | {"lean": "none"}
    assert any("THM-FREE-BOUNDARY" in p for p in index_problems(idx, copy))
    idx = {k: dict(v) for k, v in INDEX.items()}
    idx["THM-RD-SLB"]["lean"] = "written, not checked"
    idx["THM-RD-SLB"]["lean_file"] = "proofs_lean/NatPrec/Thm/Margin.lean"
    assert any("THM-RD-SLB" in p for p in index_problems(idx, copy))
