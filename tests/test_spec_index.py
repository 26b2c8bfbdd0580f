"""Meta-tests of spec/index.toml: the spec, the reference, the tests and the proofs agree.

The index names each ID's chapter, reference symbol, kernel and proof. The tests of an ID are
never listed: they are derived from the ``@pytest.mark.spec`` markers in tests/, conformance/ and
proofs_lean/, and from the conformance bodies' ``spec_ids``.

* every ``### DEF-…``/``### THM-…`` heading in spec/NN-*.md has an index entry, and vice versa;
* every DEF section states its domain (``**Domain.**``), every THM its statement and proof/evidence;
* every indexed reference symbol and kernel imports;
* every ID has at least one test carrying it, and every ID a test carries is indexed;
* ``proof`` is "none" or a check ``path::test`` that exists and carries the ID; a THM without a check
  says where its proof lives (``proof_note``); every ``path::test`` a note or a chapter cites exists;
* every THM has one sentence in spec/verified-properties.md.

``python tests/test_spec_index.py`` prints the derived table (ID, proof, tests).
"""

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

from natprec.conformance.bodies import BODIES

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"
INDEX = tomllib.loads((SPEC / "index.toml").read_text())
ID_RE = re.compile(r"(DEF|THM)-[A-Z0-9-]+")
CITED_TEST_RE = re.compile(r"((?:tests|conformance|proofs_lean)/[\w/]+\.py)::(\w+)")
FIELDS = {"chapter", "reference", "kernel", "proof"}
OPTIONAL_FIELDS = {"proof_note", "lean", "lean_file"}
#: The tier suite whose cases are the conformance bodies, each carrying its body's spec_ids.
BODY_SUITE = "conformance/test_tiers.py::test_tier_matches_reference"


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


def _test_functions():
    """Every test function of the three test folders, as 'path::name', with the IDs its marker names."""
    found = {}
    for f in sorted(f for d in ("tests", "conformance", "proofs_lean") for f in (ROOT / d).rglob("test_*.py")):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                ids = found.setdefault(f"{f.relative_to(ROOT).as_posix()}::{node.name}", set())
                for d in node.decorator_list:
                    if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.spec"):
                        ids.update(a.value for a in d.args)
    found[BODY_SUITE] |= {sid for body in BODIES.values() for sid in body.spec_ids}
    return found


TESTS = _test_functions()
MARKERS = {}
for _test, _ids in TESTS.items():
    for _sid in _ids:
        MARKERS.setdefault(_sid, set()).add(_test)


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


def table() -> str:
    """The derived table: each ID, its proof and the tests that carry it (Markdown)."""
    rows = ["| ID | proof | tests |", "|---|---|---|"]
    for sid, entry in INDEX.items():
        tests = "<br>".join(f"`{t}`" for t in sorted(MARKERS.get(sid, ())))
        proof = entry["proof"] if entry["proof"] != "none" else entry.get("proof_note", "none")
        rows.append(f"| {sid} | {proof} | {tests} |")
    return "\n".join(rows)


def test_every_heading_is_indexed_and_every_entry_has_a_heading():
    assert set(SECTIONS) == set(INDEX), (set(SECTIONS) ^ set(INDEX))


def test_every_marked_id_is_indexed():
    assert set(MARKERS) <= set(INDEX), {sid: sorted(MARKERS[sid]) for sid in set(MARKERS) - set(INDEX)}


def test_every_cited_test_exists():
    # Chapters cite evidence as `path::test` inside an ID's section; notes in the index likewise.
    cited = [(sid, m) for sid, (_, text) in SECTIONS.items() for m in CITED_TEST_RE.finditer(text)]
    cited += [(sid, m) for sid, e in INDEX.items() for m in CITED_TEST_RE.finditer(e.get("proof_note", ""))]
    assert cited
    for sid, m in cited:
        assert f"{m.group(1)}::{m.group(2)}" in TESTS, f"{sid} cites {m.group(0)}, which does not exist"


@pytest.mark.parametrize("sid", sorted(INDEX))
def test_index_entry(sid):
    entry = INDEX[sid]
    chapter, text = SECTIONS[sid]
    assert FIELDS <= set(entry) <= FIELDS | OPTIONAL_FIELDS, f"{sid}: fields {sorted(entry)}"
    assert entry["chapter"] == chapter
    if sid.startswith("DEF"):
        assert "**Domain.**" in text, f"{sid} has no domain clause"
    else:
        assert "**Statement.**" in text and ("**Proof.**" in text or "**Evidence.**" in text), sid
    assert callable(_resolve(entry["reference"])) or _resolve(entry["reference"]) is not None
    assert entry["kernel"] == "none yet" or _resolve(entry["kernel"]) is not None
    assert MARKERS.get(sid), f"{sid} has no test carrying it in a @pytest.mark.spec marker"
    proof = entry["proof"]
    if proof != "none":
        path = proof.partition("::")[0]
        assert (ROOT / path).is_file(), f"{sid}: proof file {path} does not exist"
        assert proof in TESTS, f"{sid}: proof {proof} is not a test function"
        assert sid in TESTS[proof], f"{sid}: proof {proof} is not marked {sid}"
    elif sid.startswith("THM"):
        assert entry.get("proof_note"), f"{sid}: no proof check, so proof_note must say where the proof is"


def test_verified_properties_cover_every_theorem():
    text = (SPEC / "verified-properties.md").read_text()
    missing = [sid for sid in INDEX if sid.startswith("THM") and sid not in text]
    assert not missing, missing


if __name__ == "__main__":
    print(table())
