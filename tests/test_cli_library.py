"""The library behind each ``natprec`` command returns exactly the document the command prints with ``--json``.

natprec.io (loading), natprec.analysis (``tensor``), natprec.summaries (``formats``, ``quantize``,
``landauer``), natprec.rdtables (``rd``) and natprec.strictjson (every ``--json``).
"""

from __future__ import annotations

import json
import math
import warnings

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from natprec.analysis import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, FileAnalysis, TensorAnalysis, analyze_file, analyze_tensor
from natprec.cli import main
from natprec.data.make_demo import make_tensors
from natprec.io import DEMO_SOURCE, load_demo_tensors, load_tensors
from natprec.rdtables import TABLES, nf4_mismatch_table, rd_point, rd_table
from natprec.reference import (
    EmptyInputError,
    InjectivityReport,
    InputFileError,
    InvalidDTypeError,
    InvalidParameterError,
    NaNInputError,
    entropy_bootstrap_interval,
    erased_information,
    get_format,
    injectivity_report,
    landauer_energy_joules,
)
from natprec.reference import ratedistortion as rd
from natprec.strictjson import dumps, json_code, json_number, to_strict
from natprec.summaries import erasure_summary, format_summaries, format_summary, landauer_summary, quantize_summary


def cli_json(capsys, command, *argv):
    rc = main([command, "--json", *argv])  # before any '--'
    out, err = capsys.readouterr()
    assert rc == 0 and err == "", err
    return json.loads(out)


# ----------------------------------------------------------------------------- natprec.strictjson


def test_strict_json_writes_non_finite_floats_as_strings():
    doc = {"a": float("nan"), "b": [np.float32("inf"), -math.inf], "c": (np.int64(3), 1.5), 4: None, "d": "x"}
    assert to_strict(doc) == {"a": "nan", "b": ["inf", "-inf"], "c": [3, 1.5], "4": None, "d": "x"}
    assert type(to_strict(np.float64(0.25))) is float and type(to_strict(np.int8(-1))) is int
    assert json.loads(dumps(doc)) == to_strict(doc)
    assert dumps({"μ": 1.0}, indent=1) == '{\n "μ": 1.0\n}'  # characters kept, not escaped
    assert json_number(None) is None and json_number(-0.0) == 0.0 and math.copysign(1, json_number(-0.0)) < 0
    assert [json_code(15, 4), json_code(15, 8), json_code(0x7f, 7), json_code(1, 1)] == ["0xf", "0x0f", "0x7f", "0x1"]


# ----------------------------------------------------------------------------- natprec.io


def test_demo_tensors_load_in_file_order():
    tensors, skipped = load_demo_tensors()
    want = make_tensors()
    assert [k for k, _ in tensors] == ["ternary", "activation", "weight"] and skipped == []
    for k, arr in tensors:
        assert arr.dtype == want[k].dtype
        np.testing.assert_array_equal(arr, want[k])
    (k, arr), = load_demo_tensors("weight")[0]
    assert k == "weight" and arr.dtype == want["weight"].dtype


def test_load_tensors_skips_non_floats_and_names_errors(tmp_path):
    p = tmp_path / "m.safetensors"
    b = np.arange(4, dtype=np.float32).astype(ml_dtypes.bfloat16)
    save_file({"b": b, "i": np.arange(5, dtype=np.int32)}, str(p))
    tensors, skipped = load_tensors(p)
    assert [k for k, _ in tensors] == ["b"] and tensors[0][1].dtype == ml_dtypes.bfloat16
    assert skipped == [{"name": "i", "dtype": "I32", "shape": [5], "reason": "dtype I32 is not one of F16, BF16, F32, F64"}]
    with pytest.raises(InvalidDTypeError) as info:
        load_tensors(str(p), "i")  # a str path too
    assert info.value.value == "I32"
    with pytest.raises(InputFileError) as info:
        load_tensors(tmp_path / "missing.npy")
    assert info.value.value == str(tmp_path / "missing.npy")


# ----------------------------------------------------------------------------- natprec.analysis


def test_analyze_file_is_the_tensor_command(capsys):
    res = analyze_file()
    assert isinstance(res, FileAnalysis) and res.default and res.source == DEMO_SOURCE
    assert res.to_dict() == cli_json(capsys, "tensor")


def test_analyze_tensor_is_one_entry_of_the_tensor_command(capsys, tmp_path):
    x = np.random.default_rng(5).standard_normal(700).astype(np.float32)
    x[::50] = np.nan
    p = tmp_path / "x.npy"
    np.save(p, x)
    fmts = ["nf4", "int8", "mxfp4"]
    doc = cli_json(capsys, "tensor", str(p), "--format", ",".join(fmts), "--nan-policy", "omit", "--delta", "0.02",
                   "--max-collisions", "2")
    res = analyze_tensor(x, fmts, delta=0.02, nan_policy="omit", max_collisions=2, name="x.npy")
    assert isinstance(res, TensorAnalysis)
    assert doc["tensors"] == [res.to_dict()]
    assert analyze_file(p, fmts, delta=0.02, nan_policy="omit", max_collisions=2).to_dict() == doc
    # The result holds the reference's own results.
    y = x[~np.isnan(x)]
    assert res.nan_omitted == 14 and res.shape == (700,) and res.entropy.delta_rule == "--delta"
    assert isinstance(res.formats[0].injectivity, InjectivityReport)
    assert res.formats[1].injectivity.delta == injectivity_report(y, "int8").delta
    assert res.entropy.interval == entropy_bootstrap_interval(y, 0.02, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    assert res.formats[0].operating_point == rd.format_operating_point(y, "nf4", h_bits=res.ggd.differential_entropy_bits)


def test_analyze_tensor_checks_its_parameters():
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    assert analyze_tensor(x, "int8").formats[0].format is get_format("int8")  # one name
    with pytest.raises(InvalidParameterError, match="--delta"):
        analyze_tensor(x, delta=0.0)
    with pytest.raises(InvalidParameterError, match="--max-collisions"):
        analyze_tensor(x, max_collisions=-1)
    with pytest.raises(NaNInputError):
        analyze_tensor(np.array([1.0, np.nan], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # b* fails before the std of nothing is taken
        with pytest.raises(EmptyInputError, match="natural precision"):
            analyze_tensor(np.full(3, np.nan, np.float32), nan_policy="omit")


def test_analyze_file_names_the_failing_tensor(tmp_path):
    p = tmp_path / "n.safetensors"
    save_file({"ok": np.ones(4, np.float32), "bad": np.array([1.0, np.nan], np.float32)}, str(p))
    with pytest.raises(NaNInputError, match="^tensor 'bad': "):
        analyze_file(p, ["int8"])


def test_analysis_of_data_without_ggd_fit(capsys, tmp_path):
    p = tmp_path / "c.npy"
    x = np.full(40, 0.5, np.float32)  # constant: no GGD fit, Δ falls back to 1
    np.save(p, x)
    res = analyze_tensor(x, ["int8"], name="c.npy")
    assert res.ggd.error is not None and res.ggd.differential_entropy_bits is None and res.entropy.delta == 1.0
    assert res.to_dict()["ggd"] == {"error": res.ggd.error}
    assert cli_json(capsys, "tensor", str(p), "--format", "int8")["tensors"] == [res.to_dict()]


# ----------------------------------------------------------------------------- natprec.summaries


def test_format_summaries_are_the_formats_command(capsys):
    assert format_summaries() == cli_json(capsys, "formats")["formats"]
    assert format_summary("nf4")["values"][0] == -1.0 and "values" not in format_summary("float16")


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "nf4", "int8", "mxfp4", "nvfp4", "nf4_absmax64"])
def test_quantize_summary_is_the_quantize_command(capsys, fmt):
    values = [-0.3, 0.2, 5.0, -0.0, 1e-3] + ([float("nan")] if fmt == "float8_e4m3fn" else [])  # it has a NaN code
    doc = cli_json(capsys, "quantize", "--format", fmt, "--tie", "away", "--", *map(repr, values))
    assert quantize_summary(values, fmt, tie="away") == doc


def test_landauer_summary_is_the_landauer_command(capsys):
    doc = landauer_summary(4.0, temperature_kelvin=77.0)
    assert doc == cli_json(capsys, "landauer", "--bits", "4", "--temperature", "77")
    assert doc["energy_joules"] == landauer_energy_joules(4.0, temperature_kelvin=77.0)


def test_erasure_summary_is_the_landauer_command(capsys, tmp_path):
    values = [0.0, -0.0, 0.1, 0.2, 0.2, 1.0]
    doc = erasure_summary("int4", values=values, temperature_kelvin=4.2, tie="up")
    assert doc == cli_json(capsys, "landauer", "--format", "int4", "--temperature", "4.2", "--tie", "up", "--", *map(repr, values))
    assert doc["tensors"][0]["erased_bits"] == erased_information(np.array(values), "int4", temperature_kelvin=4.2, tie="up").erased_bits
    np.save(tmp_path / "v.npy", np.array(values, np.float32))
    doc = erasure_summary("mxfp4", path=tmp_path / "v.npy")
    assert doc == cli_json(capsys, "landauer", "--format", "mxfp4", "--file", str(tmp_path / "v.npy"))
    with pytest.raises(InvalidParameterError):
        erasure_summary("int4", values=values, path=tmp_path / "v.npy")


# ----------------------------------------------------------------------------- natprec.rdtables


@pytest.mark.parametrize(
    "table, argv, kwargs",
    [
        ("lloyd-max", ["--levels", "4", "--beta", "1,2"], {"betas": [1.0, 2.0], "levels": 4}),
        ("ecsq", ["--distortion", "0.05", "--beta", "1.5"], {"betas": [1.5], "distortion": 0.05}),
        ("price-of-uniformity", ["--levels", "4", "--beta", "2"], {"betas": [2.0], "levels": 4}),
        ("nf4-mismatch", ["--beta", "1.3"], {"betas": [1.3]}),
        ("block-scaling", ["--beta", "1", "--block-sizes", "16,64", "--seed", "2"], {"betas": [1.0], "block_sizes": [16, 64], "seed": 2}),
    ],
)
def test_rd_table_is_the_rd_table_command(capsys, table, argv, kwargs):
    assert to_strict(rd_table(table, **kwargs)) == cli_json(capsys, "rd", "--table", table, *argv)


def test_rd_table_functions_return_params_and_rows():
    params, rows = nf4_mismatch_table([2.0])
    assert params == {"levels": 16} and rows == [rd.nf4_mismatch(2.0)]
    doc = rd_table("nf4-mismatch", [2.0])
    assert doc == {"table": "nf4-mismatch", "betas": [2.0], "levels": 16, "rows": rows, "converged": True}
    assert "seed003" in TABLES
    with pytest.raises(InvalidParameterError):
        rd_table("no-such-table")


def test_rd_point_is_the_rd_command(capsys):
    doc = rd_point("gaussian", distortion=0.01, formats=["nf4", "int4"])
    assert to_strict(doc) == cli_json(capsys, "rd", "--distortion", "0.01", "--format", "nf4", "--format", "int4")
    assert doc["formats"]["nf4"]["mse"] == rd.operating_point(get_format("nf4").codebook, rd.GGDSource(2.0), "mse").mse
    assert to_strict(rd_point("ggd", 1.7, rate=3.0)) == cli_json(capsys, "rd", "--beta", "1.7", "--rate", "3")
    with pytest.raises(InvalidParameterError, match="no element codebook"):
        rd_point("gaussian", distortion=0.1, formats=["mxfp4"])


def test_seed003_table_names_a_beta_it_does_not_have():
    from natprec.rdtables import seed003_table
    from natprec.reference import InvalidParameterError

    with pytest.raises(InvalidParameterError) as e:
        seed003_table([1.5])
    assert e.value.value == [1.5]
