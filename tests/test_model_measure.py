"""Tests of natprec.model (spec/11-model-measurement.md) on a tiny deterministic torch model.

Every number is checked against a direct computation: the site quantized with
natprec.reference and the model run by hand in float32.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping

import numpy as np
import pytest

from natprec.reference import dequantize, get_format, quantize
from natprec.reference.errors import InvalidParameterError, MissingDependencyError, NonFiniteInputError, UnknownFormatError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli.report import SiteMeasurementError, add_parser  # noqa: E402
from natprec.model import (  # noqa: E402
    DEFAULT_FORMATS,
    MeasuredModel,
    Runner,
    backward_sensitivity,
    dual_precision,
    find_sites,
    forward_point,
    gradients,
    int_step_law,
    jacobian_proxy,
    measure,
    monotone_search,
    monotonicity_violations,
    per_sample_distortion,
    precision_from_curve,
    scout_point,
    select_sites,
    site_format,
)
from natprec.model.report import PLOT_FILES, write_report  # noqa: E402


def tiny(distortion="mse", batches=3, loss=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 4)).float()
    g = torch.Generator().manual_seed(1)
    data = [torch.randn(10, 8, generator=g) for _ in range(batches)]
    loss_fn = (lambda out, b: (out ** 2).sum(dim=1)) if loss else None
    return MeasuredModel(model=model, batches=data, distortion=distortion, loss_fn=loss_fn, description="tiny")


def by_name(sites, name):
    return next(s for s in sites if s.name == name)


@pytest.mark.spec("DEF-SITE")
def test_import_without_torch_names_the_extra():
    code = ("import sys\n"
            "class Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n            raise ImportError('blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import natprec.model as m\n"
            "from natprec.reference.errors import MissingDependencyError\n"
            "try:\n    m.find_sites(object())\nexcept MissingDependencyError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ERR" in out and "pip install natprec[torch]" in out
    assert issubclass(MissingDependencyError, ImportError)


@pytest.mark.spec("DEF-SITE")
def test_sites_named_by_module_path_and_selected_by_pattern():
    mm = tiny()
    names = [s.name for s in find_sites(mm.model)]
    assert names == ["0.weight", "0:input", "2.weight", "2:input", "4.weight", "4:input"]
    assert [s.name for s in select_sites(find_sites(mm.model), "*.weight")] == ["0.weight", "2.weight", "4.weight"]
    with pytest.raises(InvalidParameterError, match="nothing|matches no site"):
        select_sites(find_sites(mm.model), "encoder.*")
    outs = find_sites(mm.model, kinds=("output",), module_types=(torch.nn.Tanh,))
    assert [s.name for s in outs] == ["1:output", "3:output"]


@pytest.mark.spec("DEF-SITE-QUANTIZE")
@pytest.mark.parametrize("name", ["int4", "int8", "nf4_absmax64", "fp4_bnb_absmax64", "mxfp4", "nvfp4"])
def test_site_quantization_is_the_reference(name):
    x = np.random.default_rng(3).standard_normal((12, 70)).astype(np.float32) * 3
    got = site_format(name).quantize_dequantize(x, per_channel=True)
    if name.startswith("int"):
        ref = get_format(name)  # the reference's own two's-complement format
        qmax = np.float32(2 ** (int(name[3:]) - 1) - 1)
        s = np.divide(np.abs(x).max(axis=1, keepdims=True), qmax, dtype=np.float32)
        y = np.divide(x, s, dtype=np.float32)
        want = np.multiply(dequantize(quantize(y, ref), ref).astype(np.float32), s, dtype=np.float32)
        assert np.array_equal(quantize(y, ref), quantize(y, site_format(name).element))  # codes bit for bit
    else:
        want = dequantize(quantize(x, name), name).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_per_tensor_scale_and_fp8():
    x = np.array([[0.5, -2.0, 1.0], [0.25, 0.125, -0.5]], dtype=np.float32)
    # s = 2/1: y = x/2; 1.0/2 = 0.5 is a tie between codes 0 and 1 and goes to the even code 0.
    got = site_format("int2").quantize_dequantize(x, per_channel=False)
    assert np.array_equal(got, np.array([[0, -2, 0], [0, 0, 0]], dtype=np.float32))
    fp8 = site_format("float8_e4m3fn").quantize_dequantize(x, per_channel=False)
    assert fp8.dtype == np.float32 and np.allclose(fp8, x)  # these values are exact in e4m3 after scaling by 2/448


def test_a_format_name_means_the_registry_format():
    # One name, one format, as in the reference and the CLI: nf4 is the NF4 element codebook (here scaled per
    # channel like every element format), nf4_absmax64 the block format; an alias reports its canonical name.
    assert site_format("nf4").element is get_format("nf4") and site_format("nf4").bits_per_element == 4.0
    assert site_format("nf4_absmax64").block is get_format("nf4_absmax64")
    assert site_format("nf4_absmax64").bits_per_element == 4.5
    assert site_format("FP8-E4M3").name == "float8_e4m3fn"
    for name in ("fp4", "fp8"):  # once report-only shorthands for block/element formats; not format names
        with pytest.raises(UnknownFormatError):
            site_format(name)
    assert [site_format(n).name for n in DEFAULT_FORMATS] == list(DEFAULT_FORMATS)


@pytest.mark.spec("DEF-FORWARD-SENSITIVITY", "DEF-AMPLIFICATION")
def test_forward_point_equals_hand_computation():
    mm = tiny()
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    assert r.replay_exact
    assert r.skip["4:input"] == ("0", "1", "2", "3")
    for name in ("2.weight", "2:input"):
        site = by_name(sites, name)
        fmt = site_format("int3")
        pt = forward_point(r, site, fmt)
        d = mse_site = n_site = 0.0
        for x in mm.batches:
            with torch.no_grad():
                h = torch.tanh(mm.model[0](x))
                w = mm.model[2].weight.detach()
                if name.endswith("weight"):
                    wq = torch.from_numpy(fmt.quantize_dequantize(w.numpy(), per_channel=True))
                    z = h @ wq.T + mm.model[2].bias
                    mse_site = float(((wq.double() - w.double()) ** 2).mean())
                else:
                    hq = torch.from_numpy(fmt.quantize_dequantize(h.numpy(), per_channel=False))
                    z = hq @ w.T + mm.model[2].bias
                    mse_site += float(((hq.double() - h.double()) ** 2).sum())
                    n_site += h.numel()
                y = mm.model[4](torch.tanh(z))
                d += float(((y.double() - mm.model(x).double()) ** 2).mean(dim=1).sum())
        n = sum(x.shape[0] for x in mm.batches)
        assert pt["distortion"] == pytest.approx(d / n, rel=1e-9, abs=1e-15)
        site_mse = mse_site if name.endswith("weight") else mse_site / n_site
        assert pt["site_mse"] == pytest.approx(site_mse, rel=1e-9)
        assert pt["amplification"] == pytest.approx(pt["output_mse"] / site_mse, rel=1e-12)


@pytest.mark.spec("DEF-FORWARD-SENSITIVITY")
def test_a_scout_is_batch_0_and_forward_point_continues_it_bit_for_bit():
    mm = tiny()
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    for name in ("2.weight", "2:input"):
        site, fmt = by_name(sites, name), site_format("int3")
        plain, outs = forward_point(r, site, fmt), {}
        scout = scout_point(r, site, fmt)
        ref = {}
        forward_point(r, site, fmt, ref)
        assert scout.distortion == float(per_sample_distortion("mse", r.reference[0], ref[0]).sum()) / ref[0].shape[0]
        assert forward_point(r, site, fmt, outs, scout=scout) == plain and torch.equal(outs[0], ref[0])
        with pytest.raises(InvalidParameterError, match="already continued"):
            forward_point(r, site, fmt, scout=scout)
        with pytest.raises(InvalidParameterError, match="cannot continue as int4"):
            forward_point(r, site, site_format("int4"), scout=scout_point(r, site, fmt))


@pytest.mark.spec("DEF-TASK-DISTORTION")
def test_distortions_against_formulas():
    a = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, -1.0]])
    b = torch.tensor([[0.9, 0.1, 2.0], [0.5, -0.5, -1.0]])
    cos = per_sample_distortion("cosine", a, b)
    want = 1 - (a * b).sum(1).double() / (a.norm(dim=1) * b.norm(dim=1)).double()
    assert torch.allclose(cos, want, atol=1e-7)
    p, q = torch.softmax(a.double(), 1), torch.softmax(b.double(), 1)
    assert torch.allclose(per_sample_distortion("kl", a, b), (p * (p / q).log()).sum(1))
    assert torch.allclose(per_sample_distortion("mse", a, b), ((a - b) ** 2).mean(1).double())
    with pytest.raises(InvalidParameterError):
        per_sample_distortion("loss", a, b)
    with pytest.raises(InvalidParameterError):
        per_sample_distortion("psnr", a, b)


@pytest.mark.spec("THM-MONOTONE-SEARCH", "DEF-OPERATIONAL-PRECISION-SITE")
def test_bisection_equals_definition_on_monotone_curves():
    bits = list(range(2, 9))
    rng = np.random.default_rng(0)
    for _ in range(200):
        vals = np.sort(rng.exponential(size=7))[::-1]
        curve = dict(zip(bits, vals))
        eps = float(rng.choice(np.concatenate([vals, rng.exponential(size=3)])))
        calls = []
        b, seen = monotone_search(lambda x: calls.append(x) or curve[x], bits, eps)
        assert b == precision_from_curve(curve, eps)
        assert len(calls) <= 3 and monotonicity_violations(seen) == []
        guided = []
        assert monotone_search(lambda x: guided.append(x) or curve[x], bits, eps, predict=int_step_law)[0] == b
        assert len(guided) <= 5 and len(set(guided)) == len(guided)
    # A curve that follows the int step law: the guided search confirms the prediction in 2 evaluations where the
    # first probe (int5) sits next to the answer or the answer is an end, 3 elsewhere; bisection always takes 3.
    for answer in (*bits, None):
        law = {b: 2.0 * ((1 << 4) - 1) ** 2 / ((1 << (b - 1)) - 1) ** 2 for b in bits}  # Δ(5) = 2, ×(s_b/s_5)²
        eps = law[answer] * 1.01 if answer is not None else law[8] / 2
        b, seen = monotone_search(law.__getitem__, bits, eps, predict=int_step_law)
        assert b == answer and len(seen) == (2 if answer in (2, 5, 6, None) else 3)
        assert len(monotone_search(law.__getitem__, bits, eps)[1]) == 3
        # With a right estimate of Δ(5) the first probe is placed too: 2 evaluations, 1 at an end.
        b, seen = monotone_search(law.__getitem__, bits, eps, predict=int_step_law, estimate={5: law[5]})
        assert b == answer and len(seen) == (1 if answer in (2, None) else 2)
        # An estimate 100× off costs evaluations, never the answer.
        assert monotone_search(law.__getitem__, bits, eps, predict=int_step_law, estimate={5: law[5] * 100})[0] == answer
    wide = list(range(2, 17))  # 15 widths: ⌈log2 16⌉ = 4 evaluations, + 2 with any predictor
    for cut in range(len(wide) + 1):
        step = {b: float(i < cut) for i, b in enumerate(wide)}
        for guess in (*wide, None):
            b, seen = monotone_search(step.__getitem__, wide, 0.5, predict=lambda known, t, g=guess: g)
            assert b == (wide[cut] if cut < len(wide) else None) and len(seen) <= 6
    bumpy = {2: 1.0, 3: 0.1, 4: 0.5, 5: 0.5, 6: 0.01, 7: 0.0, 8: 0.0}
    assert precision_from_curve(bumpy, 0.2) == 3
    b, seen = monotone_search(lambda x: bumpy[x], bits, 0.2)
    assert b == 6 and bumpy[6] <= 0.2 < bumpy[5]  # the documented weaker answer without monotonicity
    assert [(v["bits"], v["next_bits"]) for v in monotonicity_violations(bumpy)] == [(3, 4), (3, 5)]


@pytest.mark.spec("DEF-BACKWARD-SENSITIVITY")
def test_gradients_and_backward_sensitivity_by_hand():
    mm = tiny(loss=True)
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    grads = gradients(r)
    gw = torch.zeros_like(mm.model[2].weight)
    for x in mm.batches:
        h = torch.tanh(mm.model[0](x)).detach().requires_grad_(True)
        w = mm.model[2].weight.detach().requires_grad_(True)
        y = mm.model[4](torch.tanh(h @ w.T + mm.model[2].bias))
        gh, gw_b = torch.autograd.grad((y ** 2).sum(), (h, w))
        gw += gw_b
        assert any(torch.allclose(g, gh, atol=1e-6) for g in grads["2:input"])
    assert torch.allclose(grads["2.weight"][0], gw, atol=1e-5)
    fmt = site_format("int4")
    g = grads["2.weight"][0].numpy()
    q = fmt.quantize_dequantize(g, per_channel=True)
    want = float(((q.astype(np.float64) - g) ** 2).sum() / (g.astype(np.float64) ** 2).sum())
    assert backward_sensitivity(grads["2.weight"], fmt, per_channel=True) == pytest.approx(want, rel=1e-12)
    assert all(p.grad is None for p in mm.model.parameters())


@pytest.mark.spec("DEF-DUAL-PRECISION")
def test_dual_precision():
    fwd = {2: 1.0, 3: 0.1, 4: 0.01, 5: 0.001, 6: 1e-4, 7: 1e-5, 8: 1e-6}
    bwd = {2: 0.5, 3: 0.2, 4: 0.05, 5: 0.01, 6: 0.003, 7: 1e-3, 8: 2e-4}
    assert dual_precision(fwd, bwd, 0.02, 0.01, 4, 5) == 5
    assert dual_precision({4: 0.01, 6: 1e-4}, bwd, 0.02, 0.01, 4, 5) == 5  # bisection: max of the two
    assert dual_precision({4: 0.01, 6: 1e-4}, bwd, 0.02, 0.01, None, 5) is None


@pytest.mark.spec("DEF-JACOBIAN-PROXY")
def test_jacobian_proxy_is_exact_for_a_linear_downstream():
    mm = tiny()
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    site = by_name(sites, "4:input")  # G(z) = W z + b is linear: e_task equals the actual change
    res = jacobian_proxy(r, site, site_format("int3"))
    assert res["e_task"] == pytest.approx(res["actual"], rel=1e-5)
    res_w = jacobian_proxy(r, by_name(sites, "4.weight"), site_format("int3"))
    assert res_w["e_task"] == pytest.approx(res_w["actual"], rel=1e-5)
    nonlin = jacobian_proxy(r, by_name(sites, "0.weight"), site_format("int2"))
    assert nonlin["e_task"] > 0 and nonlin["e_task"] != pytest.approx(nonlin["actual"], rel=1e-9)


@pytest.mark.spec("DEF-JACOBIAN-PROXY")
def test_jacobian_proxy_reuses_the_point_and_skips_only_zero_products(monkeypatch):
    """``actual`` from forward_point's batch-0 output is the run it replaces; the one-tangent linear rule, with the
    recorded float32 primals, gives the tangent torch's own forward-AD rule gives (the mode switched off)."""
    import contextlib

    sens = sys.modules["natprec.model.sensitivity"]
    mm = tiny()
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    fmt = site_format("int3")
    fast = {}
    for s in sites:
        outputs = {}
        forward_point(r, s, fmt, outputs)
        fast[s.name] = jacobian_proxy(r, s, fmt, actual=outputs[0])
        assert fast[s.name] == jacobian_proxy(r, s, fmt)
    monkeypatch.setattr(sens, "_one_tangent_linear", lambda: contextlib.nullcontext)
    assert {s.name: jacobian_proxy(r, s, fmt) for s in sites} == fast
    # Blocks replayed whole (their linears never run) at the deepest site, yet every linear call is recorded.
    torch.manual_seed(0)
    block = lambda n: torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.Tanh())  # noqa: E731
    nested = MeasuredModel(model=torch.nn.Sequential(block(8), block(16), torch.nn.Linear(16, 4)), batches=mm.batches)
    r = Runner(nested, find_sites(nested.model))
    assert r.skip["2:input"] == ("0", "1")
    monkeypatch.undo()
    jacobian_proxy(r, by_name(r.sites, "2:input"), fmt)
    assert len(sens._PRIMALS[r][0]) == 3


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE", "THM-MONOTONE-SEARCH")
def test_measure_and_report_files(tmp_path):
    mm = tiny()
    doc = measure(mm, tolerance=1e-4, full_sweep=True, all_formats=True)
    for s in doc["sites"]:
        assert s["error"] is None
        curve = {int(b): v for b, v in s["forward"]["curve"].items()}
        assert sorted(curve) == list(range(2, 9))
        assert s["forward"]["b_star"] == precision_from_curve(curve, 1e-4)
        passing = [(p["bits"], n) for n, p in s["points"].items() if p["distortion"] <= 1e-4]
        assert s["best_bits"] == (min(passing)[0] if passing else None)
    paths = write_report(doc, tmp_path)
    assert paths["json"].is_file() and [p.name for p in paths["png"]] == list(PLOT_FILES)
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == len(PLOT_FILES) and "0.weight" in page
    assert page.count("data:image/svg+xml;base64,") == len(doc["sites"])  # one drill-down per site
    # Drawn in one process or shared among forked ones: the same files, byte for byte.
    other = write_report(doc, tmp_path / "drawn-alone", workers=1 if doc["workers"] > 1 else 2)
    assert other["html"].read_bytes() == paths["html"].read_bytes()
    assert [p.read_bytes() for p in other["png"]] == [p.read_bytes() for p in paths["png"]]


@pytest.mark.spec("DEF-TASK-DISTORTION", "DEF-FORWARD-SENSITIVITY")
def test_bad_input_is_named():
    with pytest.raises(InvalidParameterError, match="--tolerance"):
        measure(tiny(), tolerance=0.0)
    with pytest.raises(InvalidParameterError, match="--tolerance"):
        measure(tiny(), tolerance=float("nan"))
    mm = tiny()
    mm.batches[1] = torch.zeros(10, 5)
    with pytest.raises(InvalidParameterError, match="calibration batch 1"):
        measure(mm)
    mm = tiny()
    mm.batches[2] = mm.batches[2] * float("inf")
    with pytest.raises(NonFiniteInputError, match="batch 2"):
        measure(mm)


class Divide(torch.nn.Module):
    """y = x / w: quantizing w to zero makes the output non-finite."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((1, 4), 1e-3) + torch.arange(4.0).reshape(1, 4))

    def forward(self, x):
        return x / self.weight


@pytest.mark.spec("DEF-FORWARD-SENSITIVITY")
def test_a_failing_site_keeps_the_others():
    mm = tiny()
    mm.model = torch.nn.Sequential(mm.model, Divide())
    doc = measure(mm, module_types=(torch.nn.Linear, Divide), kinds=("weight",), formats="int2,int8", jacobian=False)
    errs = {s["site"]: s["error"] for s in doc["sites"]}
    assert "non-finite" in errs["1.weight"] and "1.weight" in errs["1.weight"]
    assert all(e is None for n, e in errs.items() if n != "1.weight")


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return torch.full_like(g, float("nan"))


class NaNGradient(torch.nn.Module):
    """Identity forward, NaN gradient backward: sites upstream fail after their forward curve."""

    def forward(self, x):
        return _NaNGrad.apply(x)


def _nan_grad_model():
    mm = tiny()
    m = mm.model
    mm.model = torch.nn.Sequential(m[0], m[1], NaNGradient(), m[2], m[3], m[4])
    return mm


@pytest.mark.spec("DEF-FORWARD-SENSITIVITY", "DEF-BACKWARD-SENSITIVITY")
def test_a_site_failing_after_its_forward_curve_is_reported_and_every_file_written(tmp_path, capsys):
    mm = _nan_grad_model()
    doc = measure(mm, kinds=("weight",), formats="int4,int8", jacobian=False)
    errs = {s["site"]: s["error"] for s in doc["sites"]}
    assert "NaN" in errs["0.weight"] and "forward" in doc["sites"][0] and "backward" not in doc["sites"][0]
    assert errs["3.weight"] is None and errs["5.weight"] is None
    paths = write_report(doc, tmp_path / "r")
    assert paths["json"].exists() and paths["html"].exists() and len(paths["png"]) == len(PLOT_FILES)
    html_text = paths["html"].read_text()
    assert "ERROR NaNInputError" in html_text and "1 of 3 site(s) failed" in html_text
    # Every site fails: no plots, the files are still written.
    doc = measure(mm, sites="0.weight", formats="int4,int8", jacobian=False)
    paths = write_report(doc, tmp_path / "all-failed")
    assert paths["png"] == [] and "No plots" in paths["html"].read_text()


@pytest.mark.spec("DEF-SITE")
def test_cli_report_prints_json_and_exits_nonzero_when_a_site_fails(tmp_path, capsys, monkeypatch):
    import json

    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: _nan_grad_model())
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(["report", "--json", "--no-jacobian", "--kinds", "weight", "--formats", "int4,int8",
                         "--out", str(tmp_path / "o")])
    with pytest.raises(SiteMeasurementError, match="1 site"):
        args.run(args)
    doc = json.loads(capsys.readouterr().out)
    assert [s["site"] for s in doc["sites"]] == ["0.weight", "3.weight", "5.weight"]
    assert (tmp_path / "o" / "report.html").exists()


@pytest.mark.spec("DEF-SITE")
def test_cli_report_errors(tmp_path):
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(["report", "--tolerance", "-1"])
    with pytest.raises(InvalidParameterError, match="--tolerance"):
        args.run(args)
    (tmp_path / "junk").mkdir()
    args = p.parse_args(["report", str(tmp_path / "junk"), "--out", str(tmp_path / "o")])
    with pytest.raises(Exception, match="not a model directory"):
        args.run(args)
    assert issubclass(SiteMeasurementError, RuntimeError)


class _KwBatch(Mapping):
    """A calibration batch that is a Mapping but not a dict (e.g. a tokenizer's BatchEncoding)."""

    def __init__(self, **kw):
        self._d = kw

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)


class _KwModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.lin(x)


@pytest.mark.spec("DEF-JACOBIAN-PROXY")
def test_jacobian_proxy_takes_mapping_batches_as_keywords():
    # A weight site under a non-dict Mapping batch: keyword arguments, as call_model does.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    mm = MeasuredModel(model=_KwModel().float(), batches=[_KwBatch(x=torch.randn(10, 8, generator=g))],
                       distortion="mse", description="kw")
    sites = find_sites(mm.model)
    r = Runner(mm, sites)
    res = jacobian_proxy(r, by_name(sites, "lin.weight"), site_format("int3"))
    assert res["samples"] == 10 and res["e_task"] == pytest.approx(res["actual"], rel=1e-5)  # linear in W


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_block_site_format_bits_are_the_formats_own(monkeypatch):
    from natprec.reference.formats import MXFormat

    for name in ("nf4_absmax64", "fp4_bnb_absmax64", "mxfp4", "nvfp4"):
        assert site_format(name).bits_per_element == get_format(name).conventions()["bits_per_element"]
    orig = MXFormat.conventions
    monkeypatch.setattr(MXFormat, "conventions", lambda self: {**orig(self), "bits_per_element": 99.0})
    assert site_format("mxfp4").bits_per_element == 99.0  # no table of scale bits in natprec.model


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-COLLISION-PROBABILITY")
def test_report_census_is_the_reference_census():
    from natprec.model.info import format_measures
    from natprec.model.quantize import site_format
    from natprec.reference import injectivity_report

    w = np.array([[-1e-6, 1e-6, 1.0, 0.5]], np.float32)  # −0 and +0 are distinct encodings: no collision
    for name in ("float8_e4m3fn", "float4_e2m1fn", "mxfp4", "nvfp4"):
        assert format_measures(w, site_format(name), per_channel=True, max_elements=1 << 20)["collision_probability"] == 0.0
    assert injectivity_report(w, "float8_e4m3fn").delta == 0
    x = np.random.default_rng(3).standard_normal((8, 256)).astype(np.float32)
    x[0, :7] = [-1e-30, 1e-30, 0.0, -0.0, 2e-30, -3e-30, 1e-30]
    for name in ("nf4_absmax64", "mxfp4", "nvfp4", "mxfp8_e4m3"):
        got = format_measures(x, site_format(name), per_channel=True, max_elements=1 << 20)["collision_probability"]
        assert got == float(injectivity_report(x, name).delta), name


class _EmbNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, ids):
        return self.fc(self.norm(self.emb(ids)).mean(dim=1))


@pytest.mark.spec("DEF-SITE")
def test_embedding_weights_are_sites_and_coverage_says_what_was_skipped():
    from natprec.model import DEFAULT_MODULE_KINDS, coverage, module_types_of

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    mm = MeasuredModel(model=_EmbNet().float(), batches=[torch.randint(0, 20, (6, 5), generator=g)], distortion="mse",
                       description="emb")
    sites = find_sites(mm.model)
    assert [s.name for s in sites] == ["emb.weight", "fc.weight", "fc:input"]  # integer ids are not a site
    cov = coverage(mm.model, sites)
    assert cov["parameters"] == 20 * 8 + 8 + 8 + 8 * 4 + 4 and cov["measured_parameters"] == 20 * 8 + 8 * 4
    assert cov["skipped"] == ["20 parameters in 1-D gains and biases: not sites",
                              "1 Embedding input(s): integer indices, nothing to quantize"]
    linear = module_types_of("linear")
    assert linear == (torch.nn.Linear,) and set(DEFAULT_MODULE_KINDS) == {"linear", "conv", "embedding"}
    only_fc = find_sites(mm.model, module_types=linear)
    assert coverage(mm.model, only_fc, linear)["skipped"][0] == "1 Embedding parameter tensor(s) (160 parameters): not a selected layer kind"
    with pytest.raises(InvalidParameterError, match="--modules: unknown layer kind") as e:
        module_types_of("linear,attention")
    assert e.value.value == "linear,attention"
    doc = measure(mm, formats="int", jacobian=True)
    emb = doc["sites"][0]
    assert emb["error"] is None and emb["forward"]["b_star"] is not None and emb["jacobian"]["e_task"] > 0
    assert doc["coverage"] == cov and any(n.startswith("weight sites cover 192 of 212 parameters") for n in doc["notes"])


@pytest.mark.spec("DEF-SITE-QUANTIZE")
@pytest.mark.parametrize("bits, g", [(4, 32), (3, 5), (8, 128)])
def test_grouped_integers_scale_each_group_by_its_absmax(bits, g):
    from natprec.model.quantize import GROUP_SCALE_BITS

    rng = np.random.default_rng(bits * g)
    x = (rng.standard_normal((6, 70)) * rng.lognormal(0, 2, (6, 70))).astype(np.float32)
    x[2, :g] = 0.0  # an all-zero group takes s = 1
    f = site_format(f"int{bits}_g{g}")
    assert f.int_bits is None and f.group == g and f.bits_per_element == bits + GROUP_SCALE_BITS / g
    want = np.empty_like(x)
    qmax = np.float32((1 << (bits - 1)) - 1)
    for r in range(x.shape[0]):
        for c0 in range(0, x.shape[1], g):
            blk = x[r, c0:c0 + g]
            s = np.float32(np.max(np.abs(blk)) / qmax) if np.any(blk) else np.float32(1)
            code = np.clip(np.rint(blk / s), -qmax - 1, qmax).astype(np.int64)  # nearest integer, ties to even; one zero
            want[r, c0:c0 + g] = (code.astype(np.float32) * s).astype(np.float32)
    got = f.quantize_dequantize(x, per_channel=True)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))
    # Activations group along their features too; the census sees one scale group per (row, group).
    assert np.array_equal(f.quantize_dequantize(x, per_channel=False), got)
    _, group = f.element_view(x, per_channel=True)
    ng = -(-70 // g)
    assert group[1, 0] == ng and group[0, -1] == ng - 1 and len(np.unique(group)) == 6 * ng
    assert f.effective_bits(x.shape, True) == pytest.approx(bits + GROUP_SCALE_BITS * ng / 70)
    assert f"per {g} elements" in f.scaling


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_grouped_integer_names():
    with pytest.raises(InvalidParameterError, match="at least 2"):
        site_format("int4_g1")
    with pytest.raises(UnknownFormatError):
        site_format("int4_gx")
    with pytest.raises(InvalidParameterError):
        site_format("int17_g32")
    doc = measure(tiny(), sites="2.weight", formats="int,int4_g8", all_formats=True, jacobian=False)
    assert doc["sites"][0]["points"]["int4_g8"]["effective_bits"] == 8.0  # 16 columns: two full groups of 8


@pytest.mark.spec("DEF-SITE-QUANTIZE")
@pytest.mark.parametrize("name, bits, g", [("uint4", 4, None), ("uint8", 8, None), ("uint3_g8", 3, 8)])
def test_asymmetric_integers_with_a_zero_point(name, bits, g):
    from fractions import Fraction

    from natprec.model.info import format_measures

    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((5, 24)) + np.arange(5)[:, None] * 0.7).astype(np.float32)  # rows of one sign, and mixed
    x[4] = np.abs(x[4]) + 1  # all positive: the range still reaches 0, so 0 stays exact
    f = site_format(name)
    assert f.asymmetric and f.group == g and f.int_bits is None
    assert f.bits_per_element == (bits if g is None else bits + (32 + bits) / g)
    top = (1 << bits) - 1
    want = np.empty_like(x)
    for r in range(5):
        for c0 in range(0, 24, g or 24):
            blk = x[r, c0:c0 + (g or 24)]
            lo, hi = np.float32(min(blk.min(), 0)), np.float32(max(blk.max(), 0))
            s = np.float32(np.float32(hi - lo) / np.float32(top)) or np.float32(1)
            z = int(np.clip(np.rint(np.float32(-lo / s)), 0, top))
            for i, v in enumerate(blk):
                y = Fraction(float(np.float32(v / s))) + z  # the exact value the unsigned codebook sees
                k = min(max(round(y), 0), top)  # nearest, ties to the even code (Python's round), saturating
                want[r, c0 + i] = np.float32((k - z) * float(s))
    got = f.quantize_dequantize(x, per_channel=True)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.all(got[np.abs(x) == 0] == 0)
    fm = format_measures(x, f, per_channel=True, max_elements=1 << 15)
    assert 0 <= fm["collision_probability"] <= 1 and fm["min_margin"] >= 0
    assert "zero point" in f.scaling


@pytest.mark.spec("DEF-FORWARD-SENSITIVITY")
def test_device_is_resolved_named_and_recorded():
    from natprec.model.runner import resolve_device, to_device

    assert resolve_device("CPU") == "cpu" and resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x", "cuda:99"):
        with pytest.raises(InvalidParameterError, match="--device") as e:
            resolve_device(bad)
        assert e.value.value == bad
    b = to_device({"x": torch.ones(2), "n": 3, "t": (torch.zeros(1), [torch.ones(1)])}, "cpu")
    assert b["n"] == 3 and isinstance(b["t"], tuple) and isinstance(b["t"][1], list) and b["x"].device.type == "cpu"
    auto = measure(tiny(), sites="0.weight", formats="int", jacobian=False)
    cpu = measure(tiny(), sites="0.weight", formats="int", jacobian=False, device="cpu")
    assert cpu["device"] == "cpu"
    if auto["device"] == "cpu":
        assert cpu["sites"][0]["forward"] == auto["sites"][0]["forward"]


def _statistics(doc):
    """Everything a report measures, without its timings and the name of the tier that measured it."""
    return [{k: v for k, v in s.items() if k != "timing"} for s in doc["sites"]], doc["claim"], doc["summary"]


@pytest.mark.spec("DEF-SITE")
def test_statistics_on_the_accelerated_tier_equal_the_reference_bit_for_bit(host):
    import natprec.accelerated as acc
    import natprec.reference as ref
    from natprec.model.runner import statistics_tier

    assert statistics_tier("cpu") is ref
    formats = "int,nf4,float8_e4m3fn,nf4_absmax64,uint4_g8"
    want = measure(tiny(), formats=formats, jacobian=True, device="cpu", claim_tolerances=(1e-2,))
    assert want["statistics_tier"] == "natprec.reference"
    paths = set()

    class Recorded:  # the accelerated tier, noting which path (device or host) each call took
        __name__ = acc.__name__

        def __getattr__(self, name):
            def call(*args, **kw):
                out = getattr(acc, name)(*args, **kw)
                paths.add(acc.last_path())
                return out
            return call

    with acc.use_backend(host):
        assert statistics_tier("cuda") is acc  # a CUDA device and a working backend: the accelerated tier
        # One process: the calls are recorded here (forked workers would record them in their own memory).
        got = measure(tiny(), formats=formats, jacobian=True, device="cpu", tier=Recorded(), claim_tolerances=(1e-2,), workers=1)
    assert got["statistics_tier"] == "natprec.accelerated"
    assert "device" in paths, paths  # codes, margins, histograms and float32 support on the "device" (the host build)
    assert _statistics(got) == _statistics(want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.spec("DEF-FORWARD-SENSITIVITY")
def test_cuda_runs_the_passes_and_the_statistics_on_the_accelerated_tier():
    import natprec.accelerated as acc

    doc = measure(tiny(), formats="int,nf4,nf4_absmax64", jacobian=True, device="cuda")
    assert doc["device"] == "cuda" and all(s["error"] is None for s in doc["sites"])
    assert doc["statistics_tier"] == ("natprec.accelerated" if acc.gpu_available()[0] else "natprec.reference")
    cpu = measure(tiny(), formats="int,nf4,nf4_absmax64", jacobian=True, device="cpu")
    weights = [(g["info"], c["info"], g["format_info"], c["format_info"])
               for g, c in zip(doc["sites"], cpu["sites"]) if g["kind"] == "weight"]
    assert weights and all(g == c and gf == cf for g, c, gf, cf in weights)  # the same weights: tiers agree bit for bit


@pytest.mark.spec("DEF-SITE")
def test_torch_loaded_by_natprec_sleeps_instead_of_spinning():
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}

    def policy_after_loading_torch(env):
        code = "import os\nfrom natprec.model.deps import require_torch\nrequire_torch()\nprint(os.environ.get('OMP_WAIT_POLICY'))\n"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()

    assert policy_after_loading_torch(env) == "PASSIVE"
    assert policy_after_loading_torch(dict(env, OMP_WAIT_POLICY="ACTIVE")) == "ACTIVE"  # a user's choice is kept

