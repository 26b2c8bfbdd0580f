"""Tests of ``natprec rd --table …`` (src/natprec/cli/rd.py, natprec.rdtables) against direct calls of natprec.reference.ratedistortion.

Each table runs through ``main([...])`` in table and JSON mode; JSON numbers must equal
what the reference functions return for the same arguments (exactly: the CLI only
serialises them).  Bad parameters exit 2 with one ``natprec: error: ...`` line.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest

from natprec.cli import main
from natprec.rdtables import D_REF, DEFAULT_BLOCK_SIZES, SEED003_CLAIMS, TABLES
from natprec.reference import ggd
from natprec.reference import ratedistortion as rd

SEED_BETAS = [1.3, 1.7, 2.0]


def run(capsys, *argv):
    rc = main(["rd", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *argv):
    rc, out, err = run(capsys, "--json", *argv)
    assert rc == 0, err
    assert err == ""
    return json.loads(out)


def table_lines(out: str) -> list[str]:
    """The aligned table inside the text output: the header, the dashed rule and the rows.

    Checks the alignment: every line has the two-space column gaps where the rule has them.
    """
    lines = out.splitlines()
    rule = next(i for i, ln in enumerate(lines) if ln and set(ln) <= {"-", " "})
    rows = []
    for ln in lines[rule + 1:]:
        if not ln or not (ln[0] == " " or ln[0].isdigit()):
            break  # the notes under the table start with a letter
        rows.append(ln)
    assert rows
    gaps = [i for i, c in enumerate(lines[rule]) if c == " "]
    assert gaps, "a table has at least two columns"
    for ln in [lines[rule - 1], *rows]:
        assert all(ln[i] == " " for i in gaps if i < len(ln)), (ln, lines[rule])
    return [lines[rule - 1], lines[rule], *rows]


def test_seed_d_ref_is_the_spec_value():
    # spec/10 "Seed 003 errata": the β = 2 row's R(D) = 3.41 = ½log2(1/D) gives D_ref = 2^(−2·3.41) = 0.00885066.
    assert D_REF == 2.0 ** (-2 * 3.41)
    assert f"{D_REF:.6g}" == "0.00885066"
    assert sorted(SEED003_CLAIMS) == SEED_BETAS
    assert TABLES == ("lloyd-max", "ecsq", "price-of-uniformity", "nf4-mismatch", "block-scaling", "seed003")


# ----------------------------------------------------------------------------- lloyd-max


@pytest.mark.spec("DEF-RD-LLOYD")
def test_lloyd_max_table_text(capsys):
    rc, out, err = run(capsys, "--table", "lloyd-max")
    assert rc == 0 and err == ""
    assert "Lloyd–Max" in out and "K = 16" in out
    lines = table_lines(out)
    assert len(lines) == 2 + 3  # header, rule, one row per default β
    for b, row in zip(SEED_BETAS, lines[2:]):
        res = rd.lloyd_max(16, rd.GGDSource(b))
        cells = row.split()
        assert cells[0] == f"{b:g}" and cells[1] == "16"
        assert f"{res.mse:.6g}" in cells


@pytest.mark.spec("DEF-RD-LLOYD")
@pytest.mark.parametrize("argv, betas, levels", [
    ((), SEED_BETAS, 16),
    (("--levels", "8", "--beta", "1.3", "--beta", "2.0"), [1.3, 2.0], 8),
    (("--levels", "4", "--beta", "1,2.5"), [1.0, 2.5], 4),
    (("--source", "gaussian", "--levels", "4"), [2.0], 4),
])
def test_lloyd_max_table_json_equals_reference(capsys, argv, betas, levels):
    data = run_json(capsys, "--table", "lloyd-max", *argv)
    assert data["table"] == "lloyd-max" and data["levels"] == levels and data["betas"] == betas
    assert data["converged"] is True
    assert [r["beta"] for r in data["rows"]] == betas
    for b, r in zip(betas, data["rows"]):
        res = rd.lloyd_max(levels, rd.GGDSource(b))
        assert r["levels"] == levels
        assert r["mse"] == res.mse
        assert r["codebook"] == res.codebook.values.tolist()
        assert r["iterations"] == res.iterations and r["converged"] == res.converged
        assert r["fixed_rate_bits"] == math.log2(levels)
        slb = rd.slb_rate_bits(ggd.differential_entropy_bits(b), res.mse)
        assert r["slb_bits"] == slb and r["gap_to_slb_bits"] == math.log2(levels) - slb
    if levels == 4 and betas == [2.0]:
        assert abs(data["rows"][0]["mse"] - 0.1175) < 1e-4  # Max's 4-level Gaussian value (THM-RD-LLOYD-OPT)


# ----------------------------------------------------------------------------- ecsq


@pytest.mark.spec("DEF-RD-ECSQ")
def test_ecsq_table_text(capsys):
    rc, out, err = run(capsys, "--table", "ecsq")
    assert rc == 0 and err == ""
    assert f"D = {D_REF:.6g}" in out and "½log2(πe/6) = 0.2546" in out
    lines = table_lines(out)
    assert len(lines) == 5
    for b, row in zip(SEED_BETAS, lines[2:]):
        e = rd.ecsq_uniform_at_distortion(D_REF, rd.GGDSource(b))
        cells = row.split()
        assert cells[0] == f"{b:g}"
        assert f"{e.entropy_bits:.4f}" in cells and f"{e.gap_to_slb_bits:.4f}" in cells


@pytest.mark.spec("DEF-RD-ECSQ")
@pytest.mark.parametrize("argv, d, betas", [
    ((), D_REF, SEED_BETAS),
    (("--distortion", "0.05", "--beta", "1.7"), 0.05, [1.7]),
])
def test_ecsq_table_json_equals_reference(capsys, argv, d, betas):
    data = run_json(capsys, "--table", "ecsq", *argv)
    assert data["distortion"] == d and data["high_rate_gap_bits"] == rd.ECSQ_HIGH_RATE_GAP_BITS
    assert [r["beta"] for r in data["rows"]] == betas
    for b, r in zip(betas, data["rows"]):
        assert r == {"beta": b, "distortion": d, **asdict(rd.ecsq_uniform_at_distortion(d, rd.GGDSource(b)))}
    # spec/10's seed-003 table: ECSQ rate 3.6366 / 3.6668 / 3.6710 bits at D_ref, 0.26 bits above R_SLB.
    if d == D_REF:
        assert [round(r["entropy_bits"], 4) for r in data["rows"]] == [3.6366, 3.6668, 3.6710]


# ----------------------------------------------------------------------------- price of uniformity


@pytest.mark.spec("DEF-RD-PRICE-UNIFORM")
def test_price_of_uniformity_table_text(capsys):
    rc, out, err = run(capsys, "--table", "price-of-uniformity")
    assert rc == 0 and err == ""
    lines = table_lines(out)
    assert len(lines) == 5
    for b, row in zip(SEED_BETAS, lines[2:]):
        p = rd.price_of_uniformity_bits(16, rd.GGDSource(b))
        assert row.split()[0] == f"{b:g}" and f"{p['price_bits']:.4f}" in row.split()


@pytest.mark.spec("DEF-RD-PRICE-UNIFORM")
@pytest.mark.parametrize("argv, betas, levels", [
    ((), SEED_BETAS, 16),
    (("--levels", "8", "--beta", "1", "--beta", "2"), [1.0, 2.0], 8),
])
def test_price_of_uniformity_json_equals_reference(capsys, argv, betas, levels):
    data = run_json(capsys, "--table", "price-of-uniformity", *argv)
    assert data["levels"] == levels and data["converged"] is True
    for b, r in zip(betas, data["rows"], strict=True):
        src = rd.GGDSource(b)
        assert r == {"beta": b, **rd.price_of_uniformity_bits(levels, src)}
        assert r["converged"] is rd.lloyd_max(levels, src).converged
        assert r["price_bits"] > 0
    if levels == 16:
        # THM-RD-LLOYD-OPT evidence: ρ = 0.1404 bits at β = 2.
        assert round(data["rows"][-1]["price_bits"], 4) == 0.1404


# ----------------------------------------------------------------------------- NF4 mismatch


@pytest.mark.spec("DEF-RD-NF4-MISMATCH")
def test_nf4_mismatch_table_text(capsys):
    rc, out, err = run(capsys, "--table", "nf4-mismatch")
    assert rc == 0 and err == ""
    lines = table_lines(out)
    assert len(lines) == 5
    for b, row in zip(SEED_BETAS, lines[2:]):
        m = rd.nf4_mismatch(b)
        cells = row.split()
        assert cells[0] == f"{b:g}"
        assert f"{m['ratio_to_lloyd_max']:.4f}" in cells and f"{m['penalty_bits_vs_lloyd_max']:.4f}" in cells


@pytest.mark.spec("DEF-RD-NF4-MISMATCH")
@pytest.mark.parametrize("argv, betas", [((), SEED_BETAS), (("--beta", "1", "--beta", "3"), [1.0, 3.0])])
def test_nf4_mismatch_json_equals_reference(capsys, argv, betas):
    data = run_json(capsys, "--table", "nf4-mismatch", *argv)
    assert data["rows"] == [rd.nf4_mismatch(b) for b in betas]
    assert all(r["ratio_to_lloyd_max"] > 1 for r in data["rows"])


# ----------------------------------------------------------------------------- block scaling


@pytest.mark.spec("DEF-RD-BLOCK-SCALING")
def test_block_scaling_table_text(capsys):
    rc, out, err = run(capsys, "--table", "block-scaling")
    assert rc == 0 and err == ""
    assert "seed 0" in out
    lines = table_lines(out)
    assert len(lines) == 2 + 3 * len(DEFAULT_BLOCK_SIZES)
    got = [(row.split()[0], int(row.split()[1])) for row in lines[2:]]
    assert got == [(f"{b:g}", n) for b in SEED_BETAS for n in DEFAULT_BLOCK_SIZES]
    ref = rd.block_scaling_mse(1.3, DEFAULT_BLOCK_SIZES)
    assert f"{ref[-1].difference:.3e}" in lines[2 + len(DEFAULT_BLOCK_SIZES) - 1].split()


@pytest.mark.spec("DEF-RD-BLOCK-SCALING")
@pytest.mark.parametrize("argv, betas, sizes, seed", [
    ((), SEED_BETAS, list(DEFAULT_BLOCK_SIZES), 0),
    (("--beta", "1.0", "--block-sizes", "16,256", "--block-sizes", "4096", "--seed", "1"), [1.0], [16, 256, 4096], 1),
])
def test_block_scaling_json_equals_reference(capsys, argv, betas, sizes, seed):
    data = run_json(capsys, "--table", "block-scaling", *argv)
    assert data["block_sizes"] == sizes and data["seed"] == seed
    expected = [{"beta": b, **asdict(r)} for b in betas for r in rd.block_scaling_mse(b, sizes, rng=seed)]
    assert data["rows"] == expected
    assert all(r["difference"] >= 0 for r in data["rows"])  # THM-RD-BLOCK-QUANTILE


# ----------------------------------------------------------------------------- seed 003


@pytest.fixture(scope="module")
def seed003_reference():
    return {b: (rd.rate_distortion_ggd(b, D_REF), rd.ecsq_uniform_at_distortion(D_REF, rd.GGDSource(b))) for b in SEED_BETAS}


@pytest.mark.spec("DEF-RD-CONTINUOUS", "DEF-RD-ECSQ")
def test_seed003_table_text(capsys, seed003_reference):
    rc, out, err = run(capsys, "--table", "seed003")
    assert rc == 0 and err == ""
    assert f"D_ref = 2^(−2·3.41) = {D_REF:.6g}" in out
    lines = table_lines(out)
    assert "verdict" in lines[0] and "seed R(D)" in lines[0]
    assert len(lines) == 5
    for b, row in zip(SEED_BETAS, lines[2:]):
        r, e = seed003_reference[b]
        assert row.split()[0] == f"{b:g}"
        assert f"{r.rate_bits:.5f} [{r.rate_lower_bits:.5f}, {r.rate_upper_bits:.5f}]" in row
        assert f"{e.entropy_bits:.4f}" in row
        assert f"{SEED003_CLAIMS[b]['rate_bits']:.2f}" in row
    # spec/10 verdicts: R(D) holds at every β; R_SLB and the gap hold at none — until the seed's entropy error is put back.
    assert all(line.rstrip().endswith("holds: R(D); fails: R_SLB, gap") for line in lines[2:])
    assert "β = 1.3: all hold, β = 1.7: all hold, β = 2: all hold" in out


@pytest.mark.spec("DEF-RD-CONTINUOUS", "DEF-RD-ECSQ")
def test_seed003_json_equals_reference(capsys, seed003_reference):
    data = run_json(capsys, "--table", "seed003")
    assert data["distortion"] == D_REF and data["converged"] is True
    for b, row in zip(SEED_BETAS, data["rows"], strict=True):
        r, e = seed003_reference[b]
        assert row["beta"] == b
        assert row["h_bits"] == ggd.differential_entropy_bits(b)
        assert row["slb_bits"] == r.slb_bits
        assert (row["rate_bits"], row["rate_lower_bits"], row["rate_upper_bits"]) == (
            r.rate_bits, r.rate_lower_bits, r.rate_upper_bits)
        assert row["gap_bits"] == r.rate_bits - r.slb_bits
        assert row["ba_bound_gap_bits"] == r.ba_bound_gap_bits and row["grid_change_bits"] == r.grid_change_bits
        assert row["grid"] == list(r.grid) and row["converged"] == r.converged
        assert (row["ecsq_step"], row["ecsq_rate_bits"], row["ecsq_gap_bits"]) == (e.step, e.entropy_bits, e.gap_to_slb_bits)
        assert row["seed"] == SEED003_CLAIMS[b]
        assert row["verdict"] == {"slb_bits": "does not hold", "rate_bits": "holds", "gap_bits": "does not hold"}
        assert row["seed_h_error_bits"] == (math.log2(math.e) - 1) / b
        assert row["verdict_with_seed_h_error"] == {"slb_bits": "holds", "gap_bits": "holds"}
    # The spec's table, to its printed digits.
    assert [round(r["slb_bits"], 4) for r in data["rows"]] == [3.3753, 3.4058, 3.4100]
    assert [round(r["seed_h_error_bits"], 2) for r in data["rows"]] == [r["seed"]["gap_bits"] for r in data["rows"]]
    assert [round(r["h_bits"], 4) for r in data["rows"]] == [2.0124, 2.0429, 2.0471]
    assert all(abs(r["gap_bits"]) < 1e-4 for r in data["rows"])


@pytest.mark.spec("DEF-RD-CONTINUOUS")
def test_seed003_single_beta(capsys, seed003_reference):
    data = run_json(capsys, "--table", "seed003", "--beta", "2")
    assert [r["beta"] for r in data["rows"]] == [2.0]
    assert data["rows"][0]["rate_bits"] == seed003_reference[2.0][0].rate_bits


# ----------------------------------------------------------------------------- the single-point mode is unchanged


@pytest.mark.spec("DEF-RD-CONTINUOUS")
def test_point_mode_still_takes_one_beta(capsys):
    data = run_json(capsys, "--source", "ggd", "--beta", "1.7", "--distortion", "0.05")
    ref = rd.rate_distortion_ggd(1.7, 0.05)
    assert data["beta"] == 1.7 and data["rate_bits"] == ref.rate_bits and data["source"] == "ggd"
    data = run_json(capsys, "--distortion", "0.05")
    assert data["source"] == "gaussian" and data["rate_bits"] == rd.gaussian_rate_bits(1.0, 0.05)


@pytest.mark.spec("DEF-RD-CONTINUOUS")
def test_point_text_says_when_the_gap_is_within_the_solvers_accuracy(capsys):
    from natprec.cli import main

    for d in ("0.012", "0.3"):
        doc = run_json(capsys, "--source", "ggd", "--beta", "1.7", "--distortion", d)
        assert main(["rd", "--source", "ggd", "--beta", "1.7", "--distortion", d]) == 0
        out = capsys.readouterr().out
        assert f"R(D) − R_SLB = {doc['gap_bits']:.2e} bits" in out and f"{doc['ba_bound_gap_bits']:.2e} bits" in out
        assert ("R(D) = R_SLB here" in out) == (abs(doc["gap_bits"]) <= doc["ba_bound_gap_bits"])


# ----------------------------------------------------------------------------- bad parameters


@pytest.mark.spec("DEF-RD-LLOYD", "DEF-RD-ECSQ", "DEF-RD-BLOCK-SCALING", "DEF-RD-CONTINUOUS")
@pytest.mark.parametrize("argv, needle", [
    (["--table", "nope"], "invalid choice: 'nope'"),
    (["--table", "lloyd-max", "--levels", "1"], "--levels must be between 2 and 256; got 1"),
    (["--table", "price-of-uniformity", "--levels", "1000"], "--levels must be between 2 and 256; got 1000"),
    (["--table", "lloyd-max", "--levels", "x"], "argument --levels"),
    (["--table", "nf4-mismatch", "--levels", "16"], "--levels applies only to --table lloyd-max or price-of-uniformity"),
    (["--table", "ecsq", "--rate", "3"], "--rate does not apply to --table ecsq"),
    (["--table", "seed003", "--distortion", "0.1"], "--distortion applies only to --table ecsq"),
    (["--table", "seed003", "--beta", "1.5"], "covers the seed's β ∈ {1.3, 1.7, 2}; got 1.5"),
    (["--table", "lloyd-max", "--beta", "abc"], "argument --beta: expected a number"),
    (["--table", "lloyd-max", "--beta", "1,,2"], "argument --beta: expected a number"),
    (["--table", "lloyd-max", "--beta", "nan"], "beta must be finite"),
    (["--table", "nf4-mismatch", "--beta", "-1"], "beta must be > 0"),
    (["--table", "nf4-mismatch", "--beta", "0"], "beta must be > 0"),
    (["--table", "lloyd-max", "--beta", "100"], "--table needs β in [0.05, 50]; got 100.0"),
    (["--table", "block-scaling", "--block-sizes", "0,16"], "block sizes must be between 1 and 65536; got 0"),
    (["--table", "block-scaling", "--block-sizes", "100000"], "block sizes must be between 1 and 65536"),
    (["--table", "block-scaling", "--block-sizes", "16,x"], "argument --block-sizes"),
    (["--table", "block-scaling", "--seed", "-1"], "--seed must be ≥ 0"),
    (["--table", "lloyd-max", "--seed", "3"], "--seed applies only to --table block-scaling"),
    (["--table", "ecsq", "--block-sizes", "16"], "--block-sizes applies only to --table block-scaling"),
    (["--table", "ecsq", "--distortion", "1e-9"], "uniform cells (limit 200000)"),
    (["--table", "ecsq", "--distortion", "2"], "must be < the source variance"),
    (["--table", "ecsq", "--distortion", "0"], "distortion D must be > 0"),
    (["--table", "ecsq", "--distortion", "inf"], "distortion D must be finite"),
    (["--table", "lloyd-max", "--format", "nf4"], "--format does not apply with --table"),
    (["--table", "lloyd-max", "--plot", "x.png"], "--plot does not apply with --table"),
    (["--table", "lloyd-max", "--source", "gaussian", "--beta", "1.3"], "--source gaussian is GGD(β = 2)"),
    (["--levels", "4", "--distortion", "0.1"], "--levels applies only with --table"),
    ([], "one of --distortion, --rate or --table is required"),
    (["--source", "ggd", "--beta", "1.3", "--beta", "1.7", "--distortion", "0.1"], "one --beta without --table; got 2"),
    (["--source", "ggd", "--distortion", "0.1"], "--source ggd needs --beta"),
    (["--source", "gaussian", "--beta", "1.3", "--distortion", "0.1"], "--source gaussian is GGD(β = 2)"),
])
def test_bad_parameters_exit_2_with_one_line(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("natprec: error: "), err
    assert needle in err, err


@pytest.mark.spec("DEF-RD-LLOYD")
def test_not_converged_exits_1_and_says_so(capsys):
    # 256 levels need more than Lloyd–Max's 10000 iterations: the table is printed, marked, and the status is 1.
    rc, out, err = run(capsys, "--table", "lloyd-max", "--levels", "256", "--beta", "2")
    assert rc == 1 and err == ""
    assert "not converged for β = 2 (exit status 1)" in out
    rc, out, _ = run(capsys, "--json", "--table", "lloyd-max", "--levels", "256", "--beta", "2")
    data = json.loads(out)
    assert rc == 1 and data["converged"] is False and data["rows"][0]["converged"] is False
    assert data["rows"][0]["iterations"] == rd.lloyd_max(256, rd.GGDSource(2.0)).iterations


# ----------------------------------------------------------------------------- review fixes


@pytest.mark.spec("DEF-RD-CONTINUOUS")
def test_point_beta_without_source_is_ggd(capsys):
    # --beta alone selects the GGD (it used to be ignored, silently giving the Gaussian).
    data = run_json(capsys, "--beta", "1.3", "--distortion", "0.1")
    ref = rd.rate_distortion_ggd(1.3, 0.1)
    assert (data["source"], data["beta"], data["rate_bits"]) == ("ggd", 1.3, ref.rate_bits)
    rc, out, err = run(capsys, "--beta", "1.3", "--distortion", "0.1")
    assert rc == 0 and err == "" and out.startswith("source ggd (beta=1.3)")
    data = run_json(capsys, "--source", "gaussian", "--beta", "2", "--distortion", "0.1")
    assert (data["source"], data["beta"], data["rate_bits"]) == ("gaussian", 2.0, rd.gaussian_rate_bits(1.0, 0.1))


@pytest.mark.spec("DEF-RD-PRICE-UNIFORM", "DEF-RD-LLOYD")
def test_price_of_uniformity_runs_lloyd_max_once_and_reports_its_flag(capsys, monkeypatch):
    p = rd.price_of_uniformity_bits(8, rd.GGDSource(1.3))
    assert p["converged"] is rd.lloyd_max(8, rd.GGDSource(1.3)).converged is True
    calls = []
    orig = rd.lloyd_max

    def counting(*a, **k):
        calls.append(a)
        return orig(*a, **k)

    monkeypatch.setattr(rd, "lloyd_max", counting)
    data = run_json(capsys, "--table", "price-of-uniformity", "--levels", "8", "--beta", "1.3,2")
    assert len(calls) == 2 and [r["converged"] for r in data["rows"]] == [True, True]


@pytest.mark.spec("DEF-RD-CONTINUOUS")
def test_rd_json_is_strict(capsys, monkeypatch):
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))

    monkeypatch.setattr(rd, "gaussian_rate_bits", lambda var, d: math.inf)
    rc, out, err = run(capsys, "--json", "--distortion", "0.1")
    doc = strict(out)
    assert rc == 0 and doc["rate_bits"] == "inf" and doc["gap_bits"] == "inf"
    monkeypatch.setattr(rd, "nf4_mismatch", lambda b: {"beta": b, "scale": math.nan, "mse": -math.inf})
    rc, out, err = run(capsys, "--json", "--table", "nf4-mismatch", "--beta", "2")
    doc = strict(out)
    assert rc == 0 and doc["rows"] == [{"beta": 2.0, "scale": "nan", "mse": "-inf"}]
