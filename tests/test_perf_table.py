"""bench/perf_table.py: the README's performance table from a bench JSON (synthetic numbers, made up for this test),
the markers it rewrites between, and the rule that every benchmark group has a baseline."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("perf_table", ROOT / "bench" / "perf_table.py")
perf_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf_table)


def _bench(group, name, minimum, label=None):
    return {"group": group, "name": name, "fullname": f"bench/b.py::{name}", "stats": {"min": minimum, "mean": minimum * 1.1},
            "extra_info": {"label": label} if label else {}}


def _doc(benches):  # synthetic: not a measurement
    return {"datetime": "2000-01-02T03:04:05.000000+00:00", "commit_info": {"id": "0123456789abcdef", "dirty": True},
            "machine_info": {"cpu": {"brand_raw": "TestCPU 9000"}, "python_version": "3.11.0", "natprec_cores": 2,
                             "natprec_loadavg": [3.25, 2.0, 1.5],
                             "natprec_versions": {"numpy": "9.9", "torch": "8.8", "ml_dtypes": "7.7"}},
            "benchmarks": benches}


DOC = _doc([
    _bench("quantize-16", "test_baseline_searchsorted", 0.100, "searchsorted"),
    _bench("quantize-16", "test_baseline_torch_bucketize", 0.050, "bucketize"),
    _bench("quantize-16", "test_quantize_nf4", 0.025, "quantize nf4"),
    _bench("cast-float16", "test_baseline_cast[float16]", 2e-3),
    _bench("cast-float16", "test_quantize_cast[float16]", 3e-3, "quantize float16"),
])


def _rows(text):
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_one_row_per_natprec_row_and_baseline_with_the_ratio_of_minima():
    rows = _rows(perf_table.table(DOC))
    assert rows == [
        ["quantize-16", "quantize nf4", "25 ms", "searchsorted", "100 ms", "0.25×"],
        ["quantize-16", "quantize nf4", "25 ms", "bucketize", "50 ms", "0.50×"],
        ["cast-float16", "quantize float16", "3 ms", "`test_baseline_cast[float16]`", "2 ms", "1.50×"],  # label falls back to the name
    ]


def test_header_names_date_cpu_cores_versions_and_commit():
    h = perf_table.header(DOC)
    for part in ("2000-01-02 03:04", "TestCPU 9000", "2 cores", "numpy 9.9", "torch 8.8", "ml_dtypes 7.7", "0123456789",
                 "uncommitted", "load average 3.2 (1 min) / 1.5 (15 min)"):
        assert part in h, part


@pytest.mark.parametrize("benches, fragment", [
    ([_bench("g", "test_quantize", 1.0)], "group 'g' has no baseline"),
    ([_bench("g", "test_baseline_x", 1.0)], "group 'g' has only baselines"),
    ([_bench(None, "test_loose", 1.0), _bench("g", "test_baseline_x", 1.0), _bench("g", "test_y", 1.0)], "test_loose has no group"),
    ([], "no benchmarks"),
])
def test_a_group_without_a_baseline_fails_loudly(benches, fragment):
    with pytest.raises(perf_table.PerfTableError, match=fragment):
        perf_table.table(_doc(benches))


def test_rewrite_replaces_only_between_the_markers():
    text = f"intro\n{perf_table.BEGIN}\nold table\n{perf_table.END}\nafter\n"
    new = perf_table.rewrite(text, "NEW\n")
    assert new == f"intro\n{perf_table.BEGIN}\nNEW\n{perf_table.END}\nafter\n"
    assert perf_table.rewrite(new, "NEW\n") == new  # idempotent
    for bad in ("no markers", f"{perf_table.END}\n{perf_table.BEGIN}", f"{perf_table.BEGIN}{perf_table.BEGIN}{perf_table.END}"):
        with pytest.raises(perf_table.PerfTableError):
            perf_table.rewrite(bad, "x")


def test_main_reads_json_and_rewrites_the_readme(tmp_path, capsys):
    js = tmp_path / "b.json"
    js.write_text(json.dumps(DOC))
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n{perf_table.BEGIN}\n{perf_table.END}\n")
    assert perf_table.main(["--json", str(js), "--readme", str(readme)]) == 0
    assert "| quantize-16 | quantize nf4 | 25 ms | bucketize | 50 ms | 0.50× |" in readme.read_text()
    js.write_text(json.dumps(_doc([_bench("g", "test_quantize", 1.0)])))
    assert perf_table.main(["--json", str(js), "--readme", str(readme)]) == 1
    assert "has no baseline" in capsys.readouterr().err


def test_module_groups_reads_function_and_parameter_marks(tmp_path):
    src = tmp_path / "bench_fake.py"
    src.write_text(
        "import pytest\n"
        "@pytest.mark.benchmark(group='a')\ndef test_baseline_a(benchmark): pass\n"
        "@pytest.mark.benchmark(group='a')\ndef test_a(benchmark): pass\n"
        "P = [pytest.param(n, marks=pytest.mark.benchmark(group=f'p-{n}')) for n in ('x', 'y')]\n"
        "@pytest.mark.parametrize('n', P)\ndef test_baseline_p(benchmark, n): pass\n"
        "@pytest.mark.parametrize('n', P)\ndef test_p(benchmark, n): pass\n"
    )
    assert perf_table.check_module_groups(src) == {"a": ["test_a", "test_baseline_a"], "p-x": ["test_baseline_p", "test_p"],
                                                   "p-y": ["test_baseline_p", "test_p"]}
    src.write_text(src.read_text() + "@pytest.mark.benchmark(group='lonely')\ndef test_lonely(benchmark): pass\n")
    with pytest.raises(perf_table.PerfTableError, match="'lonely' has no baseline"):
        perf_table.check_module_groups(src)


def test_every_group_of_the_reference_bench_has_a_baseline():
    groups = perf_table.check_module_groups(ROOT / "bench" / "bench_reference.py")
    assert {"quantize-16", "cast-float8_e4m3fn", "min-margin-nf4", "entropy"} <= set(groups)


def test_readme_holds_the_markers_once():
    text = (ROOT / "README.md").read_text()
    assert text.count(perf_table.BEGIN) == 1 and text.count(perf_table.END) == 1


def test_the_memory_table_is_written_between_its_own_markers(monkeypatch):
    """bench/peak_memory.py: its table from measured rows (made up here), rewritten between the memory-table markers."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("peak_memory", ROOT / "bench" / "peak_memory.py")
    pm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pm)
    block = pm.table(22, [("quantize nf4", 0.7), ("realized_support", 4.381)])
    assert "| `quantize nf4` | 0.70× |" in block and "| `realized_support` | 4.38× |" in block and "2^22" in block
    text = f"a\n{pm.BEGIN}\nold\n{pm.END}\n{perf_table.BEGIN}\nkept\n{perf_table.END}\n"
    new = perf_table.rewrite(text, block, pm.BEGIN, pm.END)
    assert "old" not in new and "kept" in new and new.count("| `") == 2
    with pytest.raises(perf_table.PerfTableError, match="memory-table"):
        perf_table.rewrite("no markers", block, pm.BEGIN, pm.END)
    readme = (ROOT / "README.md").read_text()
    assert readme.count(pm.BEGIN) == 1 and readme.count(pm.END) == 1
