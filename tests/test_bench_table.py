"""bench/results_table.py: the RESULTS.md table from a bench JSON (synthetic numbers, made up for this test)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("results_table", Path(__file__).parents[1] / "bench" / "results_table.py")
results_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results_table)

DOC = {  # synthetic: not a measurement
    "device": "TestGPU", "cpu": "testcpu", "date": "2000-01-01 00:00 UTC", "versions": {"numpy": "0"},
    "n_gpu": 1000, "n_reference": 10,
    "results": [
        {"group": "copy", "tier": "device copy", "n": 1000, "seconds": 1e-3, "ns_per_element": 1.0, "GB_per_s": 8.0},
        {"group": "g", "tier": "reference", "n": 10, "seconds": 1e-3, "ns_per_element": 100.0, "GB_per_s": 0.06},
        {"group": "g", "tier": "accelerated", "n": 1000, "seconds": 2e-3, "ns_per_element": 2.0, "GB_per_s": 2.0},
        {"group": "g", "tier": "torch", "n": 1000, "seconds": 8e-3, "ns_per_element": 8.0, "GB_per_s": 0.5},
    ],
}


def test_ratios_in_the_table():
    t = results_table.table(DOC)
    row = next(line for line in t.splitlines() if line.startswith("| g | accelerated"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "2" and cells[5] == "25.0 %"  # 2 GB/s of the copy's 8
    assert cells[6] == "4.00" and cells[7] == "50.0"  # 8/2 ns per element vs torch, 100/2 vs the reference
    assert "TestGPU" in t and "numpy 0" in t


def test_usage(capsys):
    assert results_table.main([]) == 2
