"""DEF-SOFTMAX-ROUNDING, DEF-ACCUMULATION-GROWTH, DEF-BOTTLENECK-CAPACITY — seed 004's experiments, pinned on small inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from natprec.model.quantize import site_format
from natprec.reference import dequantize, quantize
from natprec.reference.errors import InvalidParameterError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

import natprec.studies.bottleneck as bottleneck_mod  # noqa: E402
from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies.bottleneck import (  # noqa: E402
    bottleneck_data,
    bottleneck_study,
    code_bits,
    pareto_front,
    round_code,
)
from natprec.studies.softmax import (  # noqa: E402
    accumulation_curves,
    attention_probabilities,
    growth_exponent,
    probability_distortion,
    round_to,
    rounded_attention,
    softmax_study,
)


def tiny_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=16, attn_implementation="eager")
    model = transformers.BertModel(cfg).eval()
    g = torch.Generator().manual_seed(1)
    batches = []
    for lengths in ((7, 5, 3), (6, 6, 2)):
        ids = torch.randint(1, 40, (3, 7), generator=g)
        mask = (torch.arange(7)[None, :] < torch.tensor(lengths)[:, None]).long()
        batches.append({"input_ids": ids * mask, "attention_mask": mask})
    return MeasuredModel(model=model, batches=batches, output_fn=lambda out, b: out.last_hidden_state[:, 0],
                         token_mask=lambda b: b["attention_mask"].bool(), description="tiny bert")


@pytest.mark.spec("DEF-SOFTMAX-ROUNDING")
def test_masked_softmax_is_torch_softmax_on_the_valid_keys():
    s = np.random.default_rng(0).normal(0, 3, (2, 3, 5))
    valid = np.array([True, True, False, True, False])
    p = attention_probabilities(s, valid)
    ref = torch.softmax(torch.from_numpy(np.where(valid, s, -np.inf)), -1).numpy()
    np.testing.assert_allclose(p, ref, rtol=1e-14, atol=0)
    assert (p[..., ~valid] == 0).all()
    assert (attention_probabilities(s, np.zeros(5, bool)) == 0).all()  # a row with no valid key


@pytest.mark.spec("DEF-SOFTMAX-ROUNDING")
def test_rounding_of_scores_and_probabilities():
    # seed 004's example: 0.268, 0.275 and 0.295 all become 0.28125 in E4M3 (errata E-004-2)
    assert round_to([0.268, 0.275, 0.295], "float8_e4m3fn").tolist() == [0.28125] * 3
    x = np.random.default_rng(1).normal(0, 4, 200)
    assert np.array_equal(round_to(x, "float8_e5m2"), dequantize(quantize(x, "float8_e5m2", saturate=True), "float8_e5m2"))
    assert np.array_equal(round_to(x, "float4_e2m1fn", "tensor"),
                          site_format("float4_e2m1fn").quantize_dequantize(x.astype(np.float32), per_channel=False))
    s = np.random.default_rng(2).normal(0, 2, (4, 6))
    valid = np.array([True] * 5 + [False])
    pre = rounded_attention(s, valid, "float8_e4m3fn", "none", "pre")
    np.testing.assert_allclose(pre.sum(-1), 1.0, rtol=1e-14)  # the softmax of rounded scores is a distribution
    np.testing.assert_array_equal(pre, attention_probabilities(round_to(s, "float8_e4m3fn"), valid))
    post = rounded_attention(s, valid, "float8_e4m3fn", "none", "post")
    np.testing.assert_array_equal(post, np.where(valid, round_to(attention_probabilities(s, valid), "float8_e4m3fn"), 0))
    with pytest.raises(InvalidParameterError) as e:
        rounded_attention(s, valid, "float8_e4m3fn", "none", "during")
    assert e.value.value == "during"


@pytest.mark.spec("DEF-SOFTMAX-ROUNDING")
def test_probability_distortion_by_hand():
    from scipy.stats import entropy

    p = np.array([[0.5, 0.5, 0.0], [0.7, 0.2, 0.1]])
    valid, rows = np.array([True, True, True]), np.array([True, True])
    same = probability_distortion(p, p, valid, rows)
    assert same["tv"] == 0 and same["kl_bits"] == pytest.approx(0, abs=1e-15) and same["kl_infinite_fraction"] == 0
    q = np.array([[1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])
    d = probability_distortion(p, q, valid, rows)
    assert d["tv"] == pytest.approx((0.5 + 0.1) / 2)
    assert d["kl_infinite_fraction"] == 0.5 and d["kl_bits"] == pytest.approx(entropy(p[1], q[1], base=2))
    assert d["zero_fraction"] == pytest.approx(1 / 5)  # one of the five positive entries became 0
    assert d["entropy_hat_bits"] == pytest.approx((0 + entropy(q[1], base=2)) / 2)
    only = probability_distortion(p, q, valid, np.array([False, True]))  # invalid rows are left out
    assert only["rows"] == 1 and only["tv"] == pytest.approx(0.1)
    with pytest.raises(InvalidParameterError):
        probability_distortion(p, q, valid, np.array([False, False]))


@pytest.mark.spec("DEF-ACCUMULATION-GROWTH")
def test_growth_exponent_and_the_square_root_law():
    ks = np.arange(1, 500)
    assert growth_exponent(ks, 3 * ks ** 0.7) == pytest.approx(0.7)
    assert growth_exponent([1, 2, 20], [1, 2, 3]) is None  # fewer than 3 points with k ≥ 16
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3000, 512)).astype(np.float32), rng.normal(size=(3000, 512)).astype(np.float32)
    r = accumulation_curves(x, w, dtypes=("bfloat16",), modes=("products",))
    assert r["exponent_signal"] == pytest.approx(0.5, abs=0.05)  # zero-mean terms: the signal is a random walk too
    assert r["curves"][0]["exponent_noise"] == pytest.approx(0.5, abs=0.05)
    assert r["exponent_signal_rms"] == pytest.approx(0.5, abs=0.05)
    coherent = accumulation_curves(np.abs(x), np.abs(w), dtypes=("bfloat16",), modes=("products",))
    assert coherent["exponent_signal"] == pytest.approx(1.0, abs=0.02)  # same-sign terms: the signal grows as N
    x[0, 100] = w[0, 100] = 1e3  # one huge term in one pair moves the RMS, not the median
    spike = accumulation_curves(x, w, dtypes=("bfloat16",), modes=("products",), rng=np.random.default_rng(0))
    assert spike["exponent_signal"] == pytest.approx(0.5, abs=0.05) and spike["signal_rms"][-1] > 10 * spike["signal_median"][-1]


@pytest.mark.spec("DEF-ACCUMULATION-GROWTH")
def test_sequential_accumulation_matches_an_exact_rounding_oracle():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(40, 100)).astype(np.float32), rng.normal(size=(40, 100)).astype(np.float32)
    r = accumulation_curves(x, w, dtypes=("float16", "bfloat16", "float32"), modes=("accumulate",))
    ks = np.array(r["ks"])
    p = x.astype(np.float64) * w.astype(np.float64)
    exact = np.cumsum(p, axis=1)

    def rnd(a, dt):  # the reference's correctly rounded conversion, float32 by NumPy
        return a.astype(np.float32).astype(np.float64) if dt == "float32" else dequantize(quantize(a, dt), dt)

    for c in r["curves"]:
        s, got = np.zeros(40), []
        for k in range(100):
            s = rnd(s + rnd(p[:, k], c["dtype"]), c["dtype"])  # float64 sum of two 16/32-bit values is exact here
            got.append(s.copy())
        got = np.array(got).T[:, ks - 1]
        np.testing.assert_allclose(c["noise_rms"], np.sqrt(np.mean((got - exact[:, ks - 1]) ** 2, axis=0)), rtol=1e-12)
        np.testing.assert_allclose(c["noise_median"], np.median(np.abs(got - exact[:, ks - 1]), axis=0), rtol=1e-12)
    with pytest.raises(InvalidParameterError):
        accumulation_curves(x, w[:, :5])


@pytest.mark.spec("DEF-SOFTMAX-ROUNDING")
def test_study_on_a_tiny_bert_reproduces_the_model_and_keeps_going_after_a_failure():
    mm = tiny_bert()
    doc = softmax_study(mm, formats=("float8_e4m3fn", "float4_e2m1fn"), pairs=50)
    att = doc["results"]["attention"]
    assert [a["module"] for a in att] == ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"]
    assert all(a["floor_output_mse"] < 1e-10 for a in att)  # the float64 attention installed is the model's
    assert len(att[0]["variants"]) == 2 * 2 * 2 and not doc["errors"]
    # the probabilities the study compares are the model's own attention weights
    seen = []
    h = mm.model.encoder.layer[0].attention.self.register_forward_hook(lambda m, a, o: seen.append(o[1]))
    with torch.no_grad():
        mm.model(**mm.batches[0])
    h.remove()
    mod = mm.model.encoder.layer[0].attention.self
    with torch.no_grad():
        hid = mm.model.embeddings(input_ids=mm.batches[0]["input_ids"])
        q = mod.query(hid).reshape(3, 7, 4, 8).transpose(1, 2).double()
        k = mod.key(hid).reshape(3, 7, 4, 8).transpose(1, 2).double()
    s = (q @ k.transpose(-1, -2) * mod.scaling).numpy()
    valid = mm.batches[0]["attention_mask"].bool().numpy()[:, None, None, :]
    np.testing.assert_allclose(attention_probabilities(s, valid), seen[0].double().numpy(), atol=1e-6)
    acc = doc["results"]["accumulation"]
    assert [a["K"] for a in acc] == [32, 64, 32, 64] and all(a["pairs"] == 50 for a in acc)
    json.dumps(doc, allow_nan=False)
    bad = softmax_study(tiny_bert(), attention_modules=("*layer.0.attention.self", "*layer.1.intermediate.dense"),
                        accumulation_modules=(), formats=("float8_e4m3fn",), scalings=("none",))
    assert [e["what"] for e in bad["errors"]] == ["encoder.layer.1.intermediate.dense"]
    assert "variants" in bad["results"]["attention"][0]


@pytest.mark.spec("DEF-SOFTMAX-ROUNDING")
@pytest.mark.parametrize("kw,value", [({"formats": ("nvfp4",)}, "nvfp4"), ({"scalings": ("row",)}, "row"),
                                      ({"dtypes": ("float64",)}, "float64"), ({"pairs": 0}, 0), ({"order": "sorted"}, "sorted"),
                                      ({"attention_modules": ("nope*",)}, "nope*")])
def test_softmax_bad_options_are_named_errors(kw, value):
    with pytest.raises(InvalidParameterError) as e:
        softmax_study(tiny_bert(), **kw)
    assert e.value.value == value


@pytest.mark.spec("DEF-SOFTMAX-ROUNDING")
def test_softmax_cli(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny_bert())
    assert STUDIES["softmax"].run is softmax_study
    rc = main(["study", "softmax", "--formats", "float8_e4m3fn", "--scalings", "none", "--dtypes", "bfloat16",
               "--pairs", "20", "--out", str(tmp_path / "o")])
    assert rc == 0
    assert "C-004-1-1" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"softmax.json", "softmax_attention.png", "softmax_accumulation.png"}


@pytest.mark.spec("DEF-BOTTLENECK-CAPACITY")
def test_bottleneck_pieces():
    assert [code_bits(p) for p in ("int2", "int8", "bfloat16", "float16", "float32")] == [2, 8, 16, 16, 32]
    with pytest.raises(InvalidParameterError) as e:
        code_bits("int1")
    assert e.value.value == "int1"
    c = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    assert np.array_equal(round_code(c, "float32"), c)
    assert np.array_equal(round_code(c, "int4"), site_format("int4").quantize_dequantize(c, per_channel=False))
    assert len(np.unique(round_code(c, "int2"))) <= 4
    pts = [{"bytes": 1, "mse": 3.0}, {"bytes": 2, "mse": 1.0}, {"bytes": 2, "mse": 2.0}, {"bytes": 4, "mse": 1.0}]
    assert pareto_front(pts) == pts[:2]
    a, b = bottleneck_data(50, dim=6, latent=3), bottleneck_data(50, dim=6, latent=3, part=1)
    assert np.array_equal(a, bottleneck_data(50, dim=6, latent=3)) and not np.array_equal(a, b) and a.dtype == np.float32


@pytest.mark.spec("DEF-BOTTLENECK-CAPACITY")
def test_bottleneck_study_small_and_a_diverged_width(monkeypatch):
    kw = {"widths": (1, 2), "precisions": ("int2", "int8", "float16", "float32"), "dim": 6, "latent": 3, "train": 256,
          "test": 128, "steps": 100, "hidden": 16}
    doc = bottleneck_study(**kw)
    pts = {(p["width"], p["precision"]): p for p in doc["results"]["points"]}
    assert len(pts) == 8 and not doc["errors"]
    assert pts[(2, "int8")]["bytes"] == 2 and pts[(2, "float32")]["bytes"] == 8
    g = next(g for g in doc["results"]["gains"] if (g["width"], g["precision"]) == (1, "int8"))
    assert g["widen"]["to"] == [2, "int8"] and g["finer"]["to"] == [1, "float16"]
    assert g["widen"]["mse_gain_per_byte"] == pytest.approx((pts[(1, "int8")]["mse"] - pts[(2, "int8")]["mse"]) / 1)
    assert pts[(2, "int2")]["mse"] > pts[(2, "float32")]["mse"]  # a 2-bit code loses
    assert {c["id"] for c in doc["claims"]} <= {"C-004-3-1", "C-004-3-2"}
    json.dumps(doc, allow_nan=False)
    real = bottleneck_mod.train_autoencoder

    def broken(x, width, **k):
        enc, dec = real(x, width, **k)
        if width == 2:
            with torch.no_grad():
                enc[2].bias.fill_(math.nan)
        return enc, dec

    monkeypatch.setattr(bottleneck_mod, "train_autoencoder", broken)
    bad = bottleneck_study(**kw)
    assert [e["what"] for e in bad["errors"]] == ["width 2"] and {p["width"] for p in bad["results"]["points"]} == {1}


@pytest.mark.spec("DEF-BOTTLENECK-CAPACITY")
def test_bottleneck_quantization_aware_training():
    x = bottleneck_data(256, dim=6, latent=3)
    enc, dec = bottleneck_mod.train_autoencoder(x, 2, hidden=8, steps=60, seed=1, code_precision="int2")
    enc_f, _ = bottleneck_mod.train_autoencoder(x, 2, hidden=8, steps=60, seed=1)
    with torch.no_grad():  # the rounding changed the training: a different network from the same seed
        assert not torch.equal(enc[0].weight, enc_f[0].weight)
    doc = bottleneck_study(widths=(2,), precisions=("int2", "float32"), dim=6, latent=3, train=256, test=128, steps=100,
                           hidden=16, qat=True)
    p = {q["precision"]: q for q in doc["results"]["points"]}
    assert "mse_post_training" in p["int2"] and "mse_post_training" not in p["float32"]
    assert p["int2"]["mse"] < p["int2"]["mse_post_training"]  # trained for its 2-bit code, it loses less
    assert doc["settings"]["qat"] is True and "straight-through" in doc["settings"]["quantization"]


@pytest.mark.spec("DEF-BOTTLENECK-CAPACITY")
@pytest.mark.parametrize("kw,value", [({"precisions": ("int1",)}, "int1"), ({"widths": (0,)}, 0), ({"lr": -1.0}, -1.0),
                                      ({"steps": 0}, 0)])
def test_bottleneck_bad_options(kw, value):
    with pytest.raises(InvalidParameterError) as e:
        bottleneck_study(**kw)
    assert e.value.value == value


@pytest.mark.spec("DEF-BOTTLENECK-CAPACITY")
def test_bottleneck_cli(tmp_path, capsys):
    assert STUDIES["bottleneck"].needs_model is False
    rc = main(["study", "bottleneck", "--widths", "1,2", "--precisions", "int4,float32", "--train", "128", "--test", "64",
               "--steps", "20", "--dim", "6", "--latent", "3", "--hidden", "8", "--out", str(tmp_path / "o")])
    assert rc == 0
    assert "test reconstruction MSE" in capsys.readouterr().out
    assert (tmp_path / "o" / "bottleneck.json").exists() and (tmp_path / "o" / "bottleneck.png").exists()
