"""Tests of the ``natprec`` command line (src/natprec/cli/) against direct reference calls.

Every command runs through ``main([...])`` in table and JSON mode; JSON numbers are
compared exactly with what natprec.reference returns for the same input.  Error
paths must exit 2 with one ``natprec: error: ...`` line naming the bad input.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from contextlib import redirect_stdout
from importlib import resources
from io import StringIO
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from natprec.analysis import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_TENSOR_FORMATS, DELTA_STD_DIVISOR
from natprec.cli import main
from natprec.data.make_demo import make_tensors
from natprec.io import load_tensors
from natprec.reference import (
    FORMAT_NAMES,
    ElementFormat,
    InputFileError,
    dequantize,
    discretized_entropy_bits,
    entropy_bootstrap_interval,
    erased_information,
    get_format,
    injectivity_report,
    landauer_energy_joules,
    min_voronoi_margin,
    natural_precision,
    quantize,
    realized_support,
    voronoi_margin,
)

DEMO = resources.files("natprec").joinpath("data/demo.safetensors")
DEMO_ORDER = ["ternary", "activation", "weight"]  # safetensors stores by dtype alignment, then name


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, command, *argv):
    rc, out, err = run(capsys, command, "--json", *argv)  # before any '--'
    assert rc == 0, err
    return json.loads(out)


def jnum(x):
    """The CLI's JSON encoding of a float (strict JSON: non-finite values as strings)."""
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def hexcode(code, nbits):
    return f"0x{int(code):0{max(1, -(-nbits // 4))}x}"


@pytest.fixture(scope="module")
def demo_json():
    """``natprec tensor --json`` on the embedded default, run once for the module."""
    buf = StringIO()
    with redirect_stdout(buf):
        assert main(["tensor", "--json"]) == 0
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def demo_tensors():
    with resources.as_file(DEMO) as p:
        return load_file(str(p))


# ----------------------------------------------------------------------------- formats


@pytest.mark.spec("DEF-FORMAT-ELEMENT")
def test_formats_json_matches_reference(capsys):
    doc = run_json(capsys, "formats")
    assert [r["name"] for r in doc["formats"]] == list(FORMAT_NAMES)
    for r in doc["formats"]:
        f = get_format(r["name"])
        assert r["conventions"] == f.conventions()
        if isinstance(f, ElementFormat):
            assert (r["kind"], r["nbits"], r["description"]) == ("element", f.nbits, f.description)
            cb = f.codebook
            assert (r["finite_values"], r["min"], r["max"]) == (len(cb), cb.values[0], cb.values[-1])
            if len(cb) <= 256:
                assert r["values"] == cb.values.tolist()
                assert r["encodings"] == [hexcode(c, f.nbits) for c in cb.encodings]
            else:
                assert "values" not in r
        else:
            assert (r["kind"], r["element"], r["block_size"]) == ("block", f.element.name, f.block_size)
    by_name = {r["name"]: r for r in doc["formats"]}
    assert "values" not in by_name["float16"] and "values" not in by_name["bfloat16"]
    assert by_name["float16"]["finite_values"] == 63487 and by_name["float16"]["max"] == 65504.0
    assert by_name["nf4_absmax64"]["bits_per_element"] == 4.5
    assert by_name["mxfp4"]["bits_per_element"] == 4.25


def test_formats_table(capsys):
    rc, out, err = run(capsys, "formats")
    assert rc == 0 and err == ""
    for name in FORMAT_NAMES:
        assert f"\n{name} " in out
    assert "0.07958029955625534@0x8" in out  # nf4 codebook with encodings
    assert "max_finite=448.0" in out  # e4m3fn conventions


# ----------------------------------------------------------------------------- quantize


@pytest.mark.spec("DEF-QUANTIZE", "DEF-MARGIN")
@pytest.mark.parametrize("fmt", ["nf4", "int8", "float8_e4m3fn", "fp4_bnb", "ternary"])
def test_quantize_element_json_matches_reference(capsys, fmt):
    xs = [-0.3, 0.2, 0.5, 1.7, -0.0, 3.0]
    doc = run_json(capsys, "quantize", "--format", fmt, *map(repr, xs))
    f = get_format(fmt)
    x = np.array(xs)
    codes = quantize(x, f)
    assert [v["input"] for v in doc["values"]] == xs
    assert [v["code"] for v in doc["values"]] == [hexcode(c, f.nbits) for c in codes]
    assert [v["value"] for v in doc["values"]] == dequantize(codes, f).tolist()
    assert [v["margin"] for v in doc["values"]] == voronoi_margin(x, f).tolist()
    assert doc["saturate"] == f.default_saturate


@pytest.mark.spec("DEF-QUANTIZE")
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--format", "nf4", "-0.3"], [-0.3]),
        (["--format", "nf4", "--", "-0.3", "0.2"], [-0.3, 0.2]),
        (["-0.3", "--format", "nf4", "0.2"], [-0.3, 0.2]),
        (["--format", "nf4", "0.1", "-1e-3", "-inf", "0.25", "-.5"], [0.1, -1e-3, -math.inf, 0.25, -0.5]),
        (["--format", "nf4", "0.1", "--tie", "even", "-2E-1", "0.3"], [0.1, -0.2, 0.3]),
    ],
)
def test_quantize_negative_values_in_order(capsys, argv, expected):
    doc = run_json(capsys, "quantize", *argv)
    assert [v["input"] for v in doc["values"]] == [jnum(e) for e in expected]
    codes = quantize(np.array(expected), "nf4")
    assert [v["code"] for v in doc["values"]] == [hexcode(c, 4) for c in codes]


@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("saturate", [None, True, False])
def test_quantize_special_values(capsys, saturate):
    xs = ["nan", "inf", "-inf", "-0.0", "500", "1e-3"]
    flag = [] if saturate is None else ["--saturate" if saturate else "--no-saturate"]
    doc = run_json(capsys, "quantize", "--format", "float8_e4m3fn", *flag, *xs)
    x = np.array([float(s) for s in xs])
    codes = quantize(x, "float8_e4m3fn", saturate=saturate, nan_policy="propagate")
    assert [v["code"] for v in doc["values"]] == [hexcode(c, 8) for c in codes]
    assert [v["value"] for v in doc["values"]] == [jnum(v) for v in dequantize(codes, "float8_e4m3fn")]
    assert doc["values"][0]["margin"] == "nan"
    assert doc["values"][3]["code"] == "0x80"  # signed zero kept
    # e4m3fn's default is not to saturate: 500 overflows to NaN (0x7f), as in ml_dtypes.
    assert doc["values"][4]["code"] == ("0x7e" if saturate else "0x7f")
    assert doc["saturate"] is bool(saturate)


@pytest.mark.spec("DEF-QUANTIZE")
@pytest.mark.parametrize("fmt", ["nf4", "int4", "nf4_absmax64", "mxfp4"])
def test_quantize_nan_policies_for_formats_without_a_nan_code(capsys, fmt):
    # The README's example: nf4 has no NaN encoding, yet a NaN VALUE is not an error by default.
    doc = run_json(capsys, "quantize", "--format", fmt, "-0.3", "0.2", "nan", "0.5")
    finite = run_json(capsys, "quantize", "--format", fmt, "-0.3", "0.2", "0.5")
    kept = [v for v in doc["values"] if v["input"] != "nan"]
    assert [(v["code"], v["value"], v["margin"], v["block"]) for v in kept] == \
        [(v["code"], v["value"], v["margin"], v["block"]) for v in finite["values"]]  # the NaN changes nothing else
    assert doc["values"][2] == {"input": "nan", "block": None, "code": None, "value": "nan", "margin": "nan"}
    assert doc["nan_policy"] == "propagate" and "no NaN encoding" in doc["notes"][0]
    omit = run_json(capsys, "quantize", "--format", fmt, "--nan-policy", "omit", "-0.3", "0.2", "nan", "0.5")
    assert omit["values"] == finite["values"] and omit["notes"] == ["1 NaN VALUE(s) omitted"]
    assert main(["quantize", "--format", fmt, "--nan-policy", "raise", "0.2", "nan"]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["quantize", "--format", fmt, "--nan-policy", "omit", "nan"]) == 2
    assert "every VALUE is NaN" in capsys.readouterr().err
    assert main(["quantize", "--format", fmt, "nan", "0.1"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("nan"))
    assert "note: " + fmt in out and row[1] == "-"  # the code (or the block) column


@pytest.mark.spec("DEF-QUANTIZE")
@pytest.mark.parametrize("tie, code", [("even", "0x00"), ("down", "0x00"), ("up", "0x01"), ("away", "0x01")])
def test_quantize_tie_rules(capsys, tie, code):
    doc = run_json(capsys, "quantize", "--format", "int8", "--tie", tie, "0.5")
    assert doc["values"][0]["code"] == code == hexcode(quantize(np.array([0.5]), "int8", tie=tie)[0], 8)


@pytest.mark.spec("DEF-QUANTIZE", "DEF-MARGIN")
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "nf4_absmax64"])
def test_quantize_block_json_matches_reference(capsys, fmt):
    x = np.linspace(-3.0, 2.0, 70)
    doc = run_json(capsys, "quantize", "--format", fmt, *map(repr, x.tolist()))
    f = get_format(fmt)
    q = quantize(x, f)
    nbits = f.element.nbits
    assert [v["code"] for v in doc["values"]] == [hexcode(c, nbits) for c in q.codes]
    assert [v["value"] for v in doc["values"]] == dequantize(q, f).tolist()
    assert [v["margin"] for v in doc["values"]] == voronoi_margin(x, f).tolist()
    assert [v["block"] for v in doc["values"]] == [i // f.block_size for i in range(x.size)]
    assert len(doc["scales"]) == q.scales.size == -(-x.size // f.block_size)
    if fmt == "nf4_absmax64":
        assert [s["scale"] for s in doc["scales"]] == q.scales.astype(float).tolist()
    else:
        assert [s["code"] for s in doc["scales"]] == [hexcode(c, 8) for c in q.scales]
    if fmt == "nvfp4":
        assert doc["tensor_scale"] == float(q.tensor_scale)
    else:
        assert doc["tensor_scale"] is None


def test_quantize_tables(capsys):
    rc, out, _ = run(capsys, "quantize", "--format", "nf4", "-0.3", "0.2")
    assert rc == 0
    assert "-0.28444138169288635" in out and "0x4" in out and "margin γ" in out
    rc, out, _ = run(capsys, "quantize", "--format", "nvfp4", "-0.3", "5", "0.2")
    assert rc == 0 and "block scales" in out and "tensor scale" in out


# ----------------------------------------------------------------------------- tensor


def test_demo_file_is_made_by_make_demo(demo_tensors):
    made = make_tensors()
    assert set(demo_tensors) == set(made)
    for name, arr in made.items():
        assert demo_tensors[name].dtype == arr.dtype
        assert np.array_equal(demo_tensors[name].view(np.uint8), arr.view(np.uint8))
    assert len(DEMO.read_bytes()) < 200_000


@pytest.mark.spec(
    "DEF-SUPPORT-VALUE", "DEF-NATPREC", "DEF-ENTROPY-DISCRETIZED", "DEF-COLLISION-CENSUS",
    "DEF-COLLISION-PROBABILITY", "DEF-MARGIN",
)
def test_tensor_default_json_matches_reference(demo_json, demo_tensors):
    assert demo_json["default"] is True and demo_json["skipped"] == []
    assert [t["name"] for t in demo_json["tensors"]] == DEMO_ORDER
    for t in demo_json["tensors"]:
        x = demo_tensors[t["name"]]
        assert (t["dtype"], t["shape"], t["elements"]) == (str(x.dtype), list(x.shape), x.size)
        assert t["support_size_value"] == realized_support(x).size
        assert t["support_size_bits"] == realized_support(x, by="bits").size
        assert t["natural_precision_bits"] == natural_precision(x)
        e = t["entropy"]
        delta = float(np.std(x.astype(np.float64))) / DELTA_STD_DIVISOR
        assert e["delta"] == delta and e["delta_rule"] == f"std/{DELTA_STD_DIVISOR}"
        assert e["plugin_bits"] == discretized_entropy_bits(x, delta)
        assert e["miller_madow_bits"] == discretized_entropy_bits(x, delta, correction="miller-madow")
        ci = entropy_bootstrap_interval(x, delta, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        assert (e["ci_low_bits"], e["ci_high_bits"], e["ci_method"], e["ci_note"]) == (ci.low, ci.high, ci.method, ci.note)
        assert [r["format"] for r in t["formats"]] == list(DEFAULT_TENSOR_FORMATS)
        for r in t["formats"]:
            rep = injectivity_report(x, r["format"])
            assert r["delta_exact"] == f"{rep.delta.numerator}/{rep.delta.denominator}"
            assert r["delta"] == float(rep.delta)
            assert (r["cells_used"], r["injective"], r["colliding_values"]) == (
                rep.cells_used, rep.injective, rep.colliding_values)
            assert r["min_margin"] == min_voronoi_margin(x, r["format"])
            assert len(r["collisions"]) == min(3, len(rep.collisions))


def test_tensor_demo_regimes(demo_json):
    t = {r["name"]: r for r in demo_json["tensors"]}
    assert t["ternary"]["support_size_value"] == 3 and t["ternary"]["natural_precision_bits"] == 2
    assert all(r["injective"] and r["delta"] == 0 for r in t["ternary"]["formats"])
    assert t["activation"]["dtype"] == "bfloat16"
    assert not any(r["injective"] for r in t["weight"]["formats"])


def test_tensor_default_table(capsys):
    rc, out, err = run(capsys, "tensor", "--name", "ternary", "--format", "nf4")
    assert rc == 0 and err == ""
    assert "embedded default" in out and "== ternary ==" in out
    assert "std/256" in out and "Miller–Madow" in out and "basic 95% CI" in out
    assert "\nnf4 " in out and "yes" in out


def test_tensor_npy_user_delta_and_format_list(capsys, tmp_path):
    x = (np.random.default_rng(1).standard_normal((8, 40)) * 0.1).astype(np.float32)
    p = tmp_path / "w.npy"
    np.save(p, x)
    doc = run_json(capsys, "tensor", str(p), "--delta", "0.01", "--format", "int4,nf4", "--format", "mxfp8_e4m3")
    (t,) = doc["tensors"]
    assert doc["default"] is False and t["name"] == "w.npy"
    assert [r["format"] for r in t["formats"]] == ["int4", "nf4", "mxfp8_e4m3"]
    assert t["entropy"]["delta"] == 0.01 and t["entropy"]["delta_rule"] == "--delta"
    assert t["entropy"]["plugin_bits"] == discretized_entropy_bits(x, 0.01)
    assert t["formats"][2]["delta_exact"] == "{0.numerator}/{0.denominator}".format(injectivity_report(x, "mxfp8_e4m3").delta)
    rc, out, _ = run(capsys, "tensor", str(p), "--max-collisions", "0")
    assert rc == 0 and "largest collisions" not in out and "(--delta" not in out


def test_tensor_safetensors_all_float_tensors_in_file_order(capsys, tmp_path):
    p = tmp_path / "m.safetensors"
    save_file({
        "b": np.linspace(-1, 1, 50, dtype=np.float32),
        "ids": np.arange(4, dtype=np.int64),
        "a": np.linspace(0, 1, 30).astype(ml_dtypes.bfloat16),
    }, str(p))
    doc = run_json(capsys, "tensor", str(p), "--format", "int8")
    assert [t["name"] for t in doc["tensors"]] == ["b", "a"]  # F32 stored before BF16
    assert [s["name"] for s in doc["skipped"]] == ["ids"] and doc["skipped"][0]["dtype"] == "I64"
    assert doc["tensors"][1]["dtype"] == "bfloat16"
    rc, out, _ = run(capsys, "tensor", str(p), "--name", "a", "--format", "int8")
    assert rc == 0 and "== a ==" in out and "== b ==" not in out


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-COLLISION-PROBABILITY", "DEF-BAD-INPUT")
def test_tensor_nan_omit(capsys, tmp_path):
    x = np.array([[0.5, np.nan, -1.0, 0.25], [np.nan, 2.0, 0.5, -0.125]])
    p = tmp_path / "n.npy"
    np.save(p, x)
    doc = run_json(capsys, "tensor", str(p), "--nan-policy", "omit", "--format", "nf4,mxfp4")
    (t,) = doc["tensors"]
    assert t["nan_omitted"] == 2
    assert t["support_size_value"] == realized_support(x, nan_policy="omit").size == 5
    for r in t["formats"]:
        assert r["delta_exact"] == "{0.numerator}/{0.denominator}".format(
            injectivity_report(x, r["format"], nan_policy="omit").delta)
    assert t["entropy"]["plugin_bits"] == discretized_entropy_bits(x, t["entropy"]["delta"], nan_policy="omit")


# ----------------------------------------------------------------------------- landauer


@pytest.mark.spec("DEF-LANDAUER-ENERGY")
@pytest.mark.parametrize("bits, temp", [(1.0, None), (8.0, 77.0), (0.0, 300.0), (3.5, 4.2)])
def test_landauer_json(capsys, bits, temp):
    extra = [] if temp is None else ["--temperature", repr(temp)]
    doc = run_json(capsys, "landauer", "--bits", repr(bits), *extra)
    t = 300.0 if temp is None else temp
    e = landauer_energy_joules(bits, 0.0, t)
    assert (doc["bits"], doc["temperature_kelvin"], doc["energy_joules"]) == (bits, t, e)
    assert doc["energy_ev"] == e / 1.602176634e-19
    assert doc["energy_kT"] == pytest.approx(bits * math.log(2), rel=1e-15, abs=0)
    assert doc["energy_kT"] == bits * math.log(2)  # by definition, not E / (k_B·T) rounded twice


def test_landauer_table(capsys):
    rc, out, _ = run(capsys, "landauer", "--bits", "1")
    assert rc == 0
    assert f"{landauer_energy_joules(1.0):.6e} J" in out and "eV" in out and "0.693147 k_B·T" in out


@pytest.mark.spec("DEF-ERASED-INFORMATION")
@pytest.mark.parametrize("fmt", ["nf4", "binary", "int4", "mxfp4"])
def test_landauer_erasure_of_values_json(capsys, fmt):
    values = [0.0] * 1000 + [1.0, 2.0]
    doc = run_json(capsys, "landauer", "--format", fmt, "--temperature", "77", *map(repr, values))
    assert (doc["source"], doc["format"], doc["temperature_kelvin"], doc["skipped"]) == ("values", fmt, 77.0, [])
    (t,) = doc["tensors"]
    r = erased_information(np.array(values), fmt, temperature_kelvin=77.0)
    assert {k: t[k] for k in r.to_dict()} == r.to_dict()
    assert (t["name"], t["dtype"], t["shape"]) == ("values", "float64", [1002])


@pytest.mark.spec("DEF-ERASED-INFORMATION", "THM-BOUND-NOT-ERASURE")
def test_landauer_erasure_of_a_file(capsys, tmp_path):
    x = np.concatenate([np.zeros(1000), [1.0, 2.0]]).astype(np.float32)
    save_file({"sparse": x, "grid": (np.arange(64, dtype=np.float32) / 8).reshape(2, 32),
               "ids": np.arange(3, dtype=np.int64)}, str(tmp_path / "t.safetensors"))
    doc = run_json(capsys, "landauer", "--format", "nf4", "--file", str(tmp_path / "t.safetensors"))
    names = [t["name"] for t in doc["tensors"]]
    assert sorted(names) == ["grid", "sparse"] and [s["name"] for s in doc["skipped"]] == ["ids"]
    sparse = doc["tensors"][names.index("sparse")]
    assert sparse["erased_bits"] == erased_information(x, "nf4").erased_bits == 2 / 1002
    assert sparse["bound_bits"] == 0.0 and sparse["free_by_bound"] and not sparse["injective"]
    one = run_json(capsys, "landauer", "--format", "nf4", "--file", str(tmp_path / "t.safetensors"), "--name", "sparse")
    assert [t["name"] for t in one["tensors"]] == ["sparse"] and one["tensors"][0] == sparse
    rc, out, _ = run(capsys, "landauer", "--format", "nf4", "--file", str(tmp_path / "t.safetensors"), "--name", "sparse")
    assert rc == 0
    assert "0.00199601 bits/element plug-in" in out and "free by the bound (H(X) ≤ b)" in out
    assert f"{sparse['erased_joules']:.6e} J in all" in out


def test_landauer_erasure_nan_policy(capsys, bad_files):
    doc = run_json(capsys, "landauer", "--format", "int4", "--file", f"{bad_files}/nan.npy", "--nan-policy", "omit")
    assert doc["tensors"][0]["n_elements"] == 2 and doc["nan_policy"] == "omit"


# ----------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    np.save(d / "ints.npy", np.arange(5))
    np.save(d / "nan.npy", np.array([1.0, np.nan, 2.0]))
    np.save(d / "allnan.npy", np.full(3, np.nan))
    np.save(d / "empty.npy", np.zeros(0, np.float32))
    np.save(d / "inf.npy", np.array([1.0, np.inf]))
    np.save(d / "bf16.npy", np.ones(3, ml_dtypes.bfloat16))
    np.save(d / "ok.npy", np.linspace(0, 1, 9))
    np.savez(d / "arch.npz", a=np.ones(3))
    (d / "junk.bin").write_bytes(b"not a tensor file at all" * 4)
    (d / "tiny.bin").write_bytes(b"ab")
    save_file({"w": np.ones(4, np.float32), "ids": np.arange(3, dtype=np.int64)}, str(d / "mix.safetensors"))
    save_file({"ids": np.arange(3, dtype=np.int64)}, str(d / "ints.safetensors"))
    return d


BAD = [
    # (argv with {d} for the bad-files folder, substrings the message must contain)
    (["tensor", "{d}/missing.npy"], ["missing.npy", "No such file"]),
    (["tensor", "{d}"], ["Is a directory"]),
    (["tensor", "{d}/junk.bin"], ["junk.bin", "neither a .npy nor"]),
    (["tensor", "{d}/tiny.bin"], ["tiny.bin"]),
    (["tensor", "{d}/arch.npz"], [".npz"]),
    (["tensor", "{d}/ints.npy"], ["ints.npy", "int64"]),
    (["tensor", "{d}/bf16.npy"], ["V2", "bfloat16"]),
    (["tensor", "{d}/nan.npy"], ["NaN", "nan.npy"]),
    (["tensor", "{d}/allnan.npy", "--nan-policy", "omit"], ["empty"]),
    (["tensor", "{d}/empty.npy"], ["empty.npy", "empty"]),
    (["tensor", "{d}/inf.npy"], ["infinite"]),
    (["tensor", "{d}/ok.npy", "--name", "w"], ["--name", "'w'"]),
    (["tensor", "{d}/mix.safetensors", "--name", "nope"], ["'nope'", "available: ids, w"]),
    (["tensor", "{d}/mix.safetensors", "--name", "ids"], ["'ids'", "I64"]),
    (["tensor", "{d}/ints.safetensors"], ["no tensor of an accepted dtype", "ids: I64"]),
    (["tensor", "--format", "foo"], ["'foo'", "known: float16"]),
    (["tensor", "--format", "nf4,bar"], ["'bar'"]),
    (["tensor", "--delta", "0"], ["--delta", "0.0"]),
    (["tensor", "--delta", "-1"], ["--delta", "-1.0"]),
    (["tensor", "--delta", "nan"], ["--delta", "nan"]),
    (["tensor", "--delta", "abc"], ["--delta", "'abc'"]),
    (["tensor", "--max-collisions", "-1"], ["--max-collisions"]),
    (["tensor", "--nan-policy", "propagate"], ["--nan-policy", "'propagate'"]),
    (["tensor", "{d}/ok.npy", "surplus"], ["unrecognized", "surplus"]),
    (["quantize", "--format", "foo", "1"], ["'foo'", "known:"]),
    (["quantize", "--format", "nf4", "abc"], ["'abc'"]),
    (["quantize", "--format", "nf4", "--bogus", "1"], ["'--bogus'"]),
    (["quantize", "--format", "nf4"], ["VALUE"]),
    (["quantize", "1"], ["--format"]),
    (["quantize", "--format", "nf4", "--no-saturate", "1"], ["nf4", "saturate"]),
    (["quantize", "--format", "mxfp4", "--no-saturate", "1"], ["mxfp4", "saturates"]),
    (["quantize", "--format", "nf4", "--nan-policy", "raise", "nan"], ["NaN"]),
    (["quantize", "--format", "nf4", "--nan-policy", "omit", "nan"], ["every VALUE is NaN"]),
    (["quantize", "--format", "nvfp4", "1", "-inf"], ["nvfp4", "non-finite"]),
    (["quantize", "--format", "nf4", "--tie", "odd", "1"], ["--tie", "'odd'"]),
    (["landauer", "--bits", "-1"], ["--bits", "-1.0"]),
    (["landauer", "--bits", "nan"], ["--bits", "nan"]),
    (["landauer", "--bits", "inf"], ["--bits", "inf"]),
    (["landauer", "--bits", "abc"], ["--bits", "'abc'"]),
    (["landauer", "--bits", "1", "--temperature", "0"], ["--temperature", "0.0"]),
    (["landauer", "--bits", "1", "--temperature", "-5"], ["--temperature", "-5.0"]),
    (["landauer", "--bits", "1", "--temperature", "nan"], ["--temperature", "nan"]),
    (["landauer"], ["--bits"]),
    (["landauer", "--bits", "1", "--format", "nf4"], ["--bits", "--format"]),
    (["landauer", "--bits", "1", "2"], ["--bits", "VALUE"]),
    (["landauer", "--format", "nf4"], ["--file", "VALUE"]),
    (["landauer", "--format", "nf4", "--file", "{d}/ok.npy", "1"], ["--file", "VALUEs"]),
    (["landauer", "--format", "nf4", "--name", "w", "1"], ["--name"]),
    (["landauer", "--format", "fp3", "1"], ["'fp3'"]),
    (["landauer", "--format", "nf4", "abc"], ["'abc'"]),
    (["landauer", "--format", "nf4", "--file", "{d}/nan.npy"], ["NaN"]),
    (["landauer", "--format", "nf4", "--file", "{d}/missing.npy"], ["missing.npy"]),
    (["landauer", "--format", "mxfp4", "--file", "{d}/inf.npy"], ["inf"]),
    (["landauer", "--format", "nf4", "--temperature", "0", "1"], ["--temperature", "0.0"]),
    ([], ["COMMAND"]),
    (["frobnicate"], ["'frobnicate'"]),
]


@pytest.mark.spec("DEF-BAD-INPUT")
@pytest.mark.parametrize("argv, needles", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_errors_exit_2_with_one_line(capsys, bad_files, argv, needles):
    rc, out, err = run(capsys, *[a.format(d=bad_files) for a in argv])
    assert rc == 2
    assert out == ""
    assert err.startswith("natprec: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.spec("DEF-BAD-INPUT")
@pytest.mark.parametrize(
    "file, name, value",
    [
        ("missing.npy", None, "{path}"),
        ("arch.npz", None, "{path}"),
        ("tiny.bin", None, "{path}"),
        ("junk.bin", None, "{path}"),
        ("ok.npy", "w", "w"),
        ("mix.safetensors", "nope", "nope"),
    ],
)
def test_loader_errors_carry_value(bad_files, file, name, value):
    """spec/09-bad-input.md: the tensor loader raises InputFileError with the offending path or name."""
    path = Path(bad_files) / file
    with pytest.raises(InputFileError) as info:
        load_tensors(path, name)
    assert info.value.value == value.format(path=path)
    assert isinstance(info.value, OSError)


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "quantize" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "natprec 0.1.0" in capsys.readouterr().out


def test_python_dash_m():
    proc = subprocess.run(
        [sys.executable, "-m", "natprec", "quantize", "--format", "nf4", "-0.3", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["values"][0]["code"] == hexcode(quantize(np.array([-0.3]), "nf4")[0], 4)


@pytest.mark.spec("DEF-RD-OPPOINT", "DEF-RD-GGD-FIT")
def test_tensor_reports_ggd_fit_and_operating_points(demo_json, demo_tensors):
    from natprec.reference import ggd
    from natprec.reference import ratedistortion as rd

    by_name = {t["name"]: t for t in demo_json["tensors"]}
    w = demo_tensors["weight"]
    fit = ggd.fit_ml(w.astype(np.float64))
    g = by_name["weight"]["ggd"]
    assert (g["beta"], g["alpha"]) == (fit.beta, fit.alpha)
    h = ggd.differential_entropy_bits(fit.beta, fit.alpha)
    assert g["differential_entropy_bits"] == h
    for r in by_name["weight"]["formats"]:
        op = rd.format_operating_point(w, r["format"], h_bits=h)
        assert r["operating_point"]["mse"] == op.mse
        assert r["operating_point"]["index_entropy_bits"] == op.index_entropy_bits
        assert r["operating_point"]["gap_entropy_to_slb_bits"] == op.gap_entropy_to_slb_bits
    # Ternary data has atoms: the ML fit runs to the β range bound, so no h and no SLB gap.
    assert "range bound" in by_name["ternary"]["ggd"]["error"]
    assert all(r["operating_point"]["gap_entropy_to_slb_bits"] is None for r in by_name["ternary"]["formats"])


@pytest.mark.spec("DEF-RD-CONTINUOUS", "DEF-RD-OPPOINT")
def test_rd_plot_draws_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra")
    out = tmp_path / "rd.png"
    assert main(["rd", "--source", "ggd", "--beta", "1.7", "--distortion", "0.05", "--format", "nf4", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "R(D)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- review fixes


@pytest.mark.spec("DEF-RD-OPPOINT")
def test_tensor_operating_point_columns_name_their_scaling(capsys, demo_json):
    # Census columns are the format unscaled; MSE / H(codes) / H−R_SLB are at format_operating_point's scaling.
    for t in demo_json["tensors"]:
        for r in t["formats"]:
            element = isinstance(get_format(r["format"]), ElementFormat)
            op = r["operating_point"]
            assert op["scaling"] == ("mse-optimal per-tensor" if element else "block")
            assert (op["scale"] is None) is (not element) or "error" in op
    rc, out, err = run(capsys, "tensor", "--name", "weight", "--format", "nf4,mxfp4")
    assert rc == 0 and err == ""
    header = next(line for line in out.splitlines() if line.startswith("format "))
    assert header.split()[-4:] == ["MSE*", "rate", "H(codes)*", "H−R_SLB*"]
    assert "* at the operating point's scaling: element formats at the MSE-optimal per-tensor scale; " \
           "block formats with their own block scales" in out
    assert "literal semantics (element formats unscaled)" in out


@pytest.mark.spec("DEF-MARGIN")
def test_quantize_margins_are_one_propagate_call(capsys, monkeypatch):
    import natprec.summaries as summaries

    calls = []

    def spy(x, f, **kw):
        calls.append((np.array(x, copy=True), kw))
        return voronoi_margin(x, f, **kw)

    monkeypatch.setattr(summaries, "voronoi_margin", spy)
    xs = ["nan", "inf", "-inf", "0.3", "-0.0"]
    doc = run_json(capsys, "quantize", "--format", "float8_e4m3fn", *xs)
    x = np.array([float(s) for s in xs])
    assert len(calls) == 1 and calls[0][1] == {"tie": "even", "nan_policy": "propagate"}
    np.testing.assert_array_equal(calls[0][0], x)  # NaN and ±Inf included
    want = voronoi_margin(x, "float8_e4m3fn", nan_policy="propagate")
    assert [v["margin"] for v in doc["values"]] == [jnum(g) for g in want]


@pytest.mark.spec("DEF-ENTROPY-DISCRETIZED", "DEF-MILLER-MADOW")
def test_tensor_entropies_from_one_histogram(capsys, monkeypatch, demo_tensors):
    import natprec.analysis as analysis
    from natprec.reference import discretized_histogram, entropy_bits_from_counts

    def no(*a, **k):
        raise AssertionError("discretized_entropy_bits re-bins the data: use the histogram's counts")

    monkeypatch.setattr(analysis, "discretized_entropy_bits", no, raising=False)
    doc = run_json(capsys, "tensor", "--name", "weight", "--format", "int8")
    e = doc["tensors"][0]["entropy"]
    x = demo_tensors["weight"]
    counts = discretized_histogram(x, e["delta"]).counts
    assert e["plugin_bits"] == entropy_bits_from_counts(counts) == discretized_entropy_bits(x, e["delta"])
    assert e["miller_madow_bits"] == entropy_bits_from_counts(counts, correction="miller-madow")


@pytest.mark.spec("DEF-FORMAT-ELEMENT")
def test_formats_bits_per_element_is_the_formats_own(capsys, monkeypatch):
    from natprec.reference.formats import MXFormat

    orig = MXFormat.conventions
    monkeypatch.setattr(MXFormat, "conventions", lambda self: {**orig(self), "bits_per_element": 99.0})
    by_name = {r["name"]: r for r in run_json(capsys, "formats")["formats"]}
    assert by_name["mxfp4"]["bits_per_element"] == 99.0  # no table of scale bits in the CLI
    assert by_name["nf4_absmax64"]["bits_per_element"] == get_format("nf4_absmax64").conventions()["bits_per_element"]


# ----------------------------------------------------------------------------- issue 9, item 6: named errors, not tracebacks


def test_hostile_tensor_files_are_named_errors(capsys, tmp_path):
    import numpy.lib.format as npf

    nested = tmp_path / "nested.safetensors"
    hdr = ("[" * 100_000 + "]" * 100_000).encode()
    nested.write_bytes(struct.pack("<Q", len(hdr)) + hdr)
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})
        fh.write(b"\0" * 16)
    structured = tmp_path / "structured.npy"
    np.save(structured, np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    for path, want in ((nested, "nested too deeply"), (huge, "declares shape (1099511627776,)"),
                       (structured, "structured array")):
        rc, out, err = run(capsys, "tensor", str(path))
        assert rc == 2 and want in err and "Traceback" not in err, err


@pytest.mark.spec("DEF-LANDAUER-ENERGY")
def test_landauer_extreme_temperatures(capsys):
    doc = run_json(capsys, "landauer", "--bits", "1", "--temperature", "1e-310")
    assert doc["energy_joules"] == 0.0 and doc["energy_kT"] == math.log(2)  # k_B·T underflows; E/(k_B·T) does not
    rc, out, err = run(capsys, "landauer", "--json", "--bits", "1e300", "--temperature", "1e20")
    assert rc == 2 and out == "" and "past the float64 range in eV" in err


@pytest.mark.spec("DEF-RD-SLB")
@pytest.mark.parametrize("rate, want", [("-10000", "--rate must be finite and > 0"), ("0", "--rate must be finite and > 0"),
                                        ("1e5", "inverts the Shannon lower bound")])
def test_rd_rate_out_of_range(capsys, rate, want):
    rc, out, err = run(capsys, "rd", "--rate", rate)
    assert rc == 2 and want in err


def test_rd_plot_into_a_missing_directory_fails_before_solving(capsys, tmp_path):
    rc, out, err = run(capsys, "rd", "--distortion", "0.01", "--plot", str(tmp_path / "no" / "x.png"))
    assert rc == 2 and "does not exist" in err and out == ""


def test_report_factory_that_raises_is_named(capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "boom_factory.py").write_text("def make():\n    raise RuntimeError('boom')\n")
    (tmp_path / "bad_import.py").write_text("import no_such_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, out, err = run(capsys, "report", "boom_factory:make", "--out", str(tmp_path / "o"))
    assert rc == 2 and "the factory raised RuntimeError: boom" in err
    rc, out, err = run(capsys, "report", "bad_import:make", "--out", str(tmp_path / "o"))
    assert rc == 2 and "cannot import the factory (ModuleNotFoundError" in err

