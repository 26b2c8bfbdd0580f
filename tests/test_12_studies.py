"""DEF-STUDY — the study registry, the command derived from it, and the ledger its claims point at."""

import re
from pathlib import Path

import pytest

from natprec.cli import main
from natprec.reference.errors import InvalidParameterError
from natprec.studies import STUDIES, VERDICTS, Option, Steps, claim_row, parse_option

LEDGER = Path(__file__).resolve().parents[1] / "spec" / "claims.md"


def ledger_ids() -> dict[str, str]:
    """ID → verdict of every row of spec/claims.md."""
    rows = {}
    for line in LEDGER.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*(C-\d{3}-[^|\s]+)\s*\|[^|]*\|\s*\**([a-z ]+?)\**\s*\|", line)
        if m:
            assert m[1] not in rows, f"ledger ID {m[1]} appears twice"
            rows[m[1]] = m[2]
    return rows


@pytest.mark.spec("DEF-STUDY")
def test_every_ledger_row_has_a_known_verdict_and_every_cited_claim_a_row():
    rows = ledger_ids()
    assert all(v in VERDICTS for v in rows.values()), {k: v for k, v in rows.items() if v not in VERDICTS}
    for st in STUDIES.values():
        missing = [c for c in st.claims if c not in rows]
        assert not missing, f"study {st.name} cites {missing}, not in spec/claims.md"


@pytest.mark.spec("DEF-STUDY")
def test_options_parse_and_check_before_anything_runs():
    assert parse_option(Option("k", "int", 3, "h"), " 7 ") == 7
    assert parse_option(Option("ts", "floats", (1.0,), "h"), "1e-3, 2") == (1e-3, 2.0)
    assert parse_option(Option("names", "strs", ("a",), "h"), "a,,b") == ("a", "b")
    with pytest.raises(InvalidParameterError, match="--ts: 'x' is not a list of float") as e:
        parse_option(Option("ts", "floats", (1.0,), "h"), "x")
    assert e.value.value == "x"
    with pytest.raises(InvalidParameterError, match="--n-iter: no value"):
        parse_option(Option("n_iter", "ints", (1,), "h"), " , ")

    def positive(flag, v):
        if v <= 0:
            raise InvalidParameterError(f"{flag} must be > 0", value=v)
        return v

    with pytest.raises(InvalidParameterError, match="--k must be > 0"):
        parse_option(Option("k", "int", 1, "h", positive), "0")


@pytest.mark.spec("DEF-STUDY")
def test_claim_rows_are_checked():
    assert claim_row("C-001-7-1", "SNR 20 dB", "supported") == {"id": "C-001-7-1", "measured": "SNR 20 dB", "verdict": "supported"}
    with pytest.raises(InvalidParameterError, match="not C-<seed>"):
        claim_row("001-7", "x", "supported")
    with pytest.raises(InvalidParameterError, match="verdict 'true'"):
        claim_row("C-001-7-1", "x", "true")


@pytest.mark.spec("DEF-STUDY")
def test_steps_report_each_finished_step_with_an_estimate():
    events = []
    s = Steps("demo", 4, events.append)
    for w in "abcd":
        s.step(w)
    assert [e["done"] for e in events] == [1, 2, 3, 4] and [e["what"] for e in events] == list("abcd")
    assert all(e["phase"] == "step" and e["study"] == "demo" and e["total"] == 4 for e in events)
    assert events[-1]["eta_s"] == 0.0 and all(e["eta_s"] >= 0 for e in events)
    Steps("quiet", 2, False).step("x")  # no progress: nothing reported, nothing raised


@pytest.mark.spec("DEF-STUDY")
def test_the_command_is_derived_from_the_registry(capsys):
    assert main(["study", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(STUDIES)
    for name, st in STUDIES.items():
        assert main(["study", name, "--help"]) == 0
        text = capsys.readouterr().out
        assert all(o.flag in text for o in st.options) and "--out" in text and "--json" in text
        assert ("MODEL" in text) == st.needs_model
