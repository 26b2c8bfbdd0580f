"""Meta-tests generated from spec/index.toml: the spec, the reference, the tests and the proofs agree.

* every ``### DEF-…``/``### THM-…`` heading in spec/NN-*.md has an index entry, and vice versa;
* every DEF section states its domain (``**Domain.**``), every THM its statement and proof/evidence;
* every indexed reference symbol imports;
* every indexed test exists and carries the ID in its ``@pytest.mark.spec`` marker, and every
  marked ID is indexed;
* every THM has one sentence in spec/verified-properties.md.
"""

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"
INDEX = tomllib.loads((SPEC / "index.toml").read_text())
ID_RE = re.compile(r"(DEF|THM)-[A-Z0-9-]+")


def _sections():
    out = {}
    for ch in sorted(SPEC.glob("[0-9][0-9]-*.md")):
        for sec in re.split(r"^### ", ch.read_text(), flags=re.M)[1:]:
            sid = sec.split(" ", 1)[0]
            if ID_RE.fullmatch(sid):
                assert sid not in out, f"{sid} is defined twice"
                out[sid] = (ch.relative_to(ROOT).as_posix(), sec)
    return out


SECTIONS = _sections()


def _markers():
    found = {}
    for f in sorted(f for d in ("conformance", "tests", "proofs_lean") for f in (ROOT / d).rglob("test_*.py")):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                for d in node.decorator_list:
                    if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.spec"):
                        for a in d.args:
                            found.setdefault(a.value, set()).add(f"{f.relative_to(ROOT).as_posix()}::{node.name}")
    return found


MARKERS = _markers()


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_heading_is_indexed_and_every_entry_has_a_heading():
    assert set(SECTIONS) == set(INDEX), (set(SECTIONS) ^ set(INDEX))


def test_every_marked_id_is_indexed():
    assert set(MARKERS) <= set(INDEX), set(MARKERS) - set(INDEX)


@pytest.mark.parametrize("sid", sorted(INDEX))
def test_index_entry(sid):
    entry = INDEX[sid]
    chapter, text = SECTIONS[sid]
    assert entry["chapter"] == chapter
    if sid.startswith("DEF"):
        assert "**Domain.**" in text, f"{sid} has no domain clause"
    else:
        assert "**Statement.**" in text and ("**Proof.**" in text or "**Evidence.**" in text), sid
    assert callable(_resolve(entry["reference"])) or _resolve(entry["reference"]) is not None
    assert entry["kernel"] == "none yet" or _resolve(entry["kernel"]) is not None
    assert entry["tests"], f"{sid} has no conformance test"
    for t in entry["tests"]:
        assert t in MARKERS.get(sid, set()), f"{t} does not exist or is not marked {sid}"
    assert set(entry["tests"]) == MARKERS.get(sid, set()), f"{sid}: index and markers disagree"
    assert entry["proof"], f"{sid}: proof must name a proof or give a reason"


def test_verified_properties_cover_every_theorem():
    text = (SPEC / "verified-properties.md").read_text()
    missing = [sid for sid in INDEX if sid.startswith("THM") and sid not in text]
    assert not missing, missing
